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
//!
//! Here: the candle ops and the public functions. The CPU kernels are in `cpu.rs` (with the
//! paper's 3x3/2 pool on even sizes in `paper_3x3s2.rs`, and the window geometry both use in
//! `geom.rs`), the candle-op fallback for other devices and dtypes in `composed.rs`, the CUDA
//! kernels in `ops/cuda/kernels.cu`.

mod composed;
mod cpu;
mod geom;
mod paper_3x3s2;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, Device, Layout, Result, Shape, Storage, Tensor,
};

use super::buffers::{contiguous, float_storage, own_kernel_runs, Kernels};
use super::Dropout;
use composed::max_pool2d_composed;
use cpu::{pool_backward, pool_forward};
use geom::PoolGeom;

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
        const OP: &str = "max_pool2d";
        let storage = float_storage!(OP, s.dtype(), T => pool_forward::<T>(
            contiguous(s, l, OP, "input")?,
            &g,
        ));
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
        crate::ops::cuda::max_pool_forward(self.kernel, self.stride, self.pad, (s, l))
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
        const OP: &str = "max_pool2d backward";
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
        let storage = float_storage!(OP, xs.dtype(), T => pool_backward::<T>(
            contiguous(xs, xl, OP, "input")?,
            ys.map(|(s, l)| contiguous(s, l, OP, "forward output")).transpose()?,
            contiguous(gs, gl, OP, "output gradient")?,
            &g,
        ));
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
        crate::ops::cuda::max_pool_backward(self.kernel, self.stride, self.pad, (xs, xl), (gs, gl))
    }
}

/// Max-pooling `x [N, C, H, W]` with a square `kernel`, `stride` and implicit -inf padding `pad`
/// (PyTorch `MaxPool2d(kernel, stride, padding=pad)`, floor mode), differentiable.
///
/// On the CPU with f32 or f64 a custom op (backward sends each output gradient to the first
/// arg-max of its window); elsewhere composed from candle ops.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, pad: usize) -> Result<Tensor> {
    if own_kernel_runs(x, Kernels::CpuAndCudaF32) {
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
    if !own_kernel_runs(x, Kernels::CpuOnly) || dropout.rate == 0.0 {
        let pooled = max_pool2d(x, kernel, stride, pad)?;
        return crate::ops::dropout(&pooled, dropout.rate, dropout.seed, dropout.stream);
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

/// The paper's pool: 3x3 window, stride 2, padding 1 (32 -> 16 -> 8; see docs/protocol.md,
/// Networks).
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
