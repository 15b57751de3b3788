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
    bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

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

fn contiguous<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("max_pool2d: tensor must be contiguous"),
    }
}

fn pool_forward<T: WithDType>(x: &[T], g: &PoolGeom) -> Vec<T> {
    let (in_plane, out_plane) = (g.height * g.width, g.out_h * g.out_w);
    let mut y = vec![T::zero(); g.planes * out_plane];
    y.par_chunks_mut(out_plane)
        .zip(x.par_chunks(in_plane))
        .for_each(|(yp, xp)| {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    yp[oy * g.out_w + ox] = xp[g.argmax(xp, oy, ox)];
                }
            }
        });
    y
}

fn pool_backward<T: WithDType>(x: &[T], dy: &[T], g: &PoolGeom) -> Vec<T> {
    let (in_plane, out_plane) = (g.height * g.width, g.out_h * g.out_w);
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(in_plane)
        .zip(x.par_chunks(in_plane))
        .zip(dy.par_chunks(out_plane))
        .for_each(|((dxp, xp), dyp)| {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    dxp[g.argmax(xp, oy, ox)] += dyp[oy * g.out_w + ox];
                }
            }
        });
    dx
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

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = MaxPoolBackwardOp {
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
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
        let storage = match xs {
            CpuStorage::F32(_) => CpuStorage::F32(pool_backward::<f32>(
                contiguous(xs, xl)?,
                contiguous(gs, gl)?,
                &g,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(pool_backward::<f64>(
                contiguous(xs, xl)?,
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
