//! The memory rearrangements of the CPU convolution: im2col (an image to its column matrix),
//! col2im (its adjoint, for the input gradient), both over the planes of `phases.rs`, and
//! [`gather`] of several images' matrices side by side into one GEMM operand.

use std::ops::Range;

use candle_core::WithDType;

use super::geom::Geom;
use super::phases::{merge, split, Tap, Taps};

/// Copies one image `[C, H, W]` into its column matrix `[C*kh*kw, Ho*Wo]` (zeros for padding),
/// whose rows start `ld` elements apart (`ld >= Ho*Wo`: several images side by side); only
/// output rows `oys` (then the matrix has `oys.len() * Wo` columns, from output row
/// `oys.start` on). A strided convolution first splits the image into its polyphase components
/// in `phases` (scratch, grown as needed; see `phases.rs`).
pub(super) fn im2col<T: WithDType>(
    image: &[T],
    cols: &mut [T],
    ld: usize,
    g: &Geom,
    oys: Range<usize>,
    phases: &mut Vec<T>,
) {
    let taps = Taps::new(g);
    let planes = if g.uses_phases() {
        let phases = scratch(phases, image.len());
        split(image, phases, g, &taps);
        &*phases
    } else {
        image
    };
    let l = oys.len() * g.out_w;
    let mut rows = (0..g.k()).map(|r| r * ld);
    for c in 0..g.in_channels {
        for ij in 0..g.kernel_h * g.kernel_w {
            let start = rows.next().expect("row count is C*kh*kw");
            let row = &mut cols[start..start + l];
            copy_window(planes, taps.tap(c, ij), row, oys.clone(), g.out_w);
        }
    }
}

/// The first `len` elements of a scratch buffer, grown (never shrunk) to hold them.
fn scratch<T: WithDType>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len {
        buffer.resize(len, T::zero());
    }
    &mut buffer[..len]
}

/// Output positions `[first, end)` within `[lo, hi)` whose shifted index `o + shift` lies in
/// `[0, size)`.
fn valid(shift: isize, size: usize, lo: usize, hi: usize) -> (usize, usize) {
    let first = (-shift).clamp(lo as isize, hi as isize);
    let end = (size as isize - shift).clamp(first, hi as isize);
    (first as usize, end as usize)
}

/// One row of the column matrix for output rows `oys` (`ow` wide): the tap's plane read at
/// `(oy + dy, ox + dx)`, zero outside it.
fn copy_window<T: WithDType>(planes: &[T], tap: Tap, out: &mut [T], oys: Range<usize>, ow: usize) {
    let r0 = oys.start;
    let (oy0, oy1) = valid(tap.dy, tap.h, oys.start, oys.end);
    let (ox0, ox1) = valid(tap.dx, tap.w, 0, ow);
    if oy0 == oy1 || ox0 == ox1 {
        out.fill(T::zero());
        return;
    }
    let plane = &planes[tap.offset..tap.offset + tap.h * tap.w];
    let at = |oy: usize, ox: usize| {
        (oy as isize + tap.dy) as usize * tap.w + (ox as isize + tap.dx) as usize
    };
    if tap.w == ow {
        // Output rows as wide as the plane's: the valid samples of all output rows are one
        // shifted run of the plane (one long copy instead of one short copy per row), after
        // which the samples that wrapped around a row edge (padding) are zeroed.
        let (first, end) = ((oy0 - r0) * ow + ox0, (oy1 - 1 - r0) * ow + ox1);
        let src = at(oy0, ox0);
        out[first..end].copy_from_slice(&plane[src..src + end - first]);
        zero_short(&mut out[..first]);
        zero_short(&mut out[end..]);
        for oy in oy0 - r0..oy1 - 1 - r0 {
            zero_short(&mut out[oy * ow + ox1..(oy + 1) * ow + ox0]);
        }
        return;
    }
    out[..(oy0 - r0) * ow].fill(T::zero());
    out[(oy1 - r0) * ow..].fill(T::zero());
    for oy in oy0..oy1 {
        let row = &mut out[(oy - r0) * ow..(oy - r0 + 1) * ow];
        zero_short(&mut row[..ox0]);
        zero_short(&mut row[ox1..]);
        let src = at(oy, ox0);
        copy_short(&mut row[ox0..ox1], &plane[src..src + ox1 - ox0]);
    }
}

