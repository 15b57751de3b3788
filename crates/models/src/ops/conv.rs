//! 2-D convolution with bias as im2col + GEMM in both directions on the CPU.
//!
//! Why by hand: candle 0.11 computes the input gradient of `conv2d` with a direct
//! `conv_transpose2d` loop that made a training step ~6x slower than PyTorch on the CPU. Here the
//! forward pass is `W [O, C*kh*kw] x cols [C*kh*kw, Ho*Wo]` per image, and the backward pass is
//! `dW += dY cols^T`, `dcols = W^T dY` followed by col2im (the adjoint of im2col): three GEMMs
//! (the `gemm` crate, which candle's matmul also uses) and two memory rearrangements.
//!
//! Layout choice: the batch is split into one contiguous chunk per rayon thread and every image
//! is one single-threaded GEMM, writing NCHW directly (no transposes). Images with few output
//! positions (6x6, 8x8) go several to one GEMM, side by side, so that it has at least
//! [`GROUP_COLUMNS`] columns; their outputs are copied back to NCHW. The columns of one group
//! are reused from cache and never kept for the backward pass (it recomputes them), so memory
//! stays at one `C*kh*kw x columns` buffer per thread instead of the whole batch. Per-thread
//! weight gradients are summed in chunk order, so results do not depend on thread scheduling
//! (only on the thread count, which sets the chunks and groups).
//!
//! With a fused ReLU the backward op masks the output gradient itself, while copying a group's
//! gradient into its GEMM operand, instead of a separate pass over the whole gradient. Outputs
//! are allocated uninitialised and zeroed by the thread that fills them, never serially. A
//! dropout after the ReLU can be fused too ([`conv2d_relu_dropout`]): the mask is applied to
//! each output row in cache, and the backward masks the gradient with the dropped output.
//! Stride-2 im2col / col2im go over element pairs, which vectorises (a run-time stride does not).
//! A single image whose column matrix would not fit in L2 (96 channels at 32x32) is done in
//! blocks of output rows ([`Geom::block_rows`]); for same-size stride-1 convolutions im2col
//! copies each row of the column matrix as one shifted run of the input plane.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor,
    WithDType,
};
use gemm::Parallelism;

use super::dropout::{Dropout, Mask, WideApply};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Column count that [`Geom::group`] aims for in every GEMM.
const GROUP_COLUMNS: usize = 256;

/// Largest column matrix (elements) done in one piece; larger ones go in blocks of rows
/// ([`Geom::block_rows`]). 2^18 f32 are 1 MB, the L2 of the machine measured.
const BLOCK_ELEMENTS: usize = 1 << 18;

/// Geometry of one convolution call.
#[derive(Debug, Clone, Copy)]
struct Geom {
    batch: usize,
    in_channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride: usize,
    pad: usize,
    out_h: usize,
    out_w: usize,
}

