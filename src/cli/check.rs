//! `allconv check`: compare every op the networks use, and one training step of each network,
//! on a device against a reference, one table row per case, in the settings training uses
//! (precision, cuDNN's algorithm set, convolution engine; see `docs/protocol.md`, Device check).
//! Exits with an error naming the failing ops.

use allconv_runs::outln;
use std::path::PathBuf;

use allconv_models::check::{CheckOptions, CheckReport, Precision};
use allconv_models::ops::{ConvEngine, ALL_CONV_ENGINES};
use allconv_vocab::Device;
use anyhow::{bail, Context};

/// Flags of `allconv check`.
#[derive(clap::Args)]
pub struct Args {
    /// The device to check: cpu, cuda (GPU 0) or cuda:N (GPU N).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Precisions to check, comma-separated: fp32, tf32 (tf32 on CUDA only).
    #[arg(long, value_delimiter = ',', default_value = "fp32")]
    precision: Vec<Precision>,
    /// cuDNN's algorithm set, as `training.deterministic` sets it for training: true
    /// (deterministic algorithms only; training's default), false (the free, fastest choice)
    /// or both. No effect on the CPU's own ops.
    #[arg(long, value_enum, default_value = "true")]
    deterministic: Algorithms,
    /// The convolution engine, as `training.conv_engine` chooses it: own (im2col + GEMM on the
    /// CPU, cuDNN on CUDA), candle (candle's conv2d and autograd, no cuDNN) or both.
    #[arg(long, value_enum, default_value = "own")]
    conv_engine: Engines,
    /// Networks whose training step is checked, comma-separated (case-insensitive); all 12 by
    /// default.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = super::choices::model())]
    models: Vec<String>,
    /// The CPU kernel path of the CPU's ops (over ALLCONV_CPU_KERNELS), as
    /// `training.cpu_kernels` chooses it for training.
    #[arg(long, value_name = "PATH", value_parser = super::choices::cpu_kernels())]
    cpu_kernels: Option<allconv_models::ops::CpuKernelsChoice>,
    /// Fewer and smaller shapes, a batch of 2 for the training steps.
    #[arg(long)]
    quick: bool,
    /// out.runs: also remember the outcome of each setting in DIR/device-check/ (the file
    /// `allconv train` and `allconv reproduce --runs DIR` consult on CUDA before training in
    /// that setting), whether it passed or not.
    #[arg(long, value_name = "DIR")]
    runs: Option<PathBuf>,
    // `--record`, the previous name of `--runs` (`super::deprecated`).
    #[arg(
        long = "record",
        value_name = "DIR",
        hide = true,
        conflicts_with = "runs"
    )]
    deprecated_record: Option<PathBuf>,
}

/// `--deterministic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Algorithms {
    /// Deterministic algorithms only.
    True,
    /// The free choice.
    False,
    /// Each in turn.
    Both,
}

impl Algorithms {
    fn values(self) -> Vec<bool> {
        match self {
            Self::True => vec![true],
            Self::False => vec![false],
            Self::Both => vec![true, false],
        }
    }
}

/// `--conv-engine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Engines {
    /// Our own convolutions.
    Own,
    /// candle's.
    Candle,
    /// Each in turn.
    Both,
}

impl Engines {
    fn values(self) -> Vec<ConvEngine> {
        match self {
            Self::Own => vec![ConvEngine::Own],
            Self::Candle => vec![ConvEngine::Candle],
            Self::Both => ALL_CONV_ENGINES.to_vec(),
        }
    }
}

/// Opens the device `--device` names.
pub fn device(device: Device) -> anyhow::Result<candle_core::Device> {
    allconv_models::open_device(device).with_context(|| {
        format!("--device {device}: no such CUDA device (or this binary was built without --features cuda)")
    })
}

/// The error `allconv check` ends with when a case failed: the failing ops, named.
pub fn failure(device_name: &str, report: &CheckReport) -> Option<String> {
    let failed = report.failed_ops();
    (!failed.is_empty()).then(|| {
        format!(
            "device check on {device_name} failed: {}",
            failed.join(", ")
        )
    })
}

/// Runs `allconv check`.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::cpu_kernels::choose(args.cpu_kernels, None)?;
    let options = CheckOptions {
        device: device(args.device)?,
        precisions: args.precision,
        deterministic: args.deterministic.values(),
        engines: args.conv_engine.values(),
        models: args.models,
        quick: args.quick,
        perturb: None,
    };
    let report = super::check_table::run_and_print(&options, &args.device.to_string())?;
    let runs = match (args.runs, args.deprecated_record) {
        (Some(runs), _) => Some(("--runs", runs)),
        (None, Some(runs)) => Some(("--record", runs)),
        (None, None) => None,
    };
    if let Some((flag, runs)) = runs {
        let runs = allconv_runs::RunsRoot::new(runs);
        let identity = super::device_gate::identity(&options.device)?;
        let path = super::device_gate::record(&runs, &identity, &report.outcomes())
            .with_context(|| format!("{flag} {}", runs.path().display()))?;
        outln!("recorded in {} for {identity}", path.display());
    }
    if let Some(failure) = failure(&args.device.to_string(), &report) {
        bail!(failure);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
