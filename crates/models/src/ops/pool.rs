//! Max-pooling with padding and a backward pass, PyTorch `MaxPool2d(kernel, stride, padding)`
//! semantics.
//!
//! Why by hand: candle 0.11's `max_pool2d` has no padding, refuses backward when kernel !=
//! stride, and scales its gradient by (number of maxima / window size) on ties.
//!
//! Padding: padded positions count as -inf, i.e. they are never selected, exactly as PyTorch.
//! After a ReLU every input is >= 0 and every 3x3/pad-1 window holds at least one real element,
//! so zero padding would give the same forward values; -inf padding additionally keeps the
//! gradient from ever being routed to a pad position on ties with 0 (where a zero-padded
//! version would silently drop it) and stays correct without a ReLU before the pool.
//!
//! Ties: the gradient goes to the first maximum in window order (row by row, left to right), as
//! PyTorch's CPU kernel; a NaN counts as the maximum.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Storage, Tensor,
    WithDType,
};
use rayon::prelude::*;

use super::conv::{assume_init, uninit, zeroed};
use super::Dropout;

#[derive(Debug, Clone, Copy)]
struct PoolGeom {
    planes: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    out_h: usize,
    out_w: usize,
}

impl PoolGeom {
    fn new(l: &Layout, kernel: usize, stride: usize, pad: usize) -> Result<Self> {
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
    fn span(&self, o: usize, size: usize) -> (usize, usize) {
        let start = (o * self.stride).saturating_sub(self.pad);
        // kernel >= 2 * pad (checked in `new`), so this does not underflow.
        let end = (o * self.stride + self.kernel - self.pad).min(size);
        (start, end)
    }

    /// Outputs `[first, end)` along an axis of `size` elements whose windows lie wholly inside
    /// the input (no padding, no clipping).
    fn interior(&self, size: usize, out: usize) -> (usize, usize) {
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
    fn argmax<T: WithDType>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
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

/// The paper's (and the common) window size, which gets unrolled loops.
const K3: usize = 3;

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
fn nan_max<T: WithDType>(best: T, v: T) -> T {
    if beats(v, best) {
        v
    } else {
        best
    }
}

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

fn contiguous<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("max_pool2d: tensor must be contiguous"),
    }
}

/// The paper's pool (3x3 window, stride 2, padding 1) on even-sized planes, a whole plane at a
/// time in long vectorisable loops.
///
/// The input is split by row and column parity into four grids, `grid[p][q][oy + 1][ox + 1] =
/// x[2 oy + p][2 ox + q]`, with a leading row and column of -inf standing for the padding. Then
/// window element `(r, c)` of every output is a shifted copy of one grid (input row
/// `2 oy - 1 + r` is an odd row of output row `oy - 1` for r = 0, an even row of `oy` for r = 1,
/// an odd row of `oy` for r = 2; columns alike), so each of the nine window positions is one
/// loop over the whole plane.
struct Pool3s2<T> {
    /// Four grids of `(out_h + 1) x (out_w + 1)` cells; parity `(p, q)` is grid `2 p + q`.
    grids: Vec<T>,
    /// Per cell: the window maximum, and (backward pass) the window position of the first
    /// maximum, as a `T` so that it moves in the same vector lanes.
    best: Vec<T>,
    code: Vec<T>,
    /// Grid width `out_w + 1` and cells per grid.
    gw: usize,
    cells: usize,
}

impl<T: WithDType> Pool3s2<T> {
    fn applies(g: &PoolGeom) -> bool {
        (g.kernel, g.stride, g.pad) == (3, 2, 1) && g.height % 2 == 0 && g.width % 2 == 0
    }

    fn new(g: &PoolGeom) -> Self {
        let (gw, cells) = (g.out_w + 1, (g.out_h + 1) * (g.out_w + 1));
        Self {
            grids: vec![T::from_f64(f64::NEG_INFINITY); 4 * cells],
            best: vec![T::zero(); cells],
            code: vec![T::zero(); cells],
            gw,
            cells,
        }
    }

    /// First output cell `(1, 1)` and the number of cells from there to the end. The pad
    /// column's cells in between compute garbage, never read.
    fn span(&self) -> (usize, usize) {
        (self.gw + 1, self.cells - self.gw - 1)
    }