impl Geom {
    fn new(x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<Self> {
        let (batch, in_channels, height, width) = x.shape().dims4()?;
        let (out_channels, w_in, kernel_h, kernel_w) = w.shape().dims4()?;
        if w_in != in_channels {
            bail!("conv2d: input has {in_channels} channels, weight expects {w_in}")
        }
        if stride == 0 || height + 2 * pad < kernel_h || width + 2 * pad < kernel_w {
            bail!(
                "conv2d: kernel {kernel_h}x{kernel_w} stride {stride} pad {pad} does not fit \
                 input {height}x{width}"
            )
        }
        Ok(Self {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            pad,
            out_h: (height + 2 * pad - kernel_h) / stride + 1,
            out_w: (width + 2 * pad - kernel_w) / stride + 1,
        })
    }

    /// Rows of the column matrix: `C * kh * kw`.
    fn k(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Columns of the column matrix: output positions `Ho * Wo`.
    fn l(&self) -> usize {
        self.out_h * self.out_w
    }

    fn in_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    fn out_len(&self) -> usize {
        self.out_channels * self.l()
    }

    /// A 1x1, stride-1, unpadded convolution: the image itself is the column matrix.
    fn pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.pad == 0
    }

    /// Images per parallel chunk: one chunk per rayon thread.
    fn chunk(&self) -> usize {
        self.batch.div_ceil(rayon::current_num_threads()).max(1)
    }

    /// Images per GEMM: several side by side when one image has few output positions, so that
    /// the products are wide enough to run the GEMM at full speed (a 6x6 output alone gives a
    /// 36-column product, at about two thirds of the speed of a 256-column one).
    fn group(&self) -> usize {
        GROUP_COLUMNS.div_ceil(self.l()).clamp(1, self.chunk())
    }

    /// Output rows per column block of a one-image GEMM. An image whose column matrix would
    /// not fit in L2 (e.g. 96 channels at 32x32: 864 x 1024 floats, 3.5 MB) is done in blocks
    /// of about [`GROUP_COLUMNS`] columns, each block's columns written, multiplied and (in the
    /// backward pass) scattered back while they are in L2 (all output rows: no blocks).
    fn block_rows(&self) -> usize {
        let fits = self.k() * self.l() <= BLOCK_ELEMENTS;
        if self.group() > 1 || self.pointwise() || self.l() < 2 * GROUP_COLUMNS || fits {
            self.out_h
        } else {
            GROUP_COLUMNS.div_ceil(self.out_w).min(self.out_h)
        }
    }

    /// GEMM parallelism inside one image: only when there are fewer images than threads.
    fn gemm_parallelism(&self) -> Parallelism {
        let threads = rayon::current_num_threads();
        if self.batch < threads {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        }
    }

    /// Valid output columns `[first, end)` for kernel column `j`: those reading inside the image.
    fn valid_range(&self, offset: usize, size: usize, out: usize) -> (usize, usize) {
        // Input index = o * stride + offset - pad must lie in [0, size).
        let first = self.pad.saturating_sub(offset).div_ceil(self.stride);
        let end = if size + self.pad > offset {
            ((size + self.pad - offset - 1) / self.stride + 1).min(out)
        } else {
            0
        };
        (first.min(end), end)
    }
}

/// Copies one image `[C, H, W]` into its column matrix `[C*kh*kw, Ho*Wo]` (zeros for padding),
/// whose rows start `ld` elements apart (`ld >= Ho*Wo`: several images side by side); only
/// output rows `oys` (then the matrix has `oys.len() * Wo` columns, from output row
/// `oys.start` on).
fn im2col<T: WithDType>(image: &[T], cols: &mut [T], ld: usize, g: &Geom, oys: Range<usize>) {
    let (r0, r1, ow) = (oys.start, oys.end, g.out_w);
    let l = (r1 - r0) * ow;
    let mut rows = (0..g.k()).map(|r| r * ld);
    for c in 0..g.in_channels {
        let plane = &image[c * g.height * g.width..(c + 1) * g.height * g.width];
        for i in 0..g.kernel_h {
            let (oy0, oy1) = g.valid_range(i, g.height, g.out_h);
            let (oy0, oy1) = (oy0.clamp(r0, r1), oy1.clamp(r0, r1));
            for j in 0..g.kernel_w {
                let start = rows.next().expect("row count is C*kh*kw");
                let row = &mut cols[start..start + l];
                let (ox0, ox1) = g.valid_range(j, g.width, g.out_w);
                if g.stride == 1 && ow == g.width && ox0 < ox1 && oy0 < oy1 {
                    // Output rows as wide as input rows: the valid samples of all output rows
                    // are one shifted run of the plane (one long copy instead of one short copy
                    // per row), after which the samples that wrapped around a row edge (padding)
                    // are zeroed.
                    let (first, end) = ((oy0 - r0) * ow + ox0, (oy1 - 1 - r0) * ow + ox1);
                    let src = (oy0 + i - g.pad) * g.width + ox0 + j - g.pad;
                    row[first..end].copy_from_slice(&plane[src..src + end - first]);
                    row[..first].fill(T::zero());
                    row[end..].fill(T::zero());
                    for oy in oy0 - r0..oy1 - 1 - r0 {
                        row[oy * ow + ox1..(oy + 1) * ow + ox0].fill(T::zero());
                    }
                    continue;
                }
                row[..(oy0 - r0) * ow].fill(T::zero());
                row[(oy1 - r0) * ow..].fill(T::zero());
                for oy in oy0..oy1 {
                    let out = &mut row[(oy - r0) * ow..(oy - r0 + 1) * ow];
                    out[..ox0].fill(T::zero());
                    out[ox1..].fill(T::zero());
                    let src = &plane[(oy * g.stride + i - g.pad) * g.width..][..g.width];
                    if g.stride == 1 {
                        let start = ox0 + j - g.pad;
                        out[ox0..ox1].copy_from_slice(&src[start..start + ox1 - ox0]);
                    } else if g.stride == 2 {
                        if ox0 < ox1 {
                            gather_even(&src[ox0 * 2 + j - g.pad..], &mut out[ox0..ox1]);
                        }
                    } else {
                        for (ox, o) in out.iter_mut().enumerate().take(ox1).skip(ox0) {
                            *o = src[ox * g.stride + j - g.pad];
                        }
                    }
                }
            }
        }
    }
}

/// Adds a column matrix (rows `ld` elements apart) of output rows `oys` into one image: the
/// adjoint of [`im2col`] when `image` starts at zero.
fn col2im<T: WithDType>(cols: &[T], ld: usize, image: &mut [T], g: &Geom, oys: Range<usize>) {
    let (r0, r1, ow) = (oys.start, oys.end, g.out_w);
    let l = (r1 - r0) * ow;
    let mut rows = (0..g.k()).map(|r| r * ld);
    for c in 0..g.in_channels {
        let plane = &mut image[c * g.height * g.width..(c + 1) * g.height * g.width];
        for i in 0..g.kernel_h {
            let (oy0, oy1) = g.valid_range(i, g.height, g.out_h);
            let (oy0, oy1) = (oy0.clamp(r0, r1), oy1.clamp(r0, r1));
            for j in 0..g.kernel_w {
                let start = rows.next().expect("row count is C*kh*kw");
                let row = &cols[start..start + l];
                let (ox0, ox1) = g.valid_range(j, g.width, g.out_w);
                for oy in oy0..oy1 {
                    let src = &row[(oy - r0) * ow..(oy - r0 + 1) * ow];
                    let dst = &mut plane[(oy * g.stride + i - g.pad) * g.width..][..g.width];
                    if g.stride == 1 {
                        let start = ox0 + j - g.pad;
                        for (d, s) in dst[start..start + ox1 - ox0].iter_mut().zip(&src[ox0..ox1]) {
                            *d += *s;
                        }
                    } else if g.stride == 2 {
                        if ox0 < ox1 {
                            add_even(&src[ox0..ox1], &mut dst[ox0 * 2 + j - g.pad..]);
                        }
                    } else {
                        for (ox, s) in src.iter().enumerate().take(ox1).skip(ox0) {
                            dst[ox * g.stride + j - g.pad] += *s;
                        }
                    }
                }
            }
        }
    }
}

/// `out[x] = src[2 x]` for every `x` of `out` (`src` holds at least `2 out.len() - 1` elements).
///
/// Stride-2 sampling written over element pairs so that LLVM vectorises it (interleaved loads
/// and a shuffle); the indexed loop with a run-time stride stays scalar, and no crate offers
/// this strided copy.
fn gather_even<T: WithDType>(src: &[T], out: &mut [T]) {
    let Some((last, head)) = out.split_last_mut() else {
        return;
    };
    for (o, pair) in head.iter_mut().zip(src.chunks_exact(2)) {
        *o = pair[0];
    }
    *last = src[2 * head.len()];
}

/// `dst[2 x] += src[x]` for every `x` of `src` (`dst` holds at least `2 src.len() - 1`
/// elements): the stride-2 scatter of [`col2im`], in the same order of additions as an
/// element-by-element loop. Each pair is rewritten whole (its odd element unchanged) so that
/// LLVM vectorises the loop with full interleaved stores.
fn add_even<T: WithDType>(src: &[T], dst: &mut [T]) {
    let Some((&last, head)) = src.split_last() else {
        return;
    };
    for (pair, &s) in dst.chunks_exact_mut(2).zip(head) {
        let odd = pair[1];
        pair[0] += s;
        pair[1] = odd;
    }
    dst[2 * head.len()] += last;
}

/// Copies `[rows, l]` matrices side by side into `dst [rows, images.len() * l]`.
fn gather<T: WithDType>(images: &[&[T]], rows: usize, l: usize, dst: &mut [T]) {
    let n = images.len() * l;
    for r in 0..rows {
        for (i, image) in images.iter().enumerate() {
            dst[r * n + i * l..][..l].copy_from_slice(&image[r * l..][..l]);
        }
    }
}

/// [`gather`] of output gradients, zero wherever the matching ReLU output (`outputs`, one
/// `[rows, l]` per image) is not positive, as PyTorch's ReLU backward (no gradient at 0); with
/// `scale` (a fused dropout, whose output is `outputs`), the kept gradients times `scale`, as
/// the dropout's backward computes them.
fn gather_relu_masked<T: WithDType>(
    grads: &[&[T]],
    outputs: &[&[T]],
    rows: usize,
    l: usize,
    scale: Option<T>,
    dst: &mut [T],
) {
    let n = grads.len() * l;
    for r in 0..rows {
        for (i, (g, y)) in grads.iter().zip(outputs).enumerate() {
            let d = &mut dst[r * n + i * l..][..l];
            relu_masked(&g[r * l..][..l], &y[r * l..][..l], scale, d);
        }
    }
}

/// `d = g` where `y > 0`, else 0; times `scale` if given (see [`gather_relu_masked`]).
fn relu_masked<T: WithDType>(g: &[T], y: &[T], scale: Option<T>, d: &mut [T]) {
    let pairs = d.iter_mut().zip(g).zip(y);
    // Unconditional selects (not conditional stores) so that they vectorise.
    match scale {
        None => {
            for ((d, &g), &y) in pairs {
                *d = if y > T::zero() { g } else { T::zero() };
            }
        }
        Some(scale) => {
            for ((d, &g), &y) in pairs {
                *d = if y > T::zero() { g * scale } else { T::zero() };
            }
        }
    }
}

/// An uninitialised vector of `len` elements, to be filled in parallel by the threads that use
/// it (`vec![0; len]` would zero it serially on the calling thread, with the others idle, and
/// pull the memory through the cache once more).
pub(crate) fn uninit<T>(len: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, MaybeUninit::uninit);
    v
}

