//! The CPU kernels of the max-pool: the forward pass (a plane at a time, rows first) and the
//! backward pass (each output gradient to its window's first maximum), in parallel tasks of
//! [`PLANES_PER_TASK`] planes; the paper's 3x3/2 pool on even sizes goes through [`Pool3s2`]
//! instead. The window geometry is `geom.rs`'s.

use candle_core::WithDType;
use rayon::prelude::*;

use super::geom::{nan_max, PoolGeom};
use super::paper_3x3s2::Pool3s2;
use crate::ops::buffers::{assume_init, uninit, zeroed};

/// The paper's (and the common) window size, which gets unrolled loops.
const K3: usize = 3;

/// Max-pools one plane `xp [H, W]` into `yp [out_h, out_w]`, using `rows [W]` as scratch.
fn pool_plane<T: WithDType>(xp: &[T], yp: &mut [T], rows: &mut [T], g: &PoolGeom) {
    let w = g.width;
    for (oy, out) in yp.chunks_exact_mut(g.out_w).enumerate() {
        // The column-wise maximum of the window's rows first (contiguous, vectorises), then
        // the horizontal windows over it: max is associative, so the value is the same.
        let (y0, y1) = g.span(oy, g.height);
        rows.copy_from_slice(&xp[y0 * w..(y0 + 1) * w]);
        for y in y0 + 1..y1 {
            for (r, &v) in rows.iter_mut().zip(&xp[y * w..(y + 1) * w]) {
                *r = nan_max(*r, v);
            }
        }
        let (ix0, ix1) = g.interior(w, g.out_w);
        for (ox, o) in out.iter_mut().enumerate() {
            let (x0, x1) = g.span(ox, w);
            *o = if g.kernel == K3 && (ix0..ix1).contains(&ox) {
                nan_max(nan_max(rows[x0], rows[x0 + 1]), rows[x0 + 2])
            } else {
                rows[x0 + 1..x1]
                    .iter()
                    .fold(rows[x0], |m, &v| nan_max(m, v))
            };
        }
    }
}

/// Planes per parallel task: enough work to amortise rayon's scheduling.
const PLANES_PER_TASK: usize = 16;

pub(super) fn pool_forward<T: WithDType>(x: &[T], g: &PoolGeom) -> Vec<T> {
    let (in_plane, out_plane) = (g.height * g.width, g.out_h * g.out_w);
    let mut y = uninit::<T>(g.planes * out_plane);
    y.par_chunks_mut(PLANES_PER_TASK * out_plane)
        .zip(x.par_chunks(PLANES_PER_TASK * in_plane))
        .for_each(|(ys, xs)| {
            let ys = zeroed(ys);
            let mut rows = vec![T::zero(); g.width];
            let mut fast = Pool3s2::<T>::applies(g).then(|| Pool3s2::new(g));
            for (yp, xp) in ys
                .chunks_exact_mut(out_plane)
                .zip(xs.chunks_exact(in_plane))
            {
                match fast.as_mut() {
                    Some(f) => f.forward(xp, yp, g),
                    None => pool_plane(xp, yp, &mut rows, g),
                }
            }
        });
    // SAFETY: the chunks cover `y` and each went through `zeroed`.
    unsafe { assume_init(y) }
}

