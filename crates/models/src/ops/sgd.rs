//! One fused, in-place SGD update of a parameter tensor and its momentum buffer.
//!
//! Why fused: as candle ops the update is five element-wise passes and three new tensors per
//! parameter per step; here it is one pass (CPU) or one kernel (CUDA) that reads `w, v, g` once
//! and writes `w, v` in place.
//!
//! Why nested in-place ops: candle's `InplaceOp*` lend mutable storage of one tensor only, and
//! both `w` and `v` are written. The op on `w` receives `w`'s storage and, while holding it,
//! runs an op on `v` (with `g` as input) that receives `v`'s, so the one loop gets both as
//! mutable slices, in safe Rust, with candle's locks held.

use std::cell::Cell;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor, WithDType};
use rayon::prelude::*;

use super::buffers::{own_kernel_runs, Kernels};

/// The hyper-parameters of one update.
#[derive(Debug, Clone, Copy)]
struct Hyper {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

/// One SGD step with momentum and L2 weight decay, PyTorch/Caffe semantics, in place:
/// `v = momentum*v + (g + weight_decay*w); w -= lr*v` (the decay term is left out entirely when
/// `weight_decay` is 0, e.g. for biases that are not decayed).
///
/// The operations and their order (and so every rounding) are those of the candle expression
/// `v' = (v.affine(m, 0) + (g + w.affine(wd, 0))); w' = w - v'.affine(lr, 0)`, with `lr`,
/// `momentum` and `weight_decay` rounded to the dtype first; the CUDA kernel does the same
/// operations without fused multiply-adds, so both devices give the same bits.
///
/// `w`, `v`, `g` must have the same shape, dtype and device; `w` and `v` must be contiguous and
/// must not share storage with each other or with `g`. f32 and f64 run fused on the CPU and (feature
/// `cuda`) on CUDA; other dtypes and devices are updated with candle ops, with the same formula.
pub fn sgd_step(
    w: &Tensor,
    v: &Tensor,
    g: &Tensor,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
) -> Result<()> {
    for (name, t) in [("momentum buffer", v), ("gradient", g)] {
        if t.shape() != w.shape() {
            bail!(
                "sgd_step: {name} has shape {:?}, the parameter has {:?}",
                t.shape(),
                w.shape()
            )
        }
        if t.dtype() != w.dtype() {
            bail!(
                "sgd_step: {name} is {:?}, the parameter is {:?}",
                t.dtype(),
                w.dtype()
            )
        }
        if !t.device().same_device(w.device()) {
            bail!(
                "sgd_step: {name} is on {:?}, the parameter on {:?}",
                t.device().location(),
                w.device().location()
            )
        }
    }
    if !w.is_contiguous() || !v.is_contiguous() {
        bail!(
            "sgd_step: the parameter and its momentum buffer must be contiguous (updated in place)"
        )
    }
    // Aliased operands would make the two nested storage locks wait for each other.
    let (aw, av, ag) = (storage_address(w), storage_address(v), storage_address(g));
    if aw == av || aw == ag || av == ag {
        bail!("sgd_step: the parameter, momentum buffer and gradient must not share storage")
    }
    let hyper = Hyper {
        lr,
        momentum,
        weight_decay,
    };
    if !own_kernel_runs(w, Kernels::CpuAndCuda) {
        return composed(w, v, g, hyper);
    }
    let g = g.contiguous()?;
    w.inplace_op1(&OnWeights { v, g: &g, hyper })
}

/// Identifies a tensor's storage (equal for views of one allocation).
fn storage_address(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    std::ptr::from_ref(&*storage).addr()
}

/// The same update as candle ops, written back with `slice_set`.
fn composed(w: &Tensor, v: &Tensor, g: &Tensor, h: Hyper) -> Result<()> {
    // Detached so that no backprop graph is built on the parameter.
    let (w, v, g) = (&w.detach(), &v.detach(), &g.detach());
    let direction = if h.weight_decay != 0.0 {
        (g + w.affine(h.weight_decay, 0.0)?)?
    } else {
        g.clone()
    };
    let velocity = (v.affine(h.momentum, 0.0)? + direction)?;
    let weights = (w - velocity.affine(h.lr, 0.0)?)?;
    v.slice_set(&velocity, 0, 0)?;
    w.slice_set(&weights, 0, 0)
}

/// The parameter's storage, lent by the outer op to the inner one.
enum Weights<'a> {
    Cpu(&'a mut CpuStorage, &'a Layout),
    #[cfg(feature = "cuda")]
    Cuda(&'a mut candle_core::CudaStorage, &'a Layout),
}