/// Zero-fills `slots` and returns them as initialised values.
pub(crate) fn zeroed<T: WithDType>(slots: &mut [MaybeUninit<T>]) -> &mut [T] {
    slots.fill(MaybeUninit::new(T::zero()));
    // SAFETY: every element was initialised just above, and MaybeUninit<T> has T's layout.
    unsafe { &mut *(slots as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// The vector of values behind `v`.
///
/// # Safety
/// Every element of `v` must have been initialised.
pub(crate) unsafe fn assume_init<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same allocation, length and capacity; MaybeUninit<T> has T's layout; the caller
    // guarantees initialisation.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// Row-major matrix operand for [`matmul`]: pointer and (row stride, column stride).
struct Mat<T> {
    ptr: *const T,
    row_stride: usize,
    col_stride: usize,
}

impl<T> Mat<T> {
    fn rows(data: &[T], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    fn transposed(data: &[T], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: 1,
            col_stride: cols,
        }
    }
}

/// `dst [m, n] (row-major) = (accumulate ? dst : 0) + lhs [m, k] x rhs [k, n]`.
///
/// The caller guarantees that `lhs` and `rhs` address `m x k` and `k x n` elements inside live
/// slices and do not overlap `dst`.
fn matmul<T: WithDType>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    matmul_ld(dst, n, (m, n, k), lhs, rhs, accumulate, parallelism)
}

/// [`matmul`] into a destination whose rows start `ld >= n` elements apart.
fn matmul_ld<T: WithDType>(
    dst: &mut [T],
    ld: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(
        ld >= n && (m == 0 || dst.len() >= (m - 1) * ld + n),
        "matmul destination too small"
    );
    // SAFETY: `dst` holds the m rows of n elements, ld apart (checked above) and is exclusively
    // borrowed; the operands are views of slices that the callers size to the given dimensions
    // and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `v = relu?(v + bias)` over one output row.
fn bias_act<T: WithDType>(row: &mut [T], bias: T, relu: bool) {
    if relu {
        // An unconditional select (not a conditional store) so that it vectorises.
        for v in row.iter_mut() {
            let s = *v + bias;
            *v = if s > T::zero() { s } else { T::zero() };
        }
    } else {
        for v in row.iter_mut() {
            *v += bias;
        }
    }
}

/// The convolution's output, `relu`'d if asked, then (if `mask`) with a dropout mask applied
/// to each output row while it is in cache (mask index: the row-major output index).
fn conv_forward<T: WideApply>(
    x: &[T],
    w: &[T],
    b: &[T],
    g: &Geom,
    relu: bool,
    mask: Option<Mask>,
) -> Vec<T> {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let (chunk, group) = (g.chunk(), g.group());
    let parallelism = g.gemm_parallelism();
    let mut y = uninit::<T>(g.batch * g.out_len());
    y.par_chunks_mut(chunk * g.out_len())
        .zip(x.par_chunks(chunk * g.in_len()))
        .enumerate()
        .for_each(|(chunk_index, (y_chunk, x_chunk))| {
            // Bias, activation and dropout of output row `c` of image `image`.
            let finish = |row: &mut [T], image: usize, c: usize| {
                bias_act(row, b[c], relu);
                if let Some(mask) = &mask {
                    mask.apply_in_place(((image * o + c) * l) as u64, row);
                }
            };
            let n = group * l;
            let mut cols = if g.pointwise() && group == 1 {
                Vec::new()
            } else {
                vec![T::zero(); k * n]
            };
            let mut grouped_y = vec![T::zero(); if group > 1 { o * n } else { 0 }];
            for (group_index, (y_group, x_group)) in y_chunk
                .chunks_mut(group * g.out_len())
                .zip(x_chunk.chunks(group * g.in_len()))
                .enumerate()
            {
                let first = chunk_index * chunk + group_index * group;
                // Zeroed here, in cache, just before the GEMM overwrites it.
                let y_group = zeroed(y_group);
                let images: Vec<&[T]> = x_group.chunks_exact(g.in_len()).collect();
                let block = g.block_rows();
                if images.len() == 1 && block < g.out_h {
                    // One image in blocks of output rows, each written straight into NCHW.
                    for r0 in (0..g.out_h).step_by(block) {
                        let oys = r0..(r0 + block).min(g.out_h);
                        let nb = oys.len() * g.out_w;
                        im2col(images[0], &mut cols, nb, g, oys);
                        matmul_ld(
                            &mut y_group[r0 * g.out_w..],
                            l,
                            (o, nb, k),
                            Mat::rows(w, k),
                            Mat::rows(&cols, nb),
                            false,
                            parallelism,
                        );
                    }
                    for (c, row) in y_group.chunks_exact_mut(l).enumerate() {
                        finish(row, first, c);
                    }
                    continue;
                }
                let n = images.len() * l;
                let cols_ref: &[T] = if g.pointwise() && images.len() == 1 {
                    images[0]
                } else if g.pointwise() {
                    gather(&images, k, l, &mut cols);
                    &cols
                } else {
                    for (i, xb) in images.iter().enumerate() {
                        im2col(xb, &mut cols[i * l..], n, g, 0..g.out_h);
                    }
                    &cols
                };
                if images.len() == 1 {
                    // One image: the product is already in NCHW order.
                    matmul(
                        y_group,
                        (o, l, k),
                        Mat::rows(w, k),
                        Mat::rows(cols_ref, l),
                        false,
                        parallelism,
                    );
                    for (c, row) in y_group.chunks_exact_mut(l).enumerate() {
                        finish(row, first, c);
                    }
                } else {
                    // Images side by side: scatter every image's block of columns back.
                    matmul(
                        &mut grouped_y,
                        (o, n, k),
                        Mat::rows(w, k),
                        Mat::rows(cols_ref, n),
                        false,
                        parallelism,
                    );
                    for (i, yb) in y_group.chunks_exact_mut(g.out_len()).enumerate() {
                        for (c, row) in yb.chunks_exact_mut(l).enumerate() {
                            row.copy_from_slice(&grouped_y[c * n + i * l..][..l]);
                            finish(row, first + i, c);
                        }
                    }
                }
            }
        });
    // SAFETY: the chunks cover `y`, and every group of every chunk went through `zeroed`.
    unsafe { assume_init(y) }
}

/// Sum with eight independent accumulators, so the adds pipeline (and vectorise) instead of
/// waiting on one another.
fn sum<T: WithDType>(values: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |acc, &v| acc + v);
    lanes.iter().fold(tail, |acc, &v| acc + v)
}

/// Gradients of the convolution, concatenated: `[dx (only if input_grad); dw; db]`. With
/// `relu_output` (the output of a fused ReLU, or of a fused ReLU + dropout), `dy` counts only
/// where that output is positive, times `scale` if given (the dropout's `1 / (1 - rate)`).
fn conv_backward<T: WithDType>(
    x: &[T],
    w: &[T],
    dy: &[T],
    relu_output: Option<(&[T], Option<T>)>,
    g: &Geom,
    input_grad: bool,
) -> Vec<T> {
    let scale = relu_output.and_then(|(_, scale)| scale);
    let relu_output = relu_output.map(|(y, _)| y);
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let (chunk, group) = (g.chunk(), g.group());
    let parallelism = g.gemm_parallelism();
    let dx_len = if input_grad { g.batch * g.in_len() } else { 0 };
    let mut out = uninit::<T>(dx_len + o * k + o);
    let (dx, tail) = out.split_at_mut(dx_len);
    let work = |dx_chunk: Option<&mut [MaybeUninit<T>]>,
                x_chunk: &[T],
                dy_chunk: &[T],
                y_chunk: Option<&[T]>| {
        let n = group * l;
        let mut dw = vec![T::zero(); o * k];
        let mut db = vec![T::zero(); o];
        let direct = g.pointwise() && group == 1;
        let mut cols = vec![T::zero(); if direct { 0 } else { k * n }];
        let mut dcols = vec![T::zero(); if direct || !input_grad { 0 } else { k * n }];
        let staged = group > 1 || y_chunk.is_some();
        let block = g.block_rows();
        let blocked = block < g.out_h;
        let mut grouped_dy = vec![T::zero(); if staged || blocked { o * n } else { 0 }];
        let mut y_groups = y_chunk.map(|y| y.chunks(group * g.out_len()));
        let mut dx_groups = dx_chunk.map(|d| d.chunks_mut(group * g.in_len()));
        for (x_group, dy_group) in x_chunk
            .chunks(group * g.in_len())
            .zip(dy_chunk.chunks(group * g.out_len()))
        {
            let images: Vec<&[T]> = x_group.chunks_exact(g.in_len()).collect();
            let count = images.len();
            if blocked {
                // One image (blocks imply groups of one) in blocks of output rows: each block's
                // columns, output gradient and column gradient stay in L2.
                let y_image = y_groups
                    .as_mut()
                    .map(|y| y.next().expect("one y group per dy group"));
                let mut dx_image = dx_groups
                    .as_mut()
                    .map(|d| zeroed(d.next().expect("one dx group per x group")));
                for r0 in (0..g.out_h).step_by(block) {
                    let oys = r0..(r0 + block).min(g.out_h);
                    let nb = oys.len() * g.out_w;
                    im2col(images[0], &mut cols, nb, g, oys.clone());
                    // The block's output gradient, `[O, nb]`, masked as the ReLU asks.
                    for (c, d) in grouped_dy.chunks_exact_mut(nb).take(o).enumerate() {
                        let grad = &dy_group[c * l + r0 * g.out_w..][..nb];
                        match y_image {
                            Some(y) => {
                                relu_masked(grad, &y[c * l + r0 * g.out_w..][..nb], scale, d)
                            }
                            None => d.copy_from_slice(grad),
                        }
                    }
                    let dy_block = &grouped_dy[..o * nb];
                    matmul(
                        &mut dw,
                        (o, k, nb),
                        Mat::rows(dy_block, nb),
                        Mat::transposed(&cols, nb),
                        true,
                        parallelism,
                    );
                    for (d, row) in db.iter_mut().zip(dy_block.chunks_exact(nb)) {
                        *d += sum(row);
                    }
                    if let Some(dx_image) = dx_image.as_deref_mut() {
                        matmul(
                            &mut dcols,
                            (k, nb, o),
                            Mat::transposed(w, k),
                            Mat::rows(dy_block, nb),
                            false,
                            parallelism,
                        );
                        col2im(&dcols, nb, dx_image, g, oys);
                    }
                }
                continue;
            }
            let n = count * l;
            let cols_ref: &[T] = if g.pointwise() && count == 1 {
                images[0]
            } else if g.pointwise() {
                gather(&images, k, l, &mut cols);
                &cols
            } else {
                for (i, xb) in images.iter().enumerate() {
                    im2col(xb, &mut cols[i * l..], n, g, 0..g.out_h);
                }
                &cols
            };
            let y_group = y_groups
                .as_mut()
                .map(|y| y.next().expect("one y group per dy group"));
            let dy_ref: &[T] = if !staged {
                dy_group
            } else {
                let grads: Vec<&[T]> = dy_group.chunks_exact(g.out_len()).collect();
                match y_group {
                    Some(y_group) => {
                        let outputs: Vec<&[T]> = y_group.chunks_exact(g.out_len()).collect();
                        gather_relu_masked(&grads, &outputs, o, l, scale, &mut grouped_dy);
                    }
                    None => gather(&grads, o, l, &mut grouped_dy),
                }
                &grouped_dy[..o * n]
            };
            // dW [O, K] += dY [O, n] x cols^T [n, K]
            matmul(
                &mut dw,
                (o, k, n),
                Mat::rows(dy_ref, n),
                Mat::transposed(cols_ref, n),
                true,
                parallelism,
            );
            for (d, row) in db.iter_mut().zip(dy_ref.chunks_exact(n)) {
                *d += sum(row);
            }
            if let Some(groups) = dx_groups.as_mut() {
                let dx_group = zeroed(groups.next().expect("one dx group per x group"));
                // dcols [K, n] = W^T [K, O] x dY [O, n]
                let target: &mut [T] = if direct { dx_group } else { &mut dcols };
                matmul(
                    target,
                    (k, n, o),
                    Mat::transposed(w, k),
                    Mat::rows(dy_ref, n),
                    false,
                    parallelism,
                );
                if !direct {
                    for (i, dxb) in dx_group.chunks_exact_mut(g.in_len()).enumerate() {
                        if g.pointwise() {
                            for (r, row) in dxb.chunks_exact_mut(l).enumerate() {
                                row.copy_from_slice(&dcols[r * n + i * l..][..l]);
                            }
                        } else {
                            col2im(&dcols[i * l..], n, dxb, g, 0..g.out_h);
                        }
                    }
                }
            }
        }
        (dw, db)
    };
    let y_chunk = |i: usize| relu_output.and_then(|y| y.chunks(chunk * g.out_len()).nth(i));
    let partials: Vec<(Vec<T>, Vec<T>)> = if input_grad {
        dx.par_chunks_mut(chunk * g.in_len())
            .zip(x.par_chunks(chunk * g.in_len()))
            .zip(dy.par_chunks(chunk * g.out_len()))
            .enumerate()
            .map(|(i, ((dx_chunk, x_chunk), dy_chunk))| {
                work(Some(dx_chunk), x_chunk, dy_chunk, y_chunk(i))
            })
            .collect()
    } else {
        x.par_chunks(chunk * g.in_len())
            .zip(dy.par_chunks(chunk * g.out_len()))
            .enumerate()
            .map(|(i, (x_chunk, dy_chunk))| work(None, x_chunk, dy_chunk, y_chunk(i)))
            .collect()
    };
    let mut partials = partials.into_iter();
    let (mut dw, mut db) = partials.next().expect("at least one chunk");
    for (pw, pb) in partials {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += *b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += *b);
    }
    for (slot, &v) in tail.iter_mut().zip(dw.iter().chain(&db)) {
        slot.write(v);
    }
    // SAFETY: `dx` is covered by the chunks, whose every group went through `zeroed`; `tail`
    // (o * k + o elements) was written just above from dw (o * k) and db (o).
    unsafe { assume_init(out) }
}

/// The contiguous elements of a CPU tensor argument.
fn contiguous<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("conv2d: {what} must be contiguous"),
    }
}

