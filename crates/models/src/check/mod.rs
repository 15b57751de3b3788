//! The device check: every op the networks use, and one training step of each network, run on
//! a device and compared with a reference (`allconv check`; see `docs/protocol.md`, Device
//! check).
//!
//! The reference of the convolutions on CUDA is the CPU path (the same op on the CPU in f32);
//! on the CPU it is a direct definition (plain loops in f64), so the check means something on
//! every machine. The bit-exact ops (pool, dropout, SGD) are compared with their direct
//! definitions on every device (in f32 in the op's own rounding order), which the CPU path
//! equals bit for bit. The training
//! step's reference on the CPU is the same network in f64 (our CPU ops in f64, which the op
//! cases check against the loops).
//!
//! The result is a list of [`Case`]s, one table row each; the caller prints them and decides
//! what a failure means.

mod compare;
mod context;
mod direct;
mod identity;
mod ops;
mod setting;
mod step;

use candle_core::Device;

pub use compare::Tolerance;
pub use context::lcg_values;
pub use identity::device_identity;
pub use setting::{combinations, Setting};

use crate::ops::ConvEngine;

/// Arithmetic the device may use for convolutions and matrix products: `fp32`, or `tf32` (CUDA
/// only; see [`crate::ops::set_tf32`]).
pub use allconv_vocab::Precision;

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The device under test.
    pub device: Device,
    /// The precisions to run every setting-dependent case in (TF32 only on CUDA).
    pub precisions: Vec<Precision>,
    /// cuDNN's algorithm sets to run them in: `true` deterministic algorithms only (training's
    /// default), `false` the free choice.
    pub deterministic: Vec<bool>,
    /// The convolution engines to run them on.
    pub engines: Vec<ConvEngine>,
    /// Networks whose training step is checked (canonical names or any case).
    pub models: Vec<String>,
    /// Fewer and smaller shapes and a batch of 2 for the training step.
    pub quick: bool,
    /// For tests only, `None` otherwise (the binary never sets it): one op (e.g.
    /// `conv_bwd_filter`) whose tested result is perturbed, on every convolution engine, or as
    /// `conv_bwd_filter@own` on one; `step_grad_first_batch` moves the first batch's step
    /// gradients only. It proves the check can fail (and that a failure of one engine only, or
    /// of the first batch only, is seen as such).
    pub perturb: Option<String>,
}

impl CheckOptions {
    /// The settings every convolution and training-step case runs in (see [`combinations`]).
    pub fn settings(&self) -> Vec<Setting> {
        combinations(&self.precisions, &self.deterministic, &self.engines)
    }
}

/// One compared result: one row of the table.
#[derive(Debug, Clone)]
pub struct Case {
    /// The op's identifier, e.g. `conv_relu_fwd`, `pool_bwd`, `step_grad` (the names
    /// [`CheckOptions::perturb`] accepts).
    pub op: &'static str,
    /// The case's shape and parameters, e.g. `x 2x5x9x8 w 6x5x3x3 s2 p1`.
    pub shape: String,
    /// The dtype of the tested computation.
    pub dtype: &'static str,
    /// The setting it ran in; `None` for the cases that no setting changes (pool, dropout,
    /// SGD: our own kernels, bit for bit), which count for every setting.
    pub setting: Option<Setting>,
    /// Largest absolute difference from the reference.
    pub max_abs: f64,
    /// Largest absolute difference divided by the largest reference magnitude.
    pub max_rel: f64,
    /// What the case must meet.
    pub tolerance: Tolerance,
    /// Whether it met it.
    pub pass: bool,
}

/// The outcome of [`run`].
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Every case, in the order run.
    pub cases: Vec<Case>,
    /// What cuDNN chose per convolution shape (algorithm, math type, workspace); empty on the
    /// CPU.
    pub plans: Vec<String>,
    /// The settings checked, in the order run.
    pub settings: Vec<Setting>,
}

/// What a check says about one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingOutcome {
    /// The setting.
    pub setting: Setting,
    /// Cases that count for it (its own and the setting-independent ones).
    pub cases: usize,
    /// The distinct ops of its failing cases, in order of first failure (empty: it passed).
    pub failed_ops: Vec<&'static str>,
}

