//! Where each row of the column matrix reads from: for stride 1 a shifted window of an input
//! plane; for stride `s > 1` a shifted window of one of the input's `s x s` polyphase components
//! (component `(a, b)` of a plane holds `x[s t + a][s u + b]`), which [`split`] writes once per
//! image and [`merge`] writes back.
//!
//! Why: sampled directly, every row of a stride-2 column matrix is a strided gather, one short
//! output row at a time (16 or 8 values), and `perf` put that im2col at about half the time of the
//! GEMM that consumes it (All-CNN-C's 3x3/2 layers, docs/benchmarks.md). Of a component the same
//! row is a contiguous window, copied like a stride-1 one (one long run when the output rows are
//! as wide as the component's), and the strided reads happen once per input value instead of
//! once per kernel tap (9 taps share 4 components in a 3x3/2 convolution).

use candle_core::WithDType;

use super::geom::Geom;

/// One plane a column-matrix row reads: `h x w` values, row-major, from `offset` of the image
/// (stride 1) or of its components (stride > 1); output `(oy, ox)` reads `(oy + dy, ox + dx)`,
/// zero outside the plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tap {
    pub(super) offset: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) dy: isize,
    pub(super) dx: isize,
}

/// Length of phase `a` of `size` values sampled every `s`: the count of `s t + a < size`.
fn phase_len(size: usize, s: usize, a: usize) -> usize {
    (size + s - 1 - a) / s
}

/// `(phase, shift)` of kernel offset `k` with padding `pad` and stride `s`: input index
/// `s o + k - pad = s (o + shift) + phase`.
fn phase_of(k: usize, pad: usize, s: usize) -> (usize, isize) {
    let d = k as isize - pad as isize;
    let s = s as isize;
    (d.rem_euclid(s) as usize, d.div_euclid(s))
}

/// Every tap's plane of one convolution, computed once per image so that the loops over
/// channels and rows only index (the divisions behind them cost as much as the copies of a
/// small layer).
pub(super) struct Taps {
    /// Values per channel (`H * W`, in the image or in its components).
    channel_len: usize,
    /// Per kernel position `(i, j)`, row-major: the plane within channel 0.
    taps: Vec<Tap>,
    /// Per component `(a, b)`, row-major (stride > 1 only): its plane within channel 0.
    components: Vec<Tap>,
    stride: usize,
}

impl Taps {
    /// The taps of `g`.
    pub(super) fn new(g: &Geom) -> Self {
        let s = g.stride;
        let mut components = Vec::new();
        if s > 1 {
            // Components in row-major order of (a, b): rows of phases before `a` come first,
            // whole input width each; then, in phase `a`'s rows, the columns of phases before
            // `b`.
            let mut rows_before = 0;
            for a in 0..s {
                let h = phase_len(g.height, s, a);
                let mut cols_before = 0;
                for b in 0..s {
                    let w = phase_len(g.width, s, b);
                    components.push(Tap {
                        offset: rows_before * g.width + h * cols_before,
                        h,
                        w,
                        dy: 0,
                        dx: 0,
                    });
                    cols_before += w;
                }
                rows_before += h;
            }
        }
        let mut taps = Vec::with_capacity(g.kernel_h * g.kernel_w);
        for i in 0..g.kernel_h {
            for j in 0..g.kernel_w {
                taps.push(if s == 1 {
                    Tap {
                        offset: 0,
                        h: g.height,
                        w: g.width,
                        dy: i as isize - g.pad as isize,
                        dx: j as isize - g.pad as isize,
                    }
                } else {
                    let ((a, dy), (b, dx)) = (phase_of(i, g.pad, s), phase_of(j, g.pad, s));
                    Tap {
                        dy,
                        dx,
                        ..components[a * s + b]
                    }
                });
            }
        }
        Taps {
            channel_len: g.height * g.width,
            taps,
            components,
            stride: s,
        }
    }

    /// The plane and shift that row `(c, i, j)` of the column matrix reads (`ij = i * kw + j`).
    #[inline]
    pub(super) fn tap(&self, c: usize, ij: usize) -> Tap {
        let tap = self.taps[ij];
        Tap {
            offset: c * self.channel_len + tap.offset,
            ..tap
        }
    }

    /// Component `(a, b)` of channel `c` (stride > 1).
    #[inline]
    fn component(&self, c: usize, a: usize, b: usize) -> Tap {
        let tap = self.components[a * self.stride + b];
        Tap {
            offset: c * self.channel_len + tap.offset,
            ..tap
        }
    }
}

impl Geom {
    /// Whether im2col and col2im go through the polyphase components.
    pub(super) fn uses_phases(&self) -> bool {
        self.stride > 1
    }
}

/// Writes the polyphase components of `image` `[C, H, W]` into `phases` (same length), in the
/// layout of [`Taps`].
pub(super) fn split<T: WithDType>(image: &[T], phases: &mut [T], g: &Geom, taps: &Taps) {
    let (h, w, s) = (g.height, g.width, g.stride);
    for c in 0..g.in_channels {
        let plane = &image[c * h * w..(c + 1) * h * w];
        for a in 0..s.min(h) {
            let first = taps.component(c, a, 0);
            for t in 0..first.h {
                let src = &plane[(s * t + a) * w..][..w];
                if s == 2 && w >= 2 {
                    let second = taps.component(c, a, 1);
                    // Component (a, 1) starts where (a, 0) ends.
                    let (lo, hi) = phases.split_at_mut(second.offset);
                    let even = &mut lo[first.offset + t * first.w..][..first.w];
                    deinterleave(src, even, &mut hi[t * second.w..][..second.w]);
                    continue;
                }
                for b in 0..s.min(w) {
                    let tap = taps.component(c, a, b);
                    let row = &mut phases[tap.offset + t * tap.w..][..tap.w];
                    for (u, v) in row.iter_mut().enumerate() {
                        *v = src[s * u + b];
                    }
                }
            }
        }
    }
}