/// Forward convolution op on `(x [N,C,H,W], w [O,C,kh,kw], b [O])`, optionally followed by a
/// fused ReLU (saves candle's separate ReLU passes and their backward over the activations),
/// and after the ReLU by a fused dropout (CPU only; see [`conv2d_relu_dropout`]).
struct Conv2dOp {
    stride: usize,
    pad: usize,
    relu: bool,
    /// Dropout after the ReLU (only with `relu`, only on the CPU).
    dropout: Option<Dropout>,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "allconv-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(xl, wl, self.stride, self.pad)?;
        if bl.shape().dims() != [g.out_channels] {
            bail!(
                "conv2d: bias shape {:?}, expected [{}]",
                bl.shape(),
                g.out_channels
            )
        }
        let shape = Shape::from((g.batch, g.out_channels, g.out_h, g.out_w));
        let storage = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(conv_forward::<f32>(
                contiguous(xs, xl, "input")?,
                contiguous(ws, wl, "weight")?,
                contiguous(bs, bl, "bias")?,
                &g,
                self.relu,
                self.dropout.map(|d| d.mask()),
            )),
            CpuStorage::F64(_) => CpuStorage::F64(conv_forward::<f64>(
                contiguous(xs, xl, "input")?,
                contiguous(ws, wl, "weight")?,
                contiguous(bs, bl, "bias")?,
                &g,
                self.relu,
                self.dropout.map(|d| d.mask()),
            )),
            other => bail!("conv2d: dtype {:?} not supported (f32, f64)", other.dtype()),
        };
        Ok((storage, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if self.dropout.is_some() {
            // `conv2d_relu_dropout` runs the two ops unfused on CUDA.
            bail!("conv2d: the fused dropout runs on the CPU only")
        }
        super::cuda::conv_forward(
            self.stride,
            self.pad,
            self.relu,
            (xs, xl),
            (ws, wl),
            (bs, bl),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let input_grad = x.track_op();
        // On the CPU the backward op masks the gradient itself, image by image while it is in
        // cache, instead of a separate pass that writes a masked copy of the whole gradient.
        let cpu = matches!(res.device(), Device::Cpu);
        let grad = if self.relu && !cpu {
            grad.contiguous()?.apply_op2_no_bwd(res, &ReluMaskOp)?
        } else {
            grad.contiguous()?
        };
        let op = Conv2dBackwardOp {
            stride: self.stride,
            pad: self.pad,
            input_grad,
            relu_output: (self.relu && cpu).then(|| res.clone()),
            grad_scale: self.dropout.map(|d| d.scale()),
        };
        // One op computes all three gradients (they share the column matrices); its output is
        // their concatenation, split here without copying.
        let flat = x.apply_op3_no_bwd(w, &grad, &op)?;
        let (nx, nw) = (if input_grad { x.elem_count() } else { 0 }, w.elem_count());
        let dx = if input_grad {
            Some(flat.narrow(0, 0, nx)?.reshape(x.shape())?)
        } else {
            None
        };
        let dw = flat.narrow(0, nx, nw)?.reshape(w.shape())?;
        let db = flat
            .narrow(0, nx + nw, b.elem_count())?
            .reshape(b.shape())?;
        Ok((dx, Some(dw), Some(db)))
    }
}

/// Backward op on `(x, w, dy)`: returns `[dx (if input_grad) ; dw ; db]` flattened.
struct Conv2dBackwardOp {
    stride: usize,
    pad: usize,
    input_grad: bool,
    /// The output of a fused ReLU (CPU only): the gradient counts where it is positive.
    relu_output: Option<Tensor>,
    /// With a fused dropout after the ReLU (then `relu_output` is the dropout's output): its
    /// `1 / (1 - rate)`, applied to the kept gradients.
    grad_scale: Option<f64>,
}

impl CustomOp3 for Conv2dBackwardOp {
    fn name(&self) -> &'static str {
        "allconv-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(xl, wl, self.stride, self.pad)?;
        fn run<T: WithDType>(
            op: &Conv2dBackwardOp,
            g: &Geom,
            (xs, xl): (&CpuStorage, &Layout),
            (ws, wl): (&CpuStorage, &Layout),
            (gs, gl): (&CpuStorage, &Layout),
        ) -> Result<Vec<T>> {
            let relu_output = op.relu_output.as_ref().map(|y| y.storage_and_layout());
            let y = match &relu_output {
                Some((storage, yl)) => match &**storage {
                    Storage::Cpu(ys) if yl.shape() == gl.shape() => {
                        Some(contiguous(ys, yl, "relu output")?)
                    }
                    _ => bail!("conv2d backward: the ReLU output must be a CPU tensor like dy"),
                },
                None => None,
            };
            let scale = op.grad_scale.map(T::from_f64);
            Ok(conv_backward::<T>(
                contiguous(xs, xl, "input")?,
                contiguous(ws, wl, "weight")?,
                contiguous(gs, gl, "output gradient")?,
                y.map(|y| (y, scale)),
                g,
                op.input_grad,
            ))
        }
        let expected = [g.batch, g.out_channels, g.out_h, g.out_w];
        if gl.shape().dims() != expected {
            bail!(
                "conv2d backward: gradient shape {:?}, expected {expected:?}",
                gl.shape()
            )
        }
        let storage = match xs {
            CpuStorage::F32(_) => {
                CpuStorage::F32(run::<f32>(self, &g, (xs, xl), (ws, wl), (gs, gl))?)
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(run::<f64>(self, &g, (xs, xl), (ws, wl), (gs, gl))?)
            }
            other => bail!("conv2d: dtype {:?} not supported (f32, f64)", other.dtype()),
        };
        let len = storage_len(&storage);
        Ok((storage, Shape::from(len)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::conv_backward(
            self.stride,
            self.pad,
            self.input_grad,
            (xs, xl),
            (ws, wl),
            (gs, gl),
        )
    }
}

/// `(dy, y) -> dy * (y > 0)`: the ReLU's backward from its output (PyTorch: no gradient at 0).
struct ReluMaskOp;

fn relu_mask<T: WithDType>(dy: &[T], y: &[T]) -> Vec<T> {
    let mut out = uninit::<T>(dy.len());
    out.par_chunks_mut(1 << 16)
        .zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16)))
        .for_each(|(o, (d, y))| {
            // An unconditional select (not a conditional store) so that it vectorises.
            for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
                o.write(if y > T::zero() { d } else { T::zero() });
            }
        });
    // SAFETY: the chunks cover `out` and write every element (dy and y have its length).
    unsafe { assume_init(out) }
}