    /// Window element `position = 3 r + c` of the `n` cells from `first`.
    fn run(&self, position: usize, first: usize, n: usize) -> &[T] {
        let (r, c) = (position / 3, position % 3);
        // r, c = 0: odd rows/columns of the previous output; 1: even of this one; 2: odd of
        // this one.
        let grid = 2 * usize::from(r != 1) + usize::from(c != 1);
        let start = grid * self.cells + first - usize::from(r == 0) * self.gw - usize::from(c == 0);
        &self.grids[start..start + n]
    }

    /// Fills the grids from one plane `[H, W]`.
    fn fill(&mut self, xp: &[T], g: &PoolGeom) {
        let (gw, cells) = (self.gw, self.cells);
        for (y, row) in xp.chunks_exact(g.width).enumerate() {
            // Grids 2p (even columns) and 2p + 1 (odd columns) of row parity p.
            let (even, odd) = self.grids[2 * (y % 2) * cells..].split_at_mut(cells);
            let start = (y / 2 + 1) * gw + 1;
            let (even, odd) = (&mut even[start..start + g.out_w], &mut odd[start..]);
            // One pass over pairs, which vectorises as a deinterleave.
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                *e = pair[0];
                *o = pair[1];
            }
        }
    }

    /// Fills the grids from one plane `[H, W]` and `best` with every window's maximum.
    fn maxima(&mut self, xp: &[T], g: &PoolGeom) {
        self.fill(xp, g);
        let (first, n) = self.span();
        let mut best = std::mem::take(&mut self.best);
        best[first..].copy_from_slice(self.run(0, first, n));
        for position in 1..9 {
            for (b, &v) in best[first..].iter_mut().zip(self.run(position, first, n)) {
                *b = nan_max(*b, v);
            }
        }
        self.best = best;
    }

    fn forward(&mut self, xp: &[T], yp: &mut [T], g: &PoolGeom) {
        self.maxima(xp, g);
        for (oy, out) in yp.chunks_exact_mut(g.out_w).enumerate() {
            let start = (oy + 1) * self.gw + 1;
            out.copy_from_slice(&self.best[start..start + g.out_w]);
        }
    }

    /// Adds `dyp` to the first maximum of every window of `xp`, whose maxima (the forward
    /// output) are `yp`; `dxp` must start at zero.
    fn backward(&mut self, xp: &[T], yp: &[T], dyp: &[T], dxp: &mut [T], g: &PoolGeom) {
        self.fill(xp, g);
        for (oy, out) in yp.chunks_exact(g.out_w).enumerate() {
            let start = (oy + 1) * self.gw + 1;
            self.best[start..start + g.out_w].copy_from_slice(out);
        }
        let (first, n) = self.span();
        let mut code = std::mem::take(&mut self.code);
        // Backwards through the window, so that the last match kept is the first in order.
        for position in (0..9).rev() {
            let p = T::from_f64(position as f64);
            let cells = code[first..].iter_mut().zip(&self.best[first..]);
            for ((k, &m), &v) in cells.zip(self.run(position, first, n)) {
                // `x != x` is NaN: a NaN maximum is the first NaN.
                #[allow(clippy::eq_op)]
                let hit = (v == m) | ((v != v) & (m != m));
                *k = if hit { p } else { *k };
            }
        }
        let neg_inf = T::from_f64(f64::NEG_INFINITY);
        for (oy, dy_row) in dyp.chunks_exact(g.out_w).enumerate() {
            for (ox, &d) in dy_row.iter().enumerate() {
                let cell = (oy + 1) * self.gw + ox + 1;
                // A border window whose maximum is -inf might have matched the -inf padding.
                let at = if (oy == 0 || ox == 0) && self.best[cell] == neg_inf {
                    g.argmax(xp, oy, ox)
                } else {
                    let position = code[cell].to_f64() as usize;
                    (2 * oy + position / 3 - 1) * g.width + 2 * ox + position % 3 - 1
                };
                dxp[at] += d;
            }
        }
        self.code = code;
    }
}

/// Planes per parallel task: enough work to amortise rayon's scheduling.
const PLANES_PER_TASK: usize = 16;

