//! What the op cases and the training-step cases share: the context of one pass, the references
//! computed once for every setting, the check's fixed inputs, and the making of one compared row.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use super::compare::{compare, perturb, Tolerance};
use super::direct::ConvOutput;
use super::{Case, CheckError, Precision, Setting};
use crate::ops::{self, ConvEngine};

/// Each parameter's name and gradient.
pub(crate) type Gradients = Vec<(String, Vec<f64>)>;

/// The loss and gradients of one step.
pub(crate) type StepResult = (f64, Gradients);

/// What every case of one pass shares.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) device: &'a Device,
    /// The setting the pass runs in (its switches are set); `None` for the cases no setting
    /// changes (pool, dropout, SGD), run once.
    pub(crate) setting: Option<Setting>,
    pub(crate) quick: bool,
    /// The references, computed once and shared by every setting.
    pub(crate) references: &'a References,
    /// [`super::CheckOptions::perturb`].
    pub(crate) perturb: Option<&'a str>,
}

impl Context<'_> {
    /// The precision of the pass (fp32 for the setting-independent cases).
    pub(crate) fn precision(&self) -> Precision {
        self.setting.map_or(Precision::Fp32, |s| s.precision)
    }
}

/// The references of the convolution cases and training steps, by case: a reference does not
/// depend on the setting under test, so each is computed once for all of them.
#[derive(Default)]
pub(crate) struct References {
    pub(crate) conv: RefCell<HashMap<String, Rc<ConvOutput>>>,
    pub(crate) steps: RefCell<HashMap<String, Rc<StepResult>>>,
}

/// The reference stored under `key` in `map`, computed by `make` on our own engine the first
/// time (the switch is set back afterwards): the references are the CPU path or the direct
/// loops, never the engine under test.
pub(crate) fn cached<V>(
    map: &RefCell<HashMap<String, Rc<V>>>,
    key: String,
    make: impl FnOnce() -> Result<V, CheckError>,
) -> Result<Rc<V>, CheckError> {
    if let Some(v) = map.borrow().get(&key) {
        return Ok(Rc::clone(v));
    }
    let engine = ops::conv_engine();
    ops::set_conv_engine(ConvEngine::Own);
    let made = make();
    ops::set_conv_engine(engine);
    let v = Rc::new(made?);
    map.borrow_mut().insert(key, Rc::clone(&v));
    Ok(v)
}

/// Values in [-1, 1) from a small LCG (64-bit, Knuth's MMIX constants; the top 53 bits as the
/// fraction): inputs fixed across runs and platforms without depending on candle's (or any)
/// RNG. The check's inputs, and the crate's tests' (`tests/common`).
pub fn lcg_values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// [`lcg_values`] rounded to f32, so that the f64 reference sees exactly the tested inputs.
pub(crate) fn values(n: usize, seed: u64) -> Vec<f64> {
    lcg_values(n, seed)
        .into_iter()
        .map(|v| f64::from(v as f32))
        .collect()
}

/// An f32 tensor of `values` on `device`.
pub(crate) fn tensor(
    values: &[f64],
    dims: &[usize],
    device: &Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values.to_vec(), dims, &Device::Cpu)?
        .to_dtype(DType::F32)?
        .to_device(device)
}

/// Every element as f64 (exact from f32), row-major.
pub(crate) fn to_f64(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
}

pub(crate) fn op_error(op: &'static str) -> impl Fn(candle_core::Error) -> CheckError {
    move |source| CheckError::Op { op, source }
}

/// One compared row; `tested` is perturbed first if [`super::CheckOptions::perturb`] names
/// `op` (and the engine, if it names one).
pub(crate) fn case(
    ctx: &Context<'_>,
    op: &'static str,
    shape: String,
    mut tested: Vec<f64>,
    reference: &[f64],
    tolerance: Tolerance,
) -> Case {
    perturb(ctx.perturb, op, ctx.setting.map(|s| s.engine), &mut tested);
    row(
        ctx,
        op,
        shape,
        compare(&tested, reference, tolerance),
        tolerance,
    )
}

/// The row of a comparison's result `(max_abs, max_rel, pass)` (see [`compare`]).
pub(crate) fn row(
    ctx: &Context<'_>,
    op: &'static str,
    shape: String,
    (max_abs, max_rel, pass): (f64, f64, bool),
    tolerance: Tolerance,
) -> Case {
    Case {
        op,
        shape,
        dtype: "f32",
        setting: ctx.setting,
        max_abs,
        max_rel,
        tolerance,
        pass,
    }
}