impl CustomOp2 for ReluMaskOp {
    fn name(&self) -> &'static str {
        "allconv-relu-mask"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if gl.shape() != yl.shape() {
            bail!(
                "relu mask: gradient {:?} and output {:?} differ",
                gl.shape(),
                yl.shape()
            )
        }
        let storage = match gs {
            CpuStorage::F32(_) => CpuStorage::F32(relu_mask::<f32>(
                contiguous(gs, gl, "gradient")?,
                contiguous(ys, yl, "output")?,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(relu_mask::<f64>(
                contiguous(gs, gl, "gradient")?,
                contiguous(ys, yl, "output")?,
            )),
            other => bail!(
                "relu mask: dtype {:?} not supported (f32, f64)",
                other.dtype()
            ),
        };
        Ok((storage, gl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        ys: &candle_core::CudaStorage,
        yl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::relu_mask((gs, gl), (ys, yl))
    }
}

/// Whether our ops run `x` (f32/f64 on the CPU; f32 on CUDA with the `cuda` feature), rather
/// than the candle fallback.
pub(crate) fn own_kernels(x: &Tensor) -> bool {
    match x.device() {
        Device::Cpu => matches!(x.dtype(), DType::F32 | DType::F64),
        Device::Cuda(_) => cfg!(feature = "cuda") && x.dtype() == DType::F32,
        _ => false,
    }
}

fn storage_len(s: &CpuStorage) -> usize {
    match s {
        CpuStorage::F32(v) => v.len(),
        CpuStorage::F64(v) => v.len(),
        _ => 0,
    }
}

/// 2-D convolution with bias: `x [N, C, H, W]`, `weight [O, C, kh, kw]` (PyTorch layout),
/// `bias [O]`, the same `stride` and zero padding `pad` in both directions -> `[N, O, Ho, Wo]`.
///
/// On the CPU with f32 or f64 this is im2col + GEMM with a GEMM backward pass (see the module
/// documentation); on other devices or dtypes it is candle's own `conv2d` plus a bias.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    conv2d_impl(x, weight, bias, stride, pad, false)
}

/// `relu(conv2d(x, weight, bias, stride, pad))`, fused on the CPU (the backward pass masks the
/// gradient with `output > 0`, as PyTorch's ReLU).
pub fn conv2d_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    conv2d_impl(x, weight, bias, stride, pad, true)
}

/// `dropout(relu(conv2d(x, weight, bias, stride, pad)))` with [`Dropout`]'s mask: the same
/// values and gradients as [`conv2d_relu`] followed by [`super::dropout()`].
///
/// Why fused: on the CPU (f32, f64) the mask is applied to each output row while the
/// convolution has it in cache, and the ReLU output is never a graph node: candle's backward
/// would otherwise allocate a zeroed gradient for it, add the dropout's gradient into it and
/// regenerate the mask, whole passes over the tensor per step. The backward masks the gradient
/// with `output > 0` (positive exactly where the ReLU output is positive and the element was
/// kept) and scales it by `1 / (1 - rate)`, as the two backward passes would. Elsewhere (CUDA,
/// other dtypes, rate 0) the two ops unfused.
pub fn conv2d_relu_dropout(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    dropout: Dropout,
) -> Result<Tensor> {
    let dropout = Dropout::new(dropout.rate, dropout.seed, dropout.stream)?;
    let cpu_float =
        matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
    if !cpu_float || dropout.rate == 0.0 {
        let y = conv2d_relu(x, weight, bias, stride, pad)?;
        return super::dropout(&y, dropout.rate, dropout.seed, dropout.stream);
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        Conv2dOp {
            stride,
            pad,
            relu: true,
            dropout: Some(dropout),
        },
    )
}

fn conv2d_impl(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    relu: bool,
) -> Result<Tensor> {
    if own_kernels(x) {
        x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            Conv2dOp {
                stride,
                pad,
                relu,
                dropout: None,
            },
        )
    } else {
        let out_channels = weight.dim(0)?;
        let y = x
            .conv2d(weight, pad, stride, 1, 1)?
            .broadcast_add(&bias.reshape((1, out_channels, 1, 1))?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) from a small LCG.
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6364136223846793005) | 1;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// The definition, one multiply-add at a time: `(y, dx, dw, db)` for output gradient `dy`.
    #[allow(clippy::type_complexity)]
    fn direct(
        x: &[f64],
        w: &[f64],
        b: &[f64],
        dy: &[f64],
        g: &Geom,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; g.batch * g.out_len()];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; b.len()];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oy in 0..g.out_h {
                    for ox in 0..g.out_w {
                        let yi = ((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox;
                        let mut acc = b[o];
                        db[o] += dy[yi];
                        for c in 0..g.in_channels {
                            for i in 0..g.kernel_h {
                                for j in 0..g.kernel_w {
                                    let iy = (oy * g.stride + i) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + j) as isize - g.pad as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= g.height as isize
                                        || ix >= g.width as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * g.in_channels + c) * g.height + iy as usize)
                                        * g.width
                                        + ix as usize;
                                    let wi =
                                        ((o * g.in_channels + c) * g.kernel_h + i) * g.kernel_w + j;
                                    acc += w[wi] * x[xi];
                                    dx[xi] += w[wi] * dy[yi];
                                    dw[wi] += x[xi] * dy[yi];
                                }
                            }
                        }
                        y[yi] = acc;
                    }
                }
            }
        }
        (y, dx, dw, db)
    }

    fn assert_close(what: &str, got: &[f64], expected: &[f64]) {
        assert_eq!(got.len(), expected.len(), "{what}: length");
        for (i, (a, e)) in got.iter().zip(expected).enumerate() {
            assert!((a - e).abs() < 1e-12, "{what}[{i}]: {a} vs {e}");
        }
    }

    /// Forward (with and without ReLU), backward (all of [dx; dw; db], parameters only, and with
    /// the ReLU mask) of random x, w, b, dy (from `seeds`) against [`direct`], under each thread
    /// count.
    fn check_against_definition(g: &Geom, seeds: [u64; 4], threads: &[usize], label: &str) {
        let x = values(g.batch * g.in_channels * g.height * g.width, seeds[0]);
        let w = values(
            g.out_channels * g.in_channels * g.kernel_h * g.kernel_w,
            seeds[1],
        );
        let b = values(g.out_channels, seeds[2]);
        let dy = values(g.batch * g.out_len(), seeds[3]);
        let (y, dx, dw, db) = direct(&x, &w, &b, &dy, g);
        for &threads in threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let case = format!("{label}, {threads} threads");
            pool.install(|| {
                assert_close(&case, &conv_forward(&x, &w, &b, g, false, None), &y);
                let relu: Vec<f64> = y.iter().map(|v| v.max(0.0)).collect();
                assert_close(&case, &conv_forward(&x, &w, &b, g, true, None), &relu);
                let all: Vec<f64> = dx.iter().chain(&dw).chain(&db).copied().collect();
                assert_close(&case, &conv_backward(&x, &w, &dy, None, g, true), &all);
                let params: Vec<f64> = dw.iter().chain(&db).copied().collect();
                assert_close(&case, &conv_backward(&x, &w, &dy, None, g, false), &params);
                // With a fused ReLU: the gradient only where the output is positive.
                let masked: Vec<f64> = dy
                    .iter()
                    .zip(&y)
                    .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
                    .collect();
                let (_, mx, mw, mb) = direct(&x, &w, &b, &masked, g);
                let all: Vec<f64> = mx.iter().chain(&mw).chain(&mb).copied().collect();
                let got = conv_backward(&x, &w, &dy, Some((&relu, None)), g, true);
                assert_close(&format!("{case} relu"), &got, &all);
            });
        }
    }

    #[test]
    fn products_in_blocks_of_output_rows_equal_the_definition() {
        // 52 channels at 24x24 (3x3: 468 x 576 columns, 5x5: 1300 x 576) exceed
        // BLOCK_ELEMENTS, so every image goes in blocks of 11 output rows (the last one
        // shorter), forward and backward, with and without the ReLU mask.
        for (kernel, pad) in [(3, 1), (5, 2)] {
            let (batch, c, h, wd, o) = (3, 52, 24, 24, 4);
            let xl = Layout::contiguous((batch, c, h, wd));
            let wl = Layout::contiguous((o, c, kernel, kernel));
            let g = Geom::new(&xl, &wl, 1, pad).unwrap();
            assert!(g.block_rows() < g.out_h && g.out_h % g.block_rows() != 0);
            let case = format!("k{kernel} blocked");
            check_against_definition(&g, [5, 6, 7, 8], &[1, 2], &case);
        }
    }

    #[test]
    fn grouped_and_single_image_products_equal_the_definition() {
        // 9x8 images with 7 in the batch: groups of several images (6x6 ... 9x8 outputs), a
        // last group smaller than the others (1 thread: 7 = 4 + 3 at 72 columns), single-image
        // chunks (7 threads), 1x1 convolutions (gathered, not im2col'd), stride 2 and padding.
        for (kernel, stride, pad) in [
            (3, 1, 1),
            (3, 2, 1),
            (5, 1, 2),
            (1, 1, 0),
            (1, 2, 0),
            (3, 1, 0),
            (5, 2, 2),
            (3, 3, 1),
        ] {
            // Odd and even widths: the stride-2 pair loops end on a half pair or a whole one.
            for wd in [8, 7] {
                let (batch, c, h, o) = (7, 3, 9, 5);
                let xl = Layout::contiguous((batch, c, h, wd));
                let wl = Layout::contiguous((o, c, kernel, kernel));
                let g = Geom::new(&xl, &wl, stride, pad).unwrap();
                let case = format!("k{kernel} s{stride} p{pad} w{wd}");
                check_against_definition(&g, [1, 2, 3, 4], &[1, 2, 7], &case);
            }
        }
    }
}