fn pool_forward<T: WithDType>(x: &[T], g: &PoolGeom) -> Vec<T> {
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
fn pool_backward<T: WithDType>(x: &[T], y: Option<&[T]>, dy: &[T], g: &PoolGeom) -> Vec<T> {
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

/// Forward op on `x [N, C, H, W]`.
struct MaxPoolOp {
    kernel: usize,
    stride: usize,
    pad: usize,
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "allconv-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = PoolGeom::new(l, self.kernel, self.stride, self.pad)?;
        let (n, c, _, _) = l.shape().dims4()?;
        let storage = match s {
            CpuStorage::F32(_) => CpuStorage::F32(pool_forward::<f32>(contiguous(s, l)?, &g)),
            CpuStorage::F64(_) => CpuStorage::F64(pool_forward::<f64>(contiguous(s, l)?, &g)),
            other => bail!(
                "max_pool2d: dtype {:?} not supported (f32, f64)",
                other.dtype()
            ),
        };
        Ok((storage, Shape::from((n, c, g.out_h, g.out_w))))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = MaxPoolBackwardOp {
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            output: matches!(res.device(), Device::Cpu).then(|| res.clone()),
        };
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::max_pool_forward(self.kernel, self.stride, self.pad, (s, l))
    }
}

/// Backward op on `(x, dy)`: recomputes each window's arg-max and adds `dy` there.
struct MaxPoolBackwardOp {
    kernel: usize,
    stride: usize,
    pad: usize,
    /// The forward output, on the CPU: the window maxima, which the CPU kernel then need not
    /// recompute.
    output: Option<Tensor>,
}

impl CustomOp2 for MaxPoolBackwardOp {
    fn name(&self) -> &'static str {
        "allconv-max-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = PoolGeom::new(xl, self.kernel, self.stride, self.pad)?;
        let (n, c, _, _) = xl.shape().dims4()?;
        if gl.shape().dims() != [n, c, g.out_h, g.out_w] {
            bail!(
                "max_pool2d backward: gradient shape {:?} does not match",
                gl.shape()
            )
        }
        let output = self.output.as_ref().map(|y| y.storage_and_layout());
        let ys = match &output {
            Some((storage, yl)) if yl.shape() == gl.shape() => match &**storage {
                Storage::Cpu(ys) => Some((ys, *yl)),
                _ => None,
            },
            _ => None,
        };
        let storage = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(pool_backward::<f32>(
                contiguous(xs, xl)?,
                ys.map(|(s, l)| contiguous(s, l)).transpose()?,
                contiguous(gs, gl)?,
                &g,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(pool_backward::<f64>(
                contiguous(xs, xl)?,
                ys.map(|(s, l)| contiguous(s, l)).transpose()?,
                contiguous(gs, gl)?,
                &g,
            )),
            other => bail!(
                "max_pool2d: dtype {:?} not supported (f32, f64)",
                other.dtype()
            ),
        };
        Ok((storage, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::max_pool_backward(self.kernel, self.stride, self.pad, (xs, xl), (gs, gl))
    }
}

/// Rows (dim 2) or columns (dim 3) `start, start + stride, ...` (`count` of them) of `x`.
fn strided_slice(
    x: &Tensor,
    dim: usize,
    start: usize,
    stride: usize,
    count: usize,
) -> Result<Tensor> {
    let taken = x.narrow(dim, start, stride * count)?;
    let mut dims = taken.dims().to_vec();
    dims[dim] = count;
    dims.insert(dim + 1, stride);
    taken.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

/// The same pooling from candle ops that have gradients (`narrow`, `reshape`, `maximum`), for
/// devices without the custom kernel. Padding is -inf. On exact ties candle's `maximum` backward
/// may split or duplicate the gradient differently from PyTorch.
fn max_pool2d_composed(x: &Tensor, kernel: usize, stride: usize, pad: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (out_h, out_w) = (
        (h + 2 * pad - kernel) / stride + 1,
        (w + 2 * pad - kernel) / stride + 1,
    );
    // Pad so that every strided slice of length stride*out fits: (kernel-1) + stride*out.
    let (total_h, total_w) = (kernel - 1 + stride * out_h, kernel - 1 + stride * out_w);
    let fill = |rows: usize, cols: usize| {
        Tensor::full(f64::NEG_INFINITY, (n, c, rows, cols), x.device())?.to_dtype(x.dtype())
    };
    let mut padded = x.clone();
    let (bottom, right) = (
        total_h.saturating_sub(h + pad),
        total_w.saturating_sub(w + pad),
    );
    let mut cols_parts = Vec::new();
    if pad > 0 {
        cols_parts.push(fill(h, pad)?);
    }
    cols_parts.push(padded.clone());
    if right > 0 {
        cols_parts.push(fill(h, right)?);
    }
    padded = Tensor::cat(&cols_parts, 3)?;
    let width = padded.dim(3)?;
    let mut row_parts = Vec::new();
    if pad > 0 {
        row_parts.push(fill(pad, width)?);
    }
    row_parts.push(padded);
    if bottom > 0 {
        row_parts.push(fill(bottom, width)?);
    }
    let padded = Tensor::cat(&row_parts, 2)?;
    let mut result: Option<Tensor> = None;
    for i in 0..kernel {
        let rows = strided_slice(&padded, 2, i, stride, out_h)?;
        for j in 0..kernel {
            let window = strided_slice(&rows, 3, j, stride, out_w)?;
            result = Some(match result {
                None => window,
                Some(r) => r.maximum(&window)?,
            });
        }
    }
    result.ok_or_else(|| candle_core::Error::Msg("max_pool2d: empty kernel".into()))
}

/// Max-pooling `x [N, C, H, W]` with a square `kernel`, `stride` and implicit -inf padding `pad`
/// (PyTorch `MaxPool2d(kernel, stride, padding=pad)`, floor mode), differentiable.
///
/// On the CPU with f32 or f64 a custom op (backward sends each output gradient to the first
/// arg-max of its window); elsewhere composed from candle ops.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, pad: usize) -> Result<Tensor> {
    if super::conv::own_kernels(x) {
        x.contiguous()?.apply_op1(MaxPoolOp {
            kernel,
            stride,
            pad,
        })
    } else {
        if 2 * pad > kernel || stride == 0 {
            bail!("max_pool2d: kernel {kernel} stride {stride} pad {pad}: pad must be <= kernel/2")
        }
        max_pool2d_composed(x, kernel, stride, pad)
    }
}

/// Max-pooling followed by inverted dropout, `dropout(max_pool2d(x, kernel, stride, pad))`, the
/// same values and gradients as the two ops one after the other.
///
/// Why fused: on the CPU (f32, f64) the pair is one graph node whose backward masks the output
/// gradient and pools it back in one go, so the pooled tensor is never a graph node; candle's
/// backward would otherwise allocate a zeroed gradient for it and add the dropout's gradient
/// into it, two whole passes over the tensor per step. Elsewhere the two ops unfused.
pub fn max_pool2d_dropout(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    pad: usize,
    dropout: Dropout,
) -> Result<Tensor> {
    let cpu_float =
        matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
    if !cpu_float || dropout.rate == 0.0 {
        let pooled = max_pool2d(x, kernel, stride, pad)?;
        return super::dropout(&pooled, dropout.rate, dropout.seed, dropout.stream);
    }
    let pool = MaxPoolOp {
        kernel,
        stride,
        pad,
    };
    let x = x.contiguous()?;
    // Outside the graph: the fused op's backward routes the gradient to `x` itself.
    let pooled = x.apply_op1_no_bwd(&pool)?;
    x.apply_op2(&pooled, PoolDropoutOp { pool, dropout })
}

/// The fused op on `(x, pooled)` with `pooled = max_pool2d(x)` computed beforehand: forward is
/// the dropout of `pooled`; backward gives `x` the pool gradient of the masked output gradient
/// and `pooled` nothing (it is not a graph node).
struct PoolDropoutOp {
    pool: MaxPoolOp,
    dropout: Dropout,
}

impl CustomOp2 for PoolDropoutOp {
    fn name(&self) -> &'static str {
        "allconv-max-pool2d-dropout"
    }

    fn cpu_fwd(
        &self,
        _xs: &CpuStorage,
        _xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.dropout.cpu_fwd(ps, pl)
    }

    fn bwd(
        &self,
        x: &Tensor,
        pooled: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let masked = grad.contiguous()?.apply_op1_no_bwd(&self.dropout)?;
        let op = MaxPoolBackwardOp {
            kernel: self.pool.kernel,
            stride: self.pool.stride,
            pad: self.pool.pad,
            output: Some(pooled.clone()),
        };
        Ok((Some(x.apply_op2_no_bwd(&masked, &op)?), None))
    }
}

/// The paper's pool: 3x3 window, stride 2, padding 1 (32 -> 16 -> 8).
pub fn max_pool2d_padded(x: &Tensor) -> Result<Tensor> {
    max_pool2d(x, 3, 2, 1)
}

/// The composed (non-custom-op) version, exposed so tests can compare both on the CPU.
#[doc(hidden)]
pub fn max_pool2d_reference(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    max_pool2d_composed(x, kernel, stride, pad)
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
