//! The memory rearrangements of the CPU convolution: im2col (an image to its column matrix),
//! col2im (its adjoint, for the input gradient), their stride-2 pair loops, and [`gather`] of
//! several images' matrices side by side into one GEMM operand.

use std::ops::Range;

use candle_core::WithDType;

use super::geom::Geom;

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
                    let src = &plane[(oy * g.stride + i - g.pad) * g.width..][..g.width];
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
pub(super) fn gather_even<T: WithDType>(src: &[T], out: &mut [T]) {
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
pub(super) fn add_even<T: WithDType>(src: &[T], dst: &mut [T]) {
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
        // Every row length, each with the source (destination) one short of 2n values (a row
        // ending on a half pair), exactly 2n and with room to spare, against the definitions
        // `out[x] = src[2x]` and `dst[2x] += src[x]`.
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
