//! The ReLU's backward pass from its output (`dy * (y > 0)`, PyTorch's rule: no gradient at 0):
//! per row while the CPU convolution's backward stages a GEMM operand, and as a whole-tensor op
//! ([`ReluBackwardOp`]) for the CUDA convolution and for the visualisation's other backward
//! rules ([`ReluBackward`]) on every device.

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

/// How a ReLU passes a gradient back to its input: the three rules the visualisation compares
/// (docs/protocol.md, "Visualising what the networks learned").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReluBackward {
    /// Plain backpropagation: zero where the forward input was not positive (`dy * (y > 0)`).
    Backprop,
    /// The "deconvnet" rule: zero where the returning gradient is not positive (`max(dy, 0)`),
    /// whatever the forward input was.
    Deconvnet,
    /// Guided backpropagation: zero where either is not positive (`dy * (y > 0) * (dy > 0)`).
    Guided,
}

impl ReluBackward {
    /// The three rules, in the order the visualisation shows them.
    pub const ALL: [ReluBackward; 3] = [Self::Backprop, Self::Deconvnet, Self::Guided];

    /// The rule's name on the command line and in index files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Backprop => "backprop",
            Self::Deconvnet => "deconvnet",
            Self::Guided => "guided",
        }
    }

    /// The rule called `name` (as [`ReluBackward::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The code the CUDA kernel `allconv_relu_rule_f32` takes (0, 1, 2 in [`Self::ALL`] order).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The gradient this rule passes back for output gradient `g` where the ReLU output is `y`
    /// (selects, not branches, so that loops over it vectorise).
    #[inline(always)]
    pub(crate) fn apply<T: WithDType>(self, g: T, y: T) -> T {
        let zero = T::zero();
        match self {
            Self::Backprop => {
                if y > zero {
                    g
                } else {
                    zero
                }
            }
            Self::Deconvnet => {
                if g > zero {
                    g
                } else {
                    zero
                }
            }
            Self::Guided => {
                if y > zero && g > zero {
                    g
                } else {
                    zero
                }
            }
        }
    }
}

/// `(dy, y) -> ` the gradient [`ReluBackward`] passes back, one whole-tensor pass: the ReLU
/// backward of the CUDA convolution (plain backpropagation, whose convolution backward then
/// sees the masked gradient) and of a convolution run for visualisation on any device.
pub(super) struct ReluBackwardOp(pub(super) ReluBackward);

/// `out[i] = f(dy[i], y[i])` in parallel chunks, `f` one rule's select (monomorphised per rule so
/// that each loop vectorises; a match per element would not).
fn map_pairs<T: WithDType>(dy: &[T], y: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = uninit::<T>(dy.len());
    out.par_chunks_mut(1 << 16)
        .zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16)))
        .for_each(|(o, (d, y))| {
            for ((o, &d), &y) in o.iter_mut().zip(d).zip(y) {
                o.write(f(d, y));
            }
        });
    // SAFETY: the chunks cover `out` and write every element (dy and y have its length).
    unsafe { assume_init(out) }
}

fn relu_backward<T: WithDType>(rule: ReluBackward, dy: &[T], y: &[T]) -> Vec<T> {
    match rule {
        ReluBackward::Backprop => map_pairs(dy, y, |d, y| ReluBackward::Backprop.apply(d, y)),
        ReluBackward::Deconvnet => map_pairs(dy, y, |d, y| ReluBackward::Deconvnet.apply(d, y)),
        ReluBackward::Guided => map_pairs(dy, y, |d, y| ReluBackward::Guided.apply(d, y)),
    }
}

impl CustomOp2 for ReluBackwardOp {
    fn name(&self) -> &'static str {
        "allconv-relu-backward"
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
                "relu backward: gradient {:?} and output {:?} differ",
                gl.shape(),
                yl.shape()
            )
        }
        const OP: &str = "relu backward";
        let storage = float_storage!(OP, gs.dtype(), T => relu_backward::<T>(
            self.0,
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
        crate::ops::cuda::relu_backward((gs, gl), (ys, yl), self.0)
    }
}
