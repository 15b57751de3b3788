//! The ReLU's backward pass from its output (`dy * (y > 0)`, PyTorch's rule: no gradient at 0):
//! as a whole-tensor op ([`ReluMaskOp`], for the CUDA convolution, whose backward sees the
//! masked gradient) and per row while the CPU convolution's backward stages a GEMM operand.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, WithDType};
use rayon::prelude::*;

use crate::ops::buffers::{assume_init, contiguous, float_storage, uninit};

/// [`gather`] of output gradients, zero wherever the matching ReLU output (`outputs`, one
/// `[rows, l]` per image) is not positive, as PyTorch's ReLU backward (no gradient at 0); with
/// `scale` (a fused dropout, whose output is `outputs`), the kept gradients times `scale`, as
/// the dropout's backward computes them.
pub(super) fn gather_relu_masked<T: WithDType>(
    grads: &[&[T]],
    outputs: &[&[T]],
    rows: usize,
    l: usize,
    scale: Option<T>,
    dst: &mut [T],
) {
    let n = grads.len() * l;
    for r in 0..rows {
        for (i, (g, y)) in grads.iter().zip(outputs).enumerate() {
            let d = &mut dst[r * n + i * l..][..l];
            relu_masked(&g[r * l..][..l], &y[r * l..][..l], scale, d);
        }
    }
}

/// `d = g` where `y > 0`, else 0; times `scale` if given (see [`gather_relu_masked`]).
pub(super) fn relu_masked<T: WithDType>(g: &[T], y: &[T], scale: Option<T>, d: &mut [T]) {
    let pairs = d.iter_mut().zip(g).zip(y);
    // Unconditional selects (not conditional stores) so that they vectorise.
    match scale {
        None => {
            for ((d, &g), &y) in pairs {
                *d = if y > T::zero() { g } else { T::zero() };
            }
        }
        Some(scale) => {
            for ((d, &g), &y) in pairs {
                *d = if y > T::zero() { g * scale } else { T::zero() };
            }
        }
    }
}

/// `(dy, y) -> dy * (y > 0)`: the ReLU's backward from its output (PyTorch: no gradient at 0).
pub(super) struct ReluMaskOp;

fn relu_mask<T: WithDType>(dy: &[T], y: &[T]) -> Vec<T> {
    let mut out = uninit::<T>(dy.len());
    out.par_chunks_mut(1 << 16)
        .zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16)))
        .for_each(|(o, (d, y))| {
            // An unconditional select (not a conditional store) so that it vectorises.
            for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
                o.write(if y > T::zero() { d } else { T::zero() });
            }
        });
    // SAFETY: the chunks cover `out` and write every element (dy and y have its length).
    unsafe { assume_init(out) }
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
        const OP: &str = "relu mask";
        let storage = float_storage!(OP, gs.dtype(), T => relu_mask::<T>(
            contiguous(gs, gl, OP, "gradient")?,
            contiguous(ys, yl, OP, "output")?,
        ));
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
        crate::ops::cuda::relu_mask((gs, gl), (ys, yl))
    }
}
