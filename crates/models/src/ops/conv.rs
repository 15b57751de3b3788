//! 2-D convolution with bias as im2col + GEMM in both directions on the CPU.
//!
//! Why by hand: candle 0.11 computes the input gradient of `conv2d` with a direct
//! `conv_transpose2d` loop that made a training step ~6x slower than PyTorch on the CPU. Here the
//! forward pass is `W [O, C*kh*kw] x cols [C*kh*kw, Ho*Wo]` per image, and the backward pass is
//! `dW += dY cols^T`, `dcols = W^T dY` followed by col2im (the adjoint of im2col): three GEMMs
//! (the `gemm` crate, which candle's matmul also uses) and two memory rearrangements.
//!
//! Layout choice: the batch is split into one contiguous chunk per rayon thread and every image
//! is one single-threaded GEMM, writing NCHW directly (no transposes). The columns of one image
//! are reused from cache and never kept for the backward pass (it recomputes them), so memory
//! stays at one `C*kh*kw x Ho*Wo` buffer per thread instead of the whole batch. Per-thread weight
//! gradients are summed in chunk order, so results do not depend on thread scheduling.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, WithDType,
};
use gemm::Parallelism;
use rayon::prelude::*;

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

/// Copies one image `[C, H, W]` into its column matrix `[C*kh*kw, Ho*Wo]` (zeros for padding).
fn im2col<T: WithDType>(image: &[T], cols: &mut [T], g: &Geom) {
    let (l, ow) = (g.l(), g.out_w);
    let mut rows = cols.chunks_exact_mut(l);
    for c in 0..g.in_channels {
        let plane = &image[c * g.height * g.width..(c + 1) * g.height * g.width];
        for i in 0..g.kernel_h {
            let (oy0, oy1) = g.valid_range(i, g.height, g.out_h);
            for j in 0..g.kernel_w {
                let row = rows.next().expect("row count is C*kh*kw");
                let (ox0, ox1) = g.valid_range(j, g.width, g.out_w);
                row[..oy0 * ow].fill(T::zero());
                row[oy1 * ow..].fill(T::zero());
                for oy in oy0..oy1 {
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    out[..ox0].fill(T::zero());
                    out[ox1..].fill(T::zero());
                    let src = &plane[(oy * g.stride + i - g.pad) * g.width..][..g.width];
                    if g.stride == 1 {
                        let start = ox0 + j - g.pad;
                        out[ox0..ox1].copy_from_slice(&src[start..start + ox1 - ox0]);
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

/// Adds a column matrix back into one image (the adjoint of [`im2col`]); `image` is zeroed first.
fn col2im<T: WithDType>(cols: &[T], image: &mut [T], g: &Geom) {
    image.fill(T::zero());
    let (l, ow) = (g.l(), g.out_w);
    let mut rows = cols.chunks_exact(l);
    for c in 0..g.in_channels {
        let plane = &mut image[c * g.height * g.width..(c + 1) * g.height * g.width];
        for i in 0..g.kernel_h {
            let (oy0, oy1) = g.valid_range(i, g.height, g.out_h);
            for j in 0..g.kernel_w {
                let row = rows.next().expect("row count is C*kh*kw");
                let (ox0, ox1) = g.valid_range(j, g.width, g.out_w);
                for oy in oy0..oy1 {
                    let src = &row[oy * ow..(oy + 1) * ow];
                    let dst = &mut plane[(oy * g.stride + i - g.pad) * g.width..][..g.width];
                    if g.stride == 1 {
                        let start = ox0 + j - g.pad;
                        for (d, s) in dst[start..start + ox1 - ox0].iter_mut().zip(&src[ox0..ox1]) {
                            *d += *s;
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
    assert!(dst.len() >= m * n, "matmul destination too small");
    // SAFETY: `dst` holds m*n elements (checked above) and is exclusively borrowed; the operands
    // are views of slices that the callers size to the given dimensions and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
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

fn conv_forward<T: WithDType>(x: &[T], w: &[T], b: &[T], g: &Geom, relu: bool) -> Vec<T> {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let chunk = g.chunk();
    let parallelism = g.gemm_parallelism();
    let mut y = vec![T::zero(); g.batch * g.out_len()];
    y.par_chunks_mut(chunk * g.out_len())
        .zip(x.par_chunks(chunk * g.in_len()))
        .for_each(|(y_chunk, x_chunk)| {
            let mut cols = if g.pointwise() {
                Vec::new()
            } else {
                vec![T::zero(); k * l]
            };
            for (yb, xb) in y_chunk
                .chunks_exact_mut(g.out_len())
                .zip(x_chunk.chunks_exact(g.in_len()))
            {
                let cols_ref: &[T] = if g.pointwise() {
                    xb
                } else {
                    im2col(xb, &mut cols, g);
                    &cols
                };
                for (row, &bias) in yb.chunks_exact_mut(l).zip(b) {
                    row.fill(bias);
                }
                matmul(
                    yb,
                    (o, l, k),
                    Mat::rows(w, k),
                    Mat::rows(cols_ref, l),
                    true,
                    parallelism,
                );
                if relu {
                    // While the image's output is still in cache.
                    // An unconditional select (not a conditional store) so that it vectorises.
                    for v in yb.iter_mut() {
                        *v = if *v > T::zero() { *v } else { T::zero() };
                    }
                }
            }
        });
    y
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

/// Gradients `(dx, dw, db)` of the convolution; `dx` is empty unless `input_grad`.
fn conv_backward<T: WithDType>(
    x: &[T],
    w: &[T],
    dy: &[T],
    g: &Geom,
    input_grad: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let chunk = g.chunk();
    let parallelism = g.gemm_parallelism();
    let mut dx = vec![T::zero(); if input_grad { g.batch * g.in_len() } else { 0 }];
    let work = |dx_chunk: Option<&mut [T]>, x_chunk: &[T], dy_chunk: &[T]| {
        let mut dw = vec![T::zero(); o * k];
        let mut db = vec![T::zero(); o];
        let mut cols = vec![T::zero(); if g.pointwise() { 0 } else { k * l }];
        let mut dcols = vec![
            T::zero();
            if g.pointwise() || !input_grad {
                0
            } else {
                k * l
            }
        ];
        let mut dx_images = dx_chunk.map(|d| d.chunks_exact_mut(g.in_len()));
        for (xb, dyb) in x_chunk
            .chunks_exact(g.in_len())
            .zip(dy_chunk.chunks_exact(g.out_len()))
        {
            let cols_ref: &[T] = if g.pointwise() {
                xb
            } else {
                im2col(xb, &mut cols, g);
                &cols
            };
            // dW [O, K] += dY [O, L] x cols^T [L, K]
            matmul(
                &mut dw,
                (o, k, l),
                Mat::rows(dyb, l),
                Mat::transposed(cols_ref, l),
                true,
                parallelism,
            );
            for (d, row) in db.iter_mut().zip(dyb.chunks_exact(l)) {
                *d += sum(row);
            }
            if let Some(images) = dx_images.as_mut() {
                let dxb = images.next().expect("one dx image per x image");
                // dcols [K, L] = W^T [K, O] x dY [O, L]
                let target: &mut [T] = if g.pointwise() { dxb } else { &mut dcols };
                matmul(
                    target,
                    (k, l, o),
                    Mat::transposed(w, k),
                    Mat::rows(dyb, l),
                    false,
                    parallelism,
                );
                if !g.pointwise() {
                    col2im(&dcols, dxb, g);
                }
            }
        }
        (dw, db)
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = if input_grad {
        dx.par_chunks_mut(chunk * g.in_len())
            .zip(x.par_chunks(chunk * g.in_len()))
            .zip(dy.par_chunks(chunk * g.out_len()))
            .map(|((dx_chunk, x_chunk), dy_chunk)| work(Some(dx_chunk), x_chunk, dy_chunk))
            .collect()
    } else {
        x.par_chunks(chunk * g.in_len())
            .zip(dy.par_chunks(chunk * g.out_len()))
            .map(|(x_chunk, dy_chunk)| work(None, x_chunk, dy_chunk))
            .collect()
    };
    let mut partials = partials.into_iter();
    let (mut dw, mut db) = partials.next().expect("at least one chunk");
    for (pw, pb) in partials {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += *b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += *b);
    }
    (dx, dw, db)
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
/// fused ReLU (saves candle's separate ReLU passes and their backward over the activations).
struct Conv2dOp {
    stride: usize,
    pad: usize,
    relu: bool,
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
            )),
            CpuStorage::F64(_) => CpuStorage::F64(conv_forward::<f64>(
                contiguous(xs, xl, "input")?,
                contiguous(ws, wl, "weight")?,
                contiguous(bs, bl, "bias")?,
                &g,
                self.relu,
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
        let grad = if self.relu {
            grad.contiguous()?.apply_op2_no_bwd(res, &ReluMaskOp)?
        } else {
            grad.contiguous()?
        };
        let op = Conv2dBackwardOp {
            stride: self.stride,
            pad: self.pad,
            input_grad,
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
            let (mut dx, dw, db) = conv_backward::<T>(
                contiguous(xs, xl, "input")?,
                contiguous(ws, wl, "weight")?,
                contiguous(gs, gl, "output gradient")?,
                g,
                op.input_grad,
            );
            dx.reserve_exact(dw.len() + db.len());
            dx.extend_from_slice(&dw);
            dx.extend_from_slice(&db);
            Ok(dx)
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
    let mut out = vec![T::zero(); dy.len()];
    out.par_chunks_mut(1 << 16)
        .zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16)))
        .for_each(|(o, (d, y))| {
            // An unconditional select (not a conditional store) so that it vectorises.
            for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
                *o = if y > T::zero() { d } else { T::zero() };
            }
        });
    out
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
            Conv2dOp { stride, pad, relu },
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