/// `dst.copy_from_slice(src)` (equal lengths) for the short runs of im2col: the output rows of a
/// small image (6 or 8 values) and the padding next to them are copied or zeroed once per row of
/// the column matrix, tens of thousands of times per image. A `memcpy` / `memset` call per run
/// cost more than the copy (perf: ~12% of a Model A training step on an AVX-512 Xeon, in calls
/// of 24 bytes); runs up to 128 bytes are moved here as two overlapping fixed-size blocks of
/// 16-byte integers, which compile to a few vector loads and stores.
///
/// Why integers and not `copy_from_slice` on fixed-size sub-slices: LLVM merged the branches'
/// constant-size copies into one `memcpy` call with a variable length once this was inlined
/// into a larger function (All-CNN-C's 8x8 layers then spent 80% of their time in `memmove`);
/// loads and stores of different counts cannot be merged that way.
#[inline(always)]
pub(super) fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    assert_eq!(n, src.len(), "copy_short: lengths differ");
    let bytes = std::mem::size_of_val(dst);
    if bytes > 128 {
        dst.copy_from_slice(src);
        return;
    }
    // SAFETY: `src` and `dst` are `bytes` long (equal lengths, checked), distinct borrows (so
    // they do not overlap), and every block below lies within `0..bytes`; unaligned reads and
    // writes of plain integers have no validity requirements beyond the bytes being there.
    unsafe { copy_bytes(dst.as_mut_ptr().cast(), src.as_ptr().cast(), bytes) }
}

/// Copies `bytes <= 128` bytes as two overlapping blocks (see [`copy_short`]).
///
/// # Safety
/// `src` and `dst` must be valid for `bytes` bytes and not overlap.
#[inline(always)]
unsafe fn copy_bytes(dst: *mut u8, src: *const u8, bytes: usize) {
    use std::ptr::{read_unaligned as rd, write_unaligned as wr};
    // Loads first, then stores: the blocks overlap (the pointers do not).
    let q = |at: usize| rd(src.add(at).cast::<u128>());
    let put = |at: usize, v: u128| wr(dst.add(at).cast::<u128>(), v);
    match bytes {
        0 => {}
        1..=3 => {
            for b in 0..bytes {
                *dst.add(b) = *src.add(b);
            }
        }
        4..=7 => {
            let (a, b) = (rd(src.cast::<u32>()), rd(src.add(bytes - 4).cast::<u32>()));
            wr(dst.cast::<u32>(), a);
            wr(dst.add(bytes - 4).cast::<u32>(), b);
        }
        8..=15 => {
            let (a, b) = (rd(src.cast::<u64>()), rd(src.add(bytes - 8).cast::<u64>()));
            wr(dst.cast::<u64>(), a);
            wr(dst.add(bytes - 8).cast::<u64>(), b);
        }
        16..=31 => {
            let (a, b) = (q(0), q(bytes - 16));
            put(0, a);
            put(bytes - 16, b);
        }
        32..=63 => {
            let (a0, a1, b0, b1) = (q(0), q(16), q(bytes - 32), q(bytes - 16));
            put(0, a0);
            put(16, a1);
            put(bytes - 32, b0);
            put(bytes - 16, b1);
        }
        _ => {
            let (a0, a1, a2, a3) = (q(0), q(16), q(32), q(48));
            let (b0, b1, b2, b3) = (q(bytes - 64), q(bytes - 48), q(bytes - 32), q(bytes - 16));
            put(0, a0);
            put(16, a1);
            put(32, a2);
            put(48, a3);
            put(bytes - 64, b0);
            put(bytes - 48, b1);
            put(bytes - 32, b2);
            put(bytes - 16, b3);
        }
    }
}

