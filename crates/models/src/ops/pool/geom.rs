//! The max-pool's window geometry (sizes, the input span of a window, the windows clear of the
//! border, a window's first maximum) and the NaN-aware maximum that every CPU pool kernel
//! compares with: what the window-scan kernels (`cpu.rs`) and the paper's 3x3/2 pool
//! (`paper_3x3s2.rs`) share.

use candle_core::{bail, Layout, Result, WithDType};

#[derive(Debug, Clone, Copy)]
pub(super) struct PoolGeom {
    pub(super) planes: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
}

impl PoolGeom {
    pub(super) fn new(l: &Layout, kernel: usize, stride: usize, pad: usize) -> Result<Self> {
        let (n, c, height, width) = l.shape().dims4()?;
        // PyTorch's own rule; it guarantees every window holds at least one real element.
        if stride == 0 || kernel == 0 || 2 * pad > kernel {
            bail!("max_pool2d: kernel {kernel} stride {stride} pad {pad}: pad must be <= kernel/2")
        }
        if height + 2 * pad < kernel || width + 2 * pad < kernel {
            bail!("max_pool2d: kernel {kernel} pad {pad} does not fit input {height}x{width}")
        }
        Ok(Self {
            planes: n * c,
            height,
            width,
            kernel,
            stride,
            pad,
            out_h: (height + 2 * pad - kernel) / stride + 1,
            out_w: (width + 2 * pad - kernel) / stride + 1,
        })
    }

    /// Input range `[start, end)` of window `o` along an axis of `size` elements (padding cut
    /// off: padded positions are never the maximum).
    pub(super) fn span(&self, o: usize, size: usize) -> (usize, usize) {
        let start = (o * self.stride).saturating_sub(self.pad);
        // kernel >= 2 * pad (checked in `new`), so this does not underflow.
        let end = (o * self.stride + self.kernel - self.pad).min(size);
        (start, end)
    }

    /// Outputs `[first, end)` along an axis of `size` elements whose windows lie wholly inside
    /// the input (no padding, no clipping).
    pub(super) fn interior(&self, size: usize, out: usize) -> (usize, usize) {
        let first = self.pad.div_ceil(self.stride);
        // o * stride - pad + kernel <= size
        let end = if size + self.pad >= self.kernel {
            ((size + self.pad - self.kernel) / self.stride + 1).min(out)
        } else {
            0
        };
        (first.min(end), end)
    }

    /// Input index (within one plane) of the maximum of output window `(oy, ox)`.
    pub(super) fn argmax<T: WithDType>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        let y0 = (oy * self.stride).saturating_sub(self.pad);
        let y1 = (oy * self.stride + self.kernel - self.pad).min(self.height);
        let x0 = (ox * self.stride).saturating_sub(self.pad);
        let x1 = (ox * self.stride + self.kernel - self.pad).min(self.width);
        let mut best = y0 * self.width + x0;
        let mut best_value = plane[best];
        for y in y0..y1 {
            for x in x0..x1 {
                let v = plane[y * self.width + x];
                // `v != v` is NaN; a NaN wins and stays, as in PyTorch.
                #[allow(clippy::eq_op)]
                let is_nan = v != v;
                if v > best_value || is_nan {
                    best = y * self.width + x;
                    best_value = v;
                    if is_nan {
                        return best;
                    }
                }
            }
        }
        best
    }
}

/// Whether `v` replaces the running maximum `best` of a window: strictly greater (ties keep the
/// first), or the first NaN (a NaN counts as the maximum).
#[inline(always)]
fn beats<T: WithDType>(v: T, best: T) -> bool {
    // `x != x` is NaN; `|` and `&`, not `||` and `&&`, so that this stays free of branches.
    #[allow(clippy::eq_op)]
    let first_nan = (v != v) & (best == best);
    (v > best) | first_nan
}

/// The larger of `best` and `v` in the sense of [`beats`].
#[inline(always)]
pub(super) fn nan_max<T: WithDType>(best: T, v: T) -> T {
    if beats(v, best) {
        v
    } else {
        best
    }
}
