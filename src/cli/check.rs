//! `allconv check`: compare every op the networks use, and one training step of each network,
//! on a device against a reference, one table row per case (see `docs/protocol.md`, Device
//! check). Exits with an error naming the failing ops.

use std::time::Instant;

use allconv_models::check::{self, Case, CheckOptions, CheckReport, Precision};
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
    /// Networks whose training step is checked (all 12 when none is given).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Fewer and smaller shapes, a batch of 2 for the training steps.
    #[arg(long)]
    quick: bool,
}

/// Opens the device `--device` names.
pub fn device(device: Device) -> anyhow::Result<candle_core::Device> {
    allconv_models::open_device(device).with_context(|| {
        format!("--device {device}: no such CUDA device (or this binary was built without --features cuda)")
    })
}

fn row(case: &Case) {
    println!(
        "{:<22} {:<44} {:<4} {:<4} {:>10.3e} {:>10.3e} {:>10} {}",
        case.op,
        case.shape,
        case.dtype,
        case.precision,
        case.max_abs,
        case.max_rel,
        case.tolerance.to_string(),
        if case.pass { "PASS" } else { "FAIL" }
    );
}

/// Runs the check with `options`, printing the table as it goes, cuDNN's choices and a summary
/// line; the report is returned whether or not every case passed.
pub fn run_and_print(options: &CheckOptions, device_name: &str) -> anyhow::Result<CheckReport> {
    let start = Instant::now();
    println!(
        "{:<22} {:<44} {:<4} {:<4} {:>10} {:>10} {:>10} result",
        "op", "shape", "type", "prec", "max abs", "max rel", "tolerance"
    );
    let report = check::run_with(options, &mut row).context("device check")?;
    if !report.plans.is_empty() {
        println!("cuDNN's choices per convolution shape:");
        for plan in &report.plans {
            println!("  {plan}");
        }
    }
    let failed = report.cases.iter().filter(|c| !c.pass).count();
    println!(
        "device check on {device_name} ({}): {} cases, {} passed, {failed} failed, {:.1} s",
        options
            .precisions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(","),
        report.cases.len(),
        report.cases.len() - failed,
        start.elapsed().as_secs_f64()
    );
    Ok(report)
}

/// Runs `allconv check`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let options = CheckOptions {
        device: device(args.device)?,
        precisions: args.precision,
        models: args.models,
        quick: args.quick,
    };
    let report = run_and_print(&options, &args.device.to_string())?;
    let failed = report.failed_ops();
    if !failed.is_empty() {
        bail!(
            "device check on {} failed: {}",
            args.device,
            failed.join(", ")
        );
    }
    Ok(())
}
