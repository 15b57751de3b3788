//! The memory rearrangements of the CPU convolution: im2col (an image to its column matrix),
//! col2im (its adjoint, for the input gradient), their stride-2 pair loops, and [`gather`] of
//! several images' matrices side by side into one GEMM operand.
//!
//! im2col and col2im are compiled once per kernel path: the same code, with the path's
//! instruction set enabled (`#[target_feature]`), chosen at run time by the one switch
//! [`crate::ops::cpu_kernels`] sets. Without that, the x86-64 baseline (SSE2) is all LLVM may use,
//! and the stride-2 sampling of All-CNN-C's strided layers ran 4 values per instruction instead
//! of 16. They only move and add values, in the same order on every path, so every path gives
//! the same bits.

use std::ops::Range;

use candle_core::WithDType;

use super::geom::Geom;
use crate::ops::cpu_kernels::{chosen, CpuKernels};

/// Defines `$avx512` and `$avx2`: the `#[inline(always)]` function `$name` compiled with that
/// path's instruction set enabled (callers must check the CPU has it: [`chosen`] does).
macro_rules! per_kernel_path {
    ($name:ident, $avx512:ident, $avx2:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx512<T: WithDType>($($arg: $ty),*) {
            $name($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2<T: WithDType>($($arg: $ty),*) {
            $name($($arg),*)
        }
    };
}

/// Copies one image `[C, H, W]` into its column matrix `[C*kh*kw, Ho*Wo]` (zeros for padding),
/// whose rows start `ld` elements apart (`ld >= Ho*Wo`: several images side by side); only
/// output rows `oys` (then the matrix has `oys.len() * Wo` columns, from output row
/// `oys.start` on).
pub(super) fn im2col<T: WithDType>(
    image: &[T],
    cols: &mut [T],
    ld: usize,
    g: &Geom,
    oys: Range<usize>,
) {
    match chosen() {
        // SAFETY: `chosen` returns a path only where the CPU supports its instruction set.
        #[cfg(target_arch = "x86_64")]
        CpuKernels::Avx512 => unsafe { im2col_avx512(image, cols, ld, g, oys) },
        #[cfg(target_arch = "x86_64")]
        CpuKernels::Avx2 => unsafe { im2col_avx2(image, cols, ld, g, oys) },
        _ => im2col_any(image, cols, ld, g, oys),
    }
}

per_kernel_path!(im2col_any, im2col_avx512, im2col_avx2,
    (image: &[T], cols: &mut [T], ld: usize, g: &Geom, oys: Range<usize>));

/// [`im2col`]'s code, compiled into each kernel path's version.
#[inline(always)]
fn im2col_any<T: WithDType>(image: &[T], cols: &mut [T], ld: usize, g: &Geom, oys: Range<usize>) {
    let (r0, r1, ow) = (oys.start, oys.end, g.out_w);
    let l = (r1 - r0) * ow;
    let mut rows = (0..g.k()).map(|r| r * ld);
    for c in 0..g.in_channels {
        let plane = &image[c * g.height * g.width..];
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
                    zero_short(&mut row[..first]);
                    zero_short(&mut row[end..]);
                    for oy in oy0 - r0..oy1 - 1 - r0 {
                        zero_short(&mut row[oy * ow + ox1..(oy + 1) * ow + ox0]);
                    }
                    continue;
                }
                row[..(oy0 - r0) * ow].fill(T::zero());
                row[(oy1 - r0) * ow..].fill(T::zero());
                for oy in oy0..oy1 {
                    let out = &mut row[(oy - r0) * ow..(oy - r0 + 1) * ow];
                    zero_short(&mut out[..ox0]);
                    zero_short(&mut out[ox1..]);
                    // The rest of the image from this input row on (the stride-2 copy reads
                    // past the row's end when it can).
                    let src = &plane[(oy * g.stride + i - g.pad) * g.width..];
                    if g.stride == 1 {
                        let start = ox0 + j - g.pad;
                        copy_short(&mut out[ox0..ox1], &src[start..start + ox1 - ox0]);
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

/// `dst.copy_from_slice(src)` (equal lengths) for the short runs of im2col: the output rows of a
/// small image (6 or 8 values) and the padding next to them are copied or zeroed once per row of
/// the column matrix, tens of thousands of times per image. A `memcpy` / `memset` call per run
/// cost more than the copy (perf: ~12% of a Model A training step on an AVX-512 Xeon, in calls
/// of 24 bytes); runs up to 16 values are moved here as two overlapping fixed-size blocks,
/// which compile to a few vector loads and stores.
#[inline(always)]
pub(super) fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    assert_eq!(n, src.len(), "copy_short: lengths differ");
    match n {
        0 => {}
        1 => dst[0] = src[0],
        2..=3 => {
            dst[..2].copy_from_slice(&src[..2]);
            dst[n - 2..].copy_from_slice(&src[n - 2..]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// `dst.fill(0)` without a `memset` call for the short runs of [`copy_short`]'s callers.
#[inline(always)]
pub(super) fn zero_short<T: WithDType>(dst: &mut [T]) {
    let n = dst.len();
    let z = T::zero();
    match n {
        0 => {}
        1 => dst[0] = z,
        2..=3 => {
            dst[..2].copy_from_slice(&[z; 2]);
            dst[n - 2..].copy_from_slice(&[z; 2]);
        }
        4..=7 => {
            dst[..4].copy_from_slice(&[z; 4]);
            dst[n - 4..].copy_from_slice(&[z; 4]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&[z; 8]);
            dst[n - 8..].copy_from_slice(&[z; 8]);
        }
        _ => dst.fill(z),
    }
}

/// Adds a column matrix (rows `ld` elements apart) of output rows `oys` into one image: the
/// adjoint of [`im2col`] when `image` starts at zero.
pub(super) fn col2im<T: WithDType>(
    cols: &[T],
    ld: usize,
    image: &mut [T],
    g: &Geom,
    oys: Range<usize>,
) {
    match chosen() {
        // SAFETY: `chosen` returns a path only where the CPU supports its instruction set.
        #[cfg(target_arch = "x86_64")]
        CpuKernels::Avx512 => unsafe { col2im_avx512(cols, ld, image, g, oys) },
        #[cfg(target_arch = "x86_64")]
        CpuKernels::Avx2 => unsafe { col2im_avx2(cols, ld, image, g, oys) },
        _ => col2im_any(cols, ld, image, g, oys),
    }
}

per_kernel_path!(col2im_any, col2im_avx512, col2im_avx2,
    (cols: &[T], ld: usize, image: &mut [T], g: &Geom, oys: Range<usize>));

/// [`col2im`]'s code, compiled into each kernel path's version.
#[inline(always)]
fn col2im_any<T: WithDType>(cols: &[T], ld: usize, image: &mut [T], g: &Geom, oys: Range<usize>) {
    let (r0, r1, ow) = (oys.start, oys.end, g.out_w);
    let l = (r1 - r0) * ow;
    let mut rows = (0..g.k()).map(|r| r * ld);
    for c in 0..g.in_channels {
        let plane = &mut image[c * g.height * g.width..];
        for i in 0..g.kernel_h {
            let (oy0, oy1) = g.valid_range(i, g.height, g.out_h);
            let (oy0, oy1) = (oy0.clamp(r0, r1), oy1.clamp(r0, r1));
            for j in 0..g.kernel_w {
                let start = rows.next().expect("row count is C*kh*kw");
                let row = &cols[start..start + l];
                let (ox0, ox1) = g.valid_range(j, g.width, g.out_w);
                for oy in oy0..oy1 {
                    let src = &row[(oy - r0) * ow..(oy - r0 + 1) * ow];
                    // The rest of the image from this input row on (the stride-2 scatter
                    // rewrites values past the row's end unchanged when it can).
                    let dst = &mut plane[(oy * g.stride + i - g.pad) * g.width..];
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

/// `out[x] = src[2 x]` for every `x` of `out` (`src` holds at least `2 out.len() - 1` elements;
/// callers pass the rest of the image after the row, so that it usually holds `2 out.len()`).
///
/// Stride-2 sampling in fixed blocks of 8 (or 4) outputs from 16 (or 8) inputs, the last block
/// overlapping the one before it, as in [`copy_short`]: LLVM turns each block into a few loads
/// and shuffles. The indexed loop with a run-time stride stays scalar, and a plain pairwise
/// loop is vectorised for long rows only: All-CNN-C's rows (16, 8 and 7 outputs) ran one value
/// at a time. No crate offers this strided copy.
#[inline(always)]
pub(super) fn gather_even<T: WithDType>(src: &[T], out: &mut [T]) {
    let n = out.len();
    if src.len() < 2 * n || n < 4 {
        for (x, o) in out.iter_mut().enumerate() {
            *o = src[2 * x];
        }
    } else if n < 8 {
        gather_even_block::<T, 4, 8>(src, out);
        gather_even_block::<T, 4, 8>(&src[2 * (n - 4)..], &mut out[n - 4..]);
    } else {
        for x in (0..n - 7).step_by(8) {
            gather_even_block::<T, 8, 16>(&src[2 * x..], &mut out[x..]);
        }
        if n % 8 != 0 {
            gather_even_block::<T, 8, 16>(&src[2 * (n - 8)..], &mut out[n - 8..]);
        }
    }
}

/// `out[x] = src[2 x]` for `x < N` (`M = 2 N`: stable Rust cannot write `2 * N` as a length).
#[inline(always)]
fn gather_even_block<T: WithDType, const N: usize, const M: usize>(src: &[T], out: &mut [T]) {
    let src: &[T; M] = src[..M].try_into().expect("a block of M inputs");
    let out: &mut [T; N] = (&mut out[..N]).try_into().expect("a block of N outputs");
    for x in 0..N {
        out[x] = src[2 * x];
    }
}

/// `dst[2 x] += src[x]` for every `x` of `src` (`dst` holds at least `2 src.len() - 1`
/// elements; callers pass the rest of the image after the row): the stride-2 scatter of
/// [`col2im`], in the same order of additions as an element-by-element loop. Blocks of 8
/// inputs rewrite 16 outputs whole (the odd ones unchanged, possibly the first of the next
/// row) so that LLVM vectorises them with full stores; unlike the gather, blocks cannot
/// overlap (that would add twice), so the last few values go one at a time.
#[inline(always)]
pub(super) fn add_even<T: WithDType>(src: &[T], dst: &mut [T]) {
    let n = src.len();
    let blocks = if dst.len() >= 2 * n {
        n / 8
    } else {
        n.saturating_sub(1) / 8
    };
    let (head, tail) = src.split_at(blocks * 8);
    for (s, d) in head.chunks_exact(8).zip(dst.chunks_exact_mut(16)) {
        let s: &[T; 8] = s.try_into().expect("chunks of 8");
        let d: &mut [T; 16] = d.try_into().expect("chunks of 16");
        for t in 0..8 {
            let odd = d[2 * t + 1];
            d[2 * t] += s[t];
            d[2 * t + 1] = odd;
        }
    }
    for (t, &s) in tail.iter().enumerate() {
        dst[2 * (blocks * 8 + t)] += s;
    }
}

/// Copies `[rows, l]` matrices side by side into `dst [rows, images.len() * l]`.
pub(super) fn gather<T: WithDType>(images: &[&[T]], rows: usize, l: usize, dst: &mut [T]) {
    let n = images.len() * l;
    for r in 0..rows {
        for (i, image) in images.iter().enumerate() {
            dst[r * n + i * l..][..l].copy_from_slice(&image[r * l..][..l]);
        }
    }
}

/// The column matrix `[C*kh*kw, images.len() * Ho*Wo]` of `images` side by side: a single
/// pointwise image is its own column matrix (no copy); otherwise the images are gathered (1x1)
/// or im2col'd into `cols`.
pub(super) fn columns<'a, T: WithDType>(
    images: &[&'a [T]],
    cols: &'a mut [T],
    g: &Geom,
) -> &'a [T] {
    let (k, l) = (g.k(), g.l());
    let n = images.len() * l;
    if g.pointwise() && images.len() == 1 {
        images[0]
    } else if g.pointwise() {
        gather(images, k, l, cols);
        cols
    } else {
        for (i, xb) in images.iter().enumerate() {
            im2col(xb, &mut cols[i * l..], n, g, 0..g.out_h);
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::{add_even, copy_short, gather_even, zero_short};

    #[test]
    fn stride_two_gather_and_scatter_equal_the_element_loops() {
        // Every row length through the scalar, 4-block, 8-block and overlapping cases, with the
        // source (destination) one short of 2n values and with room to spare, against the
        // definitions `out[x] = src[2x]` and `dst[2x] += src[x]`.
        for n in 0..=40usize {
            for len in [(2 * n).saturating_sub(1), 2 * n, 2 * n + 5] {
                let src: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 + 1.0).collect();
                let mut out = vec![-1f32; n];
                gather_even(&src, &mut out);
                let expected: Vec<f32> = (0..n).map(|x| src[2 * x]).collect();
                assert_eq!(out, expected, "gather of {n} from {len}");

                let values: Vec<f32> = (0..n).map(|x| x as f32 + 0.25).collect();
                let mut dst = src.clone();
                add_even(&values, &mut dst);
                let mut expected = src.clone();
                for (x, v) in values.iter().enumerate() {
                    expected[2 * x] += v;
                }
                assert_eq!(dst, expected, "scatter of {n} into {len}");
            }
        }
    }

    #[test]
    fn short_copies_and_zeroing_equal_the_slice_methods_for_every_length() {
        // Every length through the overlapping-block cases and past them, at every offset of
        // a longer buffer, against `copy_from_slice` / `fill` on the same buffers.
        let src: Vec<f32> = (0..40).map(|i| i as f32 + 0.5).collect();
        for n in 0..=24 {
            for offset in 0..4 {
                let mut ours = vec![-1f32; 40];
                let mut expected = ours.clone();
                copy_short(&mut ours[offset..offset + n], &src[3..3 + n]);
                expected[offset..offset + n].copy_from_slice(&src[3..3 + n]);
                assert_eq!(ours, expected, "copy of {n} at {offset}");
                zero_short(&mut ours[offset..offset + n]);
                expected[offset..offset + n].fill(0.0);
                assert_eq!(ours, expected, "zeroing of {n} at {offset}");
            }
        }
    }
}