impl CheckReport {
    /// The distinct ops of the failing cases, in order of first failure.
    pub fn failed_ops(&self) -> Vec<&'static str> {
        distinct_failures(self.cases.iter())
    }

    /// Per setting checked: its cases and failing ops.
    pub fn outcomes(&self) -> Vec<SettingOutcome> {
        self.settings
            .iter()
            .map(|&setting| {
                let counts = |c: &&Case| c.setting.is_none() || c.setting == Some(setting);
                SettingOutcome {
                    setting,
                    cases: self.cases.iter().filter(counts).count(),
                    failed_ops: distinct_failures(self.cases.iter().filter(counts)),
                }
            })
            .collect()
    }
}

fn distinct_failures<'a>(cases: impl Iterator<Item = &'a Case>) -> Vec<&'static str> {
    let mut ops: Vec<&'static str> = Vec::new();
    for case in cases.filter(|c| !c.pass) {
        if !ops.contains(&case.op) {
            ops.push(case.op);
        }
    }
    ops
}

/// Errors of the check (not failures of a case, which are [`Case::pass`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Options that cannot be run.
    #[error("device check: {0}")]
    Invalid(String),
    /// A model name that is not one of the 12.
    #[error(transparent)]
    Model(#[from] crate::ModelError),
    /// An op returned an error instead of a result.
    #[error("device check, {op}: {source}")]
    Op {
        /// The op that failed to run.
        op: &'static str,
        /// candle's error.
        source: candle_core::Error,
    },
}

/// Runs every case on `options.device`: the setting-independent ones once, then the
/// convolutions and training steps in each setting. The process-wide switches (TF32,
/// deterministic algorithms, convolution engine) are set per setting and restored afterwards;
/// the references always run on our own engine.
pub fn run(options: &CheckOptions) -> Result<CheckReport, CheckError> {
    run_with(options, &mut |_| {})
}

/// [`run`], calling `on_case` with each case as soon as it is compared (for a live table).
pub fn run_with(
    options: &CheckOptions,
    on_case: &mut dyn FnMut(&Case),
) -> Result<CheckReport, CheckError> {
    for (what, empty) in [
        ("precision", options.precisions.is_empty()),
        (
            "algorithm set (deterministic)",
            options.deterministic.is_empty(),
        ),
        ("convolution engine", options.engines.is_empty()),
    ] {
        if empty {
            return Err(CheckError::Invalid(format!("no {what} to check")));
        }
    }
    if options.precisions.contains(&Precision::Tf32) && !options.device.is_cuda() {
        return Err(CheckError::Invalid(
            "tf32 applies to CUDA only; on the CPU check fp32".into(),
        ));
    }
    let specs = step::specs(&options.models)?;
    let settings = options.settings();
    let before = Setting::current();
    let mut cases = Vec::new();
    let mut push = |case: Case| {
        on_case(&case);
        cases.push(case);
    };
    let references = context::References::default();
    let result = (|| -> Result<(), CheckError> {
        let exact = context::Context {
            device: &options.device,
            setting: None,
            quick: options.quick,
            references: &references,
            perturb: options.perturb.as_deref(),
        };
        ops::pool_cases(&exact, &mut push)?;
        ops::dropout_cases(&exact, &mut push)?;
        ops::sgd_cases(&exact, &mut push)?;
        for &setting in &settings {
            setting.apply();
            let ctx = context::Context {
                setting: Some(setting),
                ..exact
            };
            ops::conv_cases(&ctx, &mut push)?;
            step::step_cases(&ctx, &specs, &mut push)?;
        }
        Ok(())
    })();
    before.apply();
    result?;
    #[cfg(feature = "cuda")]
    let plans = if options.device.is_cuda() {
        crate::ops::cudnn_plans()
    } else {
        Vec::new()
    };
    #[cfg(not(feature = "cuda"))]
    let plans = Vec::new();
    Ok(CheckReport {
        cases,
        plans,
        settings,
    })
}