/// `dst.fill(0)` without a `memset` call for the short runs of [`copy_short`]'s callers.
#[inline(always)]
pub(super) fn zero_short<T: WithDType>(dst: &mut [T]) {
    const ZEROS: [u8; 128] = [0; 128];
    let bytes = std::mem::size_of_val(dst);
    if bytes > 128 {
        dst.fill(T::zero());
        return;
    }
    // Every dtype candle has (integers, IEEE and bfloat floats) spells zero with zero bits.
    debug_assert!(dst.is_empty() || T::zero().to_f64() == 0.0);
    // SAFETY: `ZEROS` holds 128 >= `bytes` bytes and is not `dst`; the all-zero bit pattern is
    // `T::zero()` for every `WithDType` (above).
    unsafe { copy_bytes(dst.as_mut_ptr().cast(), ZEROS.as_ptr(), bytes) }
}

/// Whether the image [`col2im`] adds into may hold anything or is known to be all zeros (then a
/// strided convolution starts its components at zero instead of reading them from the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Any,
    Zeros,
}

/// Adds a column matrix (rows `ld` elements apart) of output rows `oys` into one image: the
/// adjoint of [`im2col`]. Every input value receives its taps' contributions in the same order
/// as with a direct element loop (a strided convolution adds into the image's components, split
/// from its current values, then writes them back), so the sums do not depend on this layout.
pub(super) fn col2im<T: WithDType>(
    cols: &[T],
    ld: usize,
    (image, target): (&mut [T], Target),
    g: &Geom,
    oys: Range<usize>,
    phases: &mut Vec<T>,
) {
    let taps = Taps::new(g);
    if g.uses_phases() {
        let phases = scratch(phases, image.len());
        match target {
            Target::Any => split(image, phases, g, &taps),
            Target::Zeros => phases.fill(T::zero()),
        }
        add_taps(cols, ld, phases, g, &taps, oys);
        merge(phases, image, g, &taps);
    } else {
        add_taps(cols, ld, image, g, &taps, oys);
    }
}