/// Writes the components in `phases` back into `image` (the inverse of [`split`]).
pub(super) fn merge<T: WithDType>(phases: &[T], image: &mut [T], g: &Geom, taps: &Taps) {
    let (h, w, s) = (g.height, g.width, g.stride);
    for c in 0..g.in_channels {
        let plane = &mut image[c * h * w..(c + 1) * h * w];
        for a in 0..s.min(h) {
            let rows = taps.component(c, a, 0).h;
            for t in 0..rows {
                let dst = &mut plane[(s * t + a) * w..][..w];
                if s == 2 && w >= 2 {
                    let (even, odd) = (taps.component(c, a, 0), taps.component(c, a, 1));
                    let even = &phases[even.offset + t * even.w..][..even.w];
                    let odd = &phases[odd.offset + t * odd.w..][..odd.w];
                    interleave(even, odd, dst);
                    continue;
                }
                for b in 0..s.min(w) {
                    let tap = taps.component(c, a, b);
                    let row = &phases[tap.offset + t * tap.w..][..tap.w];
                    for (u, &v) in row.iter().enumerate() {
                        dst[s * u + b] = v;
                    }
                }
            }
        }
    }
}

/// `even[u] = src[2 u]`, `odd[u] = src[2 u + 1]` (`even` holds `ceil(len / 2)` values, `odd` the
/// rest), over element pairs so that LLVM vectorises it (a loop with a run-time stride stays
/// scalar, and no crate offers this strided copy).
#[inline]
fn deinterleave<T: WithDType>(src: &[T], even: &mut [T], odd: &mut [T]) {
    for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(src.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
    if src.len() % 2 == 1 {
        even[even.len() - 1] = src[src.len() - 1];
    }
}

/// `dst[2 u] = even[u]`, `dst[2 u + 1] = odd[u]`: the inverse of [`deinterleave`].
#[inline]
fn interleave<T: WithDType>(even: &[T], odd: &[T], dst: &mut [T]) {
    for (pair, (&e, &o)) in dst.chunks_exact_mut(2).zip(even.iter().zip(odd)) {
        pair[0] = e;
        pair[1] = o;
    }
    if dst.len() % 2 == 1 {
        dst[dst.len() - 1] = even[even.len() - 1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tap_reads_the_input_value_of_its_definition() {
        // For every stride, padding and odd/even size: the value a tap's plane holds at
        // (oy + dy, ox + dx) is x[c][s oy + i - pad][s ox + j - pad] (the convolution's
        // definition), and a position outside the plane is exactly one outside the input.
        for (h, w) in [(7, 6), (8, 8), (5, 9), (1, 3), (32, 32)] {
            for s in 1..=3 {
                for pad in 0..=2 {
                    for k in [1, 3, 5] {
                        if h + 2 * pad < k || w + 2 * pad < k {
                            continue;
                        }
                        let g = Geom::square(2, (h, w), k, s, pad);
                        let image: Vec<f32> = (0..g.in_len()).map(|v| v as f32 + 1.0).collect();
                        let mut phases = vec![0f32; image.len()];
                        let taps = Taps::new(&g);
                        let planes = if g.uses_phases() {
                            split(&image, &mut phases, &g, &taps);
                            &phases
                        } else {
                            &image
                        };
                        for c in 0..2 {
                            for i in 0..k {
                                for j in 0..k {
                                    let tap = taps.tap(c, i * k + j);
                                    for oy in 0..g.out_h {
                                        for ox in 0..g.out_w {
                                            let iy = (s * oy + i) as isize - pad as isize;
                                            let ix = (s * ox + j) as isize - pad as isize;
                                            let inside = (0..h as isize).contains(&iy)
                                                && (0..w as isize).contains(&ix);
                                            let (py, px) =
                                                (oy as isize + tap.dy, ox as isize + tap.dx);
                                            let in_plane = (0..tap.h as isize).contains(&py)
                                                && (0..tap.w as isize).contains(&px);
                                            assert_eq!(inside, in_plane, "{h}x{w} s{s} p{pad} k{k} tap ({c},{i},{j}) at ({oy},{ox})");
                                            if inside {
                                                let expected =
                                                    image[(c * h + iy as usize) * w + ix as usize];
                                                let got = planes[tap.offset
                                                    + py as usize * tap.w
                                                    + px as usize];
                                                assert_eq!(got, expected, "{h}x{w} s{s} p{pad} k{k} tap ({c},{i},{j}) at ({oy},{ox})");
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        if g.uses_phases() {
                            let mut back = vec![0f32; image.len()];
                            merge(&phases, &mut back, &g, &taps);
                            assert_eq!(back, image, "merge(split) {h}x{w} s{s}");
                        }
                    }
                }
            }
        }
    }
}
