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
mod direct;
mod identity;
mod ops;
mod step;

use candle_core::Device;

pub use compare::Tolerance;
pub use identity::device_identity;
pub use ops::lcg_values;

/// Environment variable naming one op (e.g. `conv_bwd_filter`) whose tested result the check
/// perturbs. For tests only: it proves the check can fail. Nothing but this module reads it.
pub const PERTURB_ENV: &str = "ALLCONV_CHECK_PERTURB";

/// Arithmetic the device may use for convolutions and matrix products: `fp32`, or `tf32` (CUDA
/// only; see [`crate::ops::set_tf32`]).
pub use allconv_vocab::Precision;

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The device under test.
    pub device: Device,
    /// The precisions to run every case in (TF32 only on CUDA).
    pub precisions: Vec<Precision>,
    /// Networks whose training step is checked (canonical names or any case).
    pub models: Vec<String>,
    /// Fewer and smaller shapes and a batch of 2 for the training step.
    pub quick: bool,
}

/// One compared result: one row of the table.
#[derive(Debug, Clone)]
pub struct Case {
    /// The op's identifier, e.g. `conv_relu_fwd`, `pool_bwd`, `step_grad` (the names
    /// [`PERTURB_ENV`] accepts).
    pub op: &'static str,
    /// The case's shape and parameters, e.g. `x 2x5x9x8 w 6x5x3x3 s2 p1`.
    pub shape: String,
    /// The dtype of the tested computation.
    pub dtype: &'static str,
    /// The precision it ran in.
    pub precision: Precision,
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
}

impl CheckReport {
    /// The distinct ops of the failing cases, in order of first failure.
    pub fn failed_ops(&self) -> Vec<&'static str> {
        let mut ops: Vec<&'static str> = Vec::new();
        for case in self.cases.iter().filter(|c| !c.pass) {
            if !ops.contains(&case.op) {
                ops.push(case.op);
            }
        }
        ops
    }
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

/// Runs every case on `options.device` in each precision. TF32 is switched on only for its
/// cases and set back to off afterwards.
pub fn run(options: &CheckOptions) -> Result<CheckReport, CheckError> {
    run_with(options, &mut |_| {})
}

/// [`run`], calling `on_case` with each case as soon as it is compared (for a live table).
pub fn run_with(
    options: &CheckOptions,
    on_case: &mut dyn FnMut(&Case),
) -> Result<CheckReport, CheckError> {
    if options.precisions.is_empty() {
        return Err(CheckError::Invalid("no precision to check".into()));
    }
    if options.precisions.contains(&Precision::Tf32) && !options.device.is_cuda() {
        return Err(CheckError::Invalid(
            "tf32 applies to CUDA only; on the CPU check fp32".into(),
        ));
    }
    let specs = step::specs(&options.models)?;
    let was_tf32 = crate::ops::tf32();
    let mut cases = Vec::new();
    let mut push = |case: Case| {
        on_case(&case);
        cases.push(case);
    };
    let result = (|| -> Result<(), CheckError> {
        for (i, &precision) in options.precisions.iter().enumerate() {
            crate::ops::set_tf32(precision == Precision::Tf32);
            let ctx = ops::Context {
                device: &options.device,
                precision,
                quick: options.quick,
                exact: i == 0,
            };
            ops::conv_cases(&ctx, &mut push)?;
            ops::pool_cases(&ctx, &mut push)?;
            ops::dropout_cases(&ctx, &mut push)?;
            ops::sgd_cases(&ctx, &mut push)?;
            step::step_cases(&ctx, &specs, &mut push)?;
        }
        Ok(())
    })();
    crate::ops::set_tf32(was_tf32);
    result?;
    #[cfg(feature = "cuda")]
    let plans = if options.device.is_cuda() {
        crate::ops::cudnn_plans()
    } else {
        Vec::new()
    };
    #[cfg(not(feature = "cuda"))]
    let plans = Vec::new();
    Ok(CheckReport { cases, plans })
}