/// `y` is the forward output when available (it saves recomputing the window maxima).
pub(super) fn pool_backward<T: WithDType>(
    x: &[T],
    y: Option<&[T]>,
    dy: &[T],
    g: &PoolGeom,
) -> Vec<T> {
    let (in_plane, out_plane) = (g.height * g.width, g.out_h * g.out_w);
    let mut dx = uninit::<T>(x.len());
    let fast = Pool3s2::<T>::applies(g).then_some(y).flatten();
    dx.par_chunks_mut(PLANES_PER_TASK * in_plane)
        .zip(x.par_chunks(PLANES_PER_TASK * in_plane))
        .zip(dy.par_chunks(PLANES_PER_TASK * out_plane))
        .enumerate()
        .for_each(|(task, ((dxs, xs), dys))| {
            let dxs = zeroed(dxs);
            let planes = dxs
                .chunks_exact_mut(in_plane)
                .zip(xs.chunks_exact(in_plane))
                .zip(dys.chunks_exact(out_plane));
            if let Some(y) = fast {
                let ys = y[task * PLANES_PER_TASK * out_plane..].chunks_exact(out_plane);
                let mut pool = Pool3s2::new(g);
                for (((dxp, xp), dyp), yp) in planes.zip(ys) {
                    pool.backward(xp, yp, dyp, dxp, g);
                }
            } else {
                // The scalar scan, whose (mostly well predicted) branches let the comparisons
                // overlap (a select would make each wait for the previous one).
                for ((dxp, xp), dyp) in planes {
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            dxp[g.argmax(xp, oy, ox)] += dyp[oy * g.out_w + ox];
                        }
                    }
                }
            }
        });
    // SAFETY: the chunks cover `dx` and each went through `zeroed`.
    unsafe { assume_init(dx) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from {-2, -1, 0, 1, 2} (many ties) with some NaNs, from a small LCG.
    fn values(n: usize, seed: u64, nan_every: u64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6364136223846793005) | 1;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (state >> 33) % nan_every == 0 {
                    f64::NAN
                } else {
                    ((state >> 40) % 5) as f64 - 2.0
                }
            })
            .collect()
    }

    /// PyTorch's rule, one window element at a time: the first NaN, else the first maximum in
    /// row-major window order, padding excluded. Returns the input index within the plane.
    fn first_argmax(plane: &[f64], g: &PoolGeom, oy: usize, ox: usize) -> usize {
        let mut best: Option<usize> = None;
        for ky in 0..g.kernel {
            for kx in 0..g.kernel {
                let (y, x) = (oy * g.stride + ky, ox * g.stride + kx);
                if y < g.pad || x < g.pad || y - g.pad >= g.height || x - g.pad >= g.width {
                    continue;
                }
                let i = (y - g.pad) * g.width + (x - g.pad);
                let replace = match best {
                    None => true,
                    Some(b) => !plane[b].is_nan() && (plane[i].is_nan() || plane[i] > plane[b]),
                };
                if replace {
                    best = Some(i);
                }
            }
        }
        best.expect("every window holds a real element")
    }

    #[test]
    fn values_and_gradient_routing_equal_the_window_scan() {
        for (kernel, stride, pad) in [(3, 2, 1), (3, 1, 1), (2, 2, 0), (3, 3, 0), (2, 1, 1)] {
            for (h, w) in [(9, 7), (8, 8), (5, 6)] {
                let planes = 20;
                let g = PoolGeom {
                    planes,
                    height: h,
                    width: w,
                    kernel,
                    stride,
                    pad,
                    out_h: (h + 2 * pad - kernel) / stride + 1,
                    out_w: (w + 2 * pad - kernel) / stride + 1,
                };
                for inputs in 0..2 {
                    let case = format!("k{kernel} s{stride} p{pad} {h}x{w} input {inputs}");
                    let mut x = values(planes * h * w, 7, 23);
                    if inputs == 1 {
                        // -inf everywhere but a few places: windows whose maximum is -inf, which
                        // must still go to a real element, never to the (-inf) padding.
                        for (i, v) in x.iter_mut().enumerate() {
                            if i % 29 != 0 {
                                *v = f64::NEG_INFINITY;
                            }
                        }
                    }
                    let out_plane = g.out_h * g.out_w;
                    let dy: Vec<f64> = (0..planes * out_plane).map(|i| 1.0 + i as f64).collect();
                    let (mut y, mut dx) = (Vec::new(), vec![0.0; x.len()]);
                    for p in 0..planes {
                        let plane = &x[p * h * w..(p + 1) * h * w];
                        for oy in 0..g.out_h {
                            for ox in 0..g.out_w {
                                let i = first_argmax(plane, &g, oy, ox);
                                y.push(plane[i]);
                                dx[p * h * w + i] += dy[p * out_plane + oy * g.out_w + ox];
                            }
                        }
                    }
                    let got = pool_forward(&x, &g);
                    for (i, (a, e)) in got.iter().zip(&y).enumerate() {
                        assert!(
                            a == e || (a.is_nan() && e.is_nan()),
                            "{case} y[{i}]: {a} vs {e}"
                        );
                    }
                    assert_eq!(got.len(), y.len(), "{case}");
                    // Without the forward output (the scalar scan), and with it (`Pool3s2` where
                    // it applies).
                    assert_eq!(pool_backward(&x, None, &dy, &g), dx, "{case}");
                    assert_eq!(pool_backward(&x, Some(&got), &dy, &g), dx, "{case} given y");
                }
            }
        }
    }
}
