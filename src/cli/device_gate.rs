//! Training on CUDA starts with the device check (docs/protocol.md, Device check): once per
//! (binary, GPU, driver, cuDNN, precisions), remembered in `<runs>/device-check/<key>.json`
//! when it passes; a failed check stops training, naming the ops; `training.skip_device_check`
//! (`--skip-check`) trains anyway and is recorded with the run.

use allconv_models::check::{device_identity, CheckOptions, Precision};
use allconv_runs::{DeviceCheckRecord, RunsRoot};
use allconv_train::config::ExperimentConfig;
use anyhow::{bail, Context};

/// How training was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not a CUDA run: nothing to check.
    NotCuda,
    /// `training.skip_device_check` was set.
    Skipped,
    /// A pass of this identity was on record.
    Remembered,
    /// The check ran now and passed.
    Passed,
}

/// The outcome of one check run: cases compared and the failing ops.
pub struct Outcome {
    /// Cases compared.
    pub cases: usize,
    /// Ops of the failing cases (empty: passed).
    pub failed_ops: Vec<String>,
}

/// The device-agnostic rule: a remembered pass of `identity` lets training through; otherwise
/// `run_check` runs, its result is written down, and a failure is an error naming the ops.
pub fn gate(
    runs: &RunsRoot,
    identity: &str,
    run_check: impl FnOnce() -> anyhow::Result<Outcome>,
) -> anyhow::Result<Gate> {
    if let Some(record) = runs.device_check(identity)? {
        if record.passed {
            return Ok(Gate::Remembered);
        }
    }
    let outcome = run_check()?;
    let record = DeviceCheckRecord {
        identity: identity.to_string(),
        passed: outcome.failed_ops.is_empty(),
        failed_ops: outcome.failed_ops,
        cases: outcome.cases,
    };
    runs.write_device_check(&record)?;
    if !record.passed {
        bail!(
            "the device check failed on {identity}: {} (see `allconv check --device cuda`); \
             refusing to train. --skip-check (training.skip_device_check=true) trains anyway \
             and records it with the run",
            record.failed_ops.join(", ")
        );
    }
    Ok(Gate::Passed)
}

/// This binary: its version and its file's size and modification time (a rebuild is a new
/// binary).
fn binary_identity() -> String {
    let file = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{} bytes, modified {modified}", m.len())
        })
        .unwrap_or_else(|_| "unknown file".into());
    format!("allconv {} ({file})", env!("CARGO_PKG_VERSION"))
}

/// Runs the gate for an experiment about to train: on CUDA, the full check of all 12 networks
/// in fp32 (and TF32 when the runs use it).
pub fn ensure_checked(experiment: &ExperimentConfig) -> anyhow::Result<Gate> {
    let training = &experiment.training;
    if !training.device.is_cuda() {
        return Ok(Gate::NotCuda);
    }
    if training.skip_device_check {
        eprintln!(
            "warning: the device check is skipped (training.skip_device_check); recorded in \
             each run's config and stated in the report"
        );
        return Ok(Gate::Skipped);
    }
    let device = training.open_device()?;
    let mut precisions = vec![Precision::Fp32];
    if training.precision == Precision::Tf32 {
        precisions.push(Precision::Tf32);
    }
    let identity = format!(
        "{} | {} | {}",
        binary_identity(),
        device_identity(&device).context("identifying the GPU for the device check")?,
        precisions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let runs = RunsRoot::new(experiment.out.runs.clone());
    let gate = gate(&runs, &identity, || {
        eprintln!("device check (once per binary, GPU, driver and cuDNN): {identity}");
        let report = super::check::run_and_print(
            &CheckOptions {
                device: device.clone(),
                precisions,
                // All 12, not the grid's: the remembered pass serves any later grid.
                models: Vec::new(),
                quick: false,
            },
            &training.device.to_string(),
        )?;
        Ok(Outcome {
            cases: report.cases.len(),
            failed_ops: report.failed_ops().into_iter().map(String::from).collect(),
        })
    })?;
    Ok(gate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failed: &[&str]) -> anyhow::Result<Outcome> {
        Ok(Outcome {
            cases: 10,
            failed_ops: failed.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn a_pass_is_remembered_per_identity() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RunsRoot::new(dir.path());
        assert_eq!(gate(&runs, "gpu A", || outcome(&[])).unwrap(), Gate::Passed);
        // Remembered: the check must not run again.
        let again = gate(&runs, "gpu A", || panic!("the check ran again")).unwrap();
        assert_eq!(again, Gate::Remembered);
        // Another identity (driver, cuDNN, binary) is checked afresh.
        let mut ran = false;
        let other = gate(&runs, "gpu A, newer driver", || {
            ran = true;
            outcome(&[])
        });
        assert_eq!(other.unwrap(), Gate::Passed);
        assert!(ran);
    }

    #[test]
    fn a_failed_check_refuses_naming_the_ops_and_is_checked_again_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RunsRoot::new(dir.path());
        let err = gate(&runs, "gpu B", || {
            outcome(&["conv_bwd_filter", "step_grad"])
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("conv_bwd_filter, step_grad"), "{err}");
        assert!(err.contains("refusing to train"), "{err}");
        let record = runs.device_check("gpu B").unwrap().unwrap();
        assert!(!record.passed);
        assert_eq!(record.failed_ops, ["conv_bwd_filter", "step_grad"]);
        // A failure is not remembered as a verdict: the next start checks again.
        assert_eq!(gate(&runs, "gpu B", || outcome(&[])).unwrap(), Gate::Passed);
        assert!(runs.device_check("gpu B").unwrap().unwrap().passed);
    }

    #[test]
    fn the_cpu_and_a_skipped_check_train_without_checking() {
        let mut experiment = ExperimentConfig::default();
        assert_eq!(ensure_checked(&experiment).unwrap(), Gate::NotCuda);
        experiment.training.device = allconv_vocab::Device::Cuda(0);
        experiment.training.skip_device_check = true;
        assert_eq!(ensure_checked(&experiment).unwrap(), Gate::Skipped);
    }
}