/// In-place op on `w`; runs [`OnVelocity`] on `v` while it holds `w`'s storage.
struct OnWeights<'a> {
    v: &'a Tensor,
    g: &'a Tensor,
    hyper: Hyper,
}

impl OnWeights<'_> {
    fn run(&self, w: Weights<'_>) -> Result<()> {
        let inner = OnVelocity {
            w: Cell::new(Some(w)),
            hyper: self.hyper,
        };
        self.v.inplace_op2(self.g, &inner)?;
        if inner.w.take().is_some() {
            bail!("sgd_step: the momentum buffer's op did not run")
        }
        Ok(())
    }
}

impl InplaceOp1 for OnWeights<'_> {
    fn name(&self) -> &'static str {
        "allconv-sgd-step"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        self.run(Weights::Cpu(storage, layout))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, storage: &mut candle_core::CudaStorage, layout: &Layout) -> Result<()> {
        self.run(Weights::Cuda(storage, layout))
    }
}

/// In-place op on `v` with input `g`, holding `w`'s storage: the fused update itself.
struct OnVelocity<'a> {
    w: Cell<Option<Weights<'a>>>,
    hyper: Hyper,
}

fn contiguous_range(l: &Layout, what: &str) -> Result<(usize, usize)> {
    match l.contiguous_offsets() {
        Some(range) => Ok(range),
        None => bail!("sgd_step: the {what} must be contiguous"),
    }
}

/// The update over slices of equal length, in parallel chunks.
fn update<T: WithDType>(w: &mut [T], v: &mut [T], g: &[T], h: Hyper) {
    let (lr, momentum, wd) = (
        T::from_f64(h.lr),
        T::from_f64(h.momentum),
        T::from_f64(h.weight_decay),
    );
    let decay = h.weight_decay != 0.0;
    let zero = T::zero();
    const CHUNK: usize = 1 << 14;
    w.par_chunks_mut(CHUNK)
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|((w, v), g)| {
            for ((w, v), &g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
                // `+ zero` is candle's affine(x, 0) of the unfused expression: it turns -0 into
                // +0, so it is kept for identical bits.
                let d = if decay { g + (*w * wd + zero) } else { g };
                let vel = *v * momentum + zero + d;
                *v = vel;
                *w -= vel * lr + zero;
            }
        });
}

impl InplaceOp2 for OnVelocity<'_> {
    fn name(&self) -> &'static str {
        "allconv-sgd-step-velocity"
    }

    fn cpu_fwd(
        &self,
        vs: &mut CpuStorage,
        vl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let Some(Weights::Cpu(ws, wl)) = self.w.take() else {
            bail!("sgd_step: the parameter and its momentum buffer are on different devices")
        };
        let (w0, w1) = contiguous_range(wl, "parameter")?;
        let (v0, v1) = contiguous_range(vl, "momentum buffer")?;
        let (g0, g1) = contiguous_range(gl, "gradient")?;
        match (ws, vs, gs) {
            (CpuStorage::F32(w), CpuStorage::F32(v), CpuStorage::F32(g)) => {
                update(&mut w[w0..w1], &mut v[v0..v1], &g[g0..g1], self.hyper)
            }
            (CpuStorage::F64(w), CpuStorage::F64(v), CpuStorage::F64(g)) => {
                update(&mut w[w0..w1], &mut v[v0..v1], &g[g0..g1], self.hyper)
            }
            (w, v, g) => bail!(
                "sgd_step: parameter {:?}, momentum buffer {:?}, gradient {:?}: expected all f32 or all f64",
                w.dtype(),
                v.dtype(),
                g.dtype()
            ),
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        vs: &mut candle_core::CudaStorage,
        vl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<()> {
        let Some(Weights::Cuda(ws, wl)) = self.w.take() else {
            bail!("sgd_step: the parameter and its momentum buffer are on different devices")
        };
        super::cuda::sgd_step(
            (ws, wl),
            (vs, vl),
            (gs, gl),
            self.hyper.lr,
            self.hyper.momentum,
            self.hyper.weight_decay,
        )
    }
}