/// The tap loop of [`col2im`] into the planes of `taps`.
fn add_taps<T: WithDType>(
    cols: &[T],
    ld: usize,
    planes: &mut [T],
    g: &Geom,
    taps: &Taps,
    oys: Range<usize>,
) {
    let (r0, ow) = (oys.start, g.out_w);
    let l = oys.len() * ow;
    let mut rows = (0..g.k()).map(|r| r * ld);
    for c in 0..g.in_channels {
        for ij in 0..g.kernel_h * g.kernel_w {
            let start = rows.next().expect("row count is C*kh*kw");
            let row = &cols[start..start + l];
            let tap = taps.tap(c, ij);
            let (oy0, oy1) = valid(tap.dy, tap.h, oys.start, oys.end);
            let (ox0, ox1) = valid(tap.dx, tap.w, 0, ow);
            let plane = &mut planes[tap.offset..tap.offset + tap.h * tap.w];
            for oy in oy0..oy1 {
                let src = &row[(oy - r0) * ow + ox0..(oy - r0) * ow + ox1];
                let at = (oy as isize + tap.dy) as usize * tap.w;
                let dst = &mut plane[at..at + tap.w];
                let x0 = (ox0 as isize + tap.dx) as usize;
                for (d, s) in dst[x0..x0 + src.len()].iter_mut().zip(src) {
                    *d += *s;
                }
            }
        }
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
    phases: &mut Vec<T>,
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
            im2col(xb, &mut cols[i * l..], n, g, 0..g.out_h, phases);
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::super::geom::Geom;
    use super::{col2im, copy_short, im2col, zero_short, Target};

    /// Input index of output `o` at kernel offset `k`, if inside `[0, size)`.
    fn source(o: usize, k: usize, g: &Geom, size: usize) -> Option<usize> {
        (o * g.stride + k).checked_sub(g.pad).filter(|&v| v < size)
    }

    #[test]
    fn im2col_and_col2im_equal_their_element_loops_bit_for_bit() {
        // The definitions, one element at a time: cols[(c, i, j)][(oy, ox)] = x[c][s oy + i - p]
        // [s ox + j - p] (0 outside), and its adjoint adding the columns into an image in the
        // same (c, i, j, oy, ox) order, which fixes every sum's rounding. Stride 1-3, padding
        // 0-2, odd and even sizes, rows of the matrix wider than the image's columns (ld), all
        // rows and a block of them, and an image that is not zero before col2im.
        let mut phases = Vec::new();
        for (h, w) in [(7, 6), (8, 8), (5, 9), (32, 32), (16, 16), (2, 3)] {
            for stride in 1..=3 {
                for pad in 0..=2 {
                    for k in [1, 2, 3, 5] {
                        if h + 2 * pad < k || w + 2 * pad < k {
                            continue;
                        }
                        let g = Geom::square(3, (h, w), k, stride, pad);
                        let image: Vec<f32> =
                            (0..g.in_len()).map(|v| (v as f32 * 0.37).sin()).collect();
                        let blocks = [0..g.out_h, g.out_h / 2..g.out_h];
                        for oys in blocks {
                            let ld = oys.len() * g.out_w + 3;
                            let mut cols = vec![f32::NAN; g.k() * ld];
                            im2col(&image, &mut cols, ld, &g, oys.clone(), &mut phases);
                            let mut expected_image: Vec<f32> =
                                (0..g.in_len()).map(|v| v as f32 * 0.01).collect();
                            let mut ours_image = expected_image.clone();
                            let mut expected_from_zero = vec![0f32; g.in_len()];
                            let cols_in: Vec<f32> =
                                (0..cols.len()).map(|v| (v as f32 * 0.73).cos()).collect();
                            let mut row = 0;
                            for c in 0..3 {
                                for i in 0..k {
                                    for j in 0..k {
                                        for (r, oy) in oys.clone().enumerate() {
                                            for ox in 0..g.out_w {
                                                let at = row * ld + r * g.out_w + ox;
                                                let src = source(oy, i, &g, h)
                                                    .zip(source(ox, j, &g, w))
                                                    .map(|(y, x)| (c * h + y) * w + x);
                                                let want = src.map_or(0.0, |s| image[s]);
                                                assert_eq!(
                                                    cols[at].to_bits(),
                                                    want.to_bits(),
                                                    "im2col {h}x{w} s{stride} p{pad} k{k} \
                                                     rows {oys:?} at ({c},{i},{j},{oy},{ox})"
                                                );
                                                if let Some(s) = src {
                                                    expected_image[s] += cols_in[at];
                                                    expected_from_zero[s] += cols_in[at];
                                                }
                                            }
                                        }
                                        row += 1;
                                    }
                                }
                            }
                            let target = (&mut ours_image[..], Target::Any);
                            col2im(&cols_in, ld, target, &g, oys.clone(), &mut phases);
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&ours_image),
                                bits(&expected_image),
                                "col2im {h}x{w} s{stride} p{pad} k{k} rows {oys:?}"
                            );
                            // Into an image of zeros that col2im is told is one.
                            let mut zeros = vec![0f32; g.in_len()];
                            let target = (&mut zeros[..], Target::Zeros);
                            col2im(&cols_in, ld, target, &g, oys.clone(), &mut phases);
                            assert_eq!(
                                bits(&zeros),
                                bits(&expected_from_zero),
                                "col2im into zeros {h}x{w} s{stride} p{pad} k{k} rows {oys:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn short_copies_and_zeroing_equal_the_slice_methods_for_every_length() {
        // Every length through the overlapping-block cases and past them (f32 and f64, so
        // every block size from 4 to 128 bytes and the plain copy above it), at every offset of
        // a longer buffer, against `copy_from_slice` / `fill` on the same buffers.
        fn every_length<T: candle_core::WithDType + std::fmt::Debug>() {
            let src: Vec<T> = (0..80).map(|i| T::from_f64(i as f64 + 0.5)).collect();
            for n in 0..=40 {
                for offset in 0..4 {
                    let mut ours = vec![T::from_f64(-1.0); 80];
                    let mut expected = ours.clone();
                    copy_short(&mut ours[offset..offset + n], &src[3..3 + n]);
                    expected[offset..offset + n].copy_from_slice(&src[3..3 + n]);
                    assert_eq!(ours, expected, "copy of {n} at {offset}");
                    zero_short(&mut ours[offset..offset + n]);
                    expected[offset..offset + n].fill(T::zero());
                    assert_eq!(ours, expected, "zeroing of {n} at {offset}");
                }
            }
        }
        every_length::<f32>();
        every_length::<f64>();
    }
}
