//! Training on CUDA starts with the device check (docs/protocol.md, Device check), in the
//! settings the run uses: its precision (fp32, and TF32 when `training.tf32`), its cuDNN
//! algorithm set (`training.deterministic`) and its convolution engine
//! (`training.conv_engine`). Outcomes are remembered per (binary, GPU, driver, cuDNN) and
//! setting in `<runs>/device-check/<key>.json` (also by `allconv check --runs`); a
//! remembered outcome counts only for the setting it covered, so a run in another setting is
//! checked first. A failure stops training, naming the ops, unless `training.conv_engine` is
//! `auto` and candle's engine passes, which the run then uses (said on stderr);
//! `training.skip_device_check` (`--skip-check`) trains anyway and is recorded with the run.

use allconv_models::check::{device_identity, CheckOptions, Precision, Setting, SettingOutcome};
use allconv_models::ops::{self, ConvEngine, ConvEngineChoice};
use allconv_runs::errln;
use allconv_runs::{CheckedSetting, DeviceCheckRecord, RunsRoot};
use allconv_train::config::{ExperimentConfig, TrainingConfig};
use anyhow::{bail, Context};
use candle_core::Device;

/// How training was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not a CUDA run: nothing to check.
    NotCuda,
    /// `training.skip_device_check` was set.
    Skipped,
    /// Passes of every setting the run needs were on record.
    Remembered,
    /// The check ran now (for the settings not on record) and passed.
    Passed,
}

/// The settings a training run needs a passed check of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// fp32 always (the strict tolerances), and TF32 when the run uses it.
    pub precisions: Vec<Precision>,
    /// `training.deterministic`.
    pub deterministic: bool,
    /// `training.conv_engine`.
    pub choice: ConvEngineChoice,
}

impl Needs {
    /// What a run with `training` needs.
    pub fn of(training: &TrainingConfig) -> Self {
        let mut precisions = vec![Precision::Fp32];
        if training.precision == Precision::Tf32 {
            precisions.push(Precision::Tf32);
        }
        Self {
            precisions,
            deterministic: training.deterministic,
            choice: training.conv_engine,
        }
    }

    fn settings(&self, engine: ConvEngine) -> Vec<Setting> {
        self.precisions
            .iter()
            .map(|&precision| Setting {
                precision,
                deterministic: self.deterministic,
                engine,
            })
            .collect()
    }
}

/// What the gate decided: how the run was let through and on which convolution engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// How.
    pub gate: Gate,
    /// The engine the run uses.
    pub engine: ConvEngine,
    /// The message printed when `auto` chose candle's engine.
    pub fallback: Option<String>,
}

/// One setting's outcome as the record keeps it.
pub fn checked(outcome: &SettingOutcome) -> CheckedSetting {
    CheckedSetting {
        precision: outcome.setting.precision.name().to_string(),
        deterministic: outcome.setting.deterministic,
        conv_engine: outcome.setting.engine.name().to_string(),
        cases: outcome.cases,
        failed_ops: outcome.failed_ops.iter().map(|s| s.to_string()).collect(),
    }
}

fn find<'a>(record: &'a DeviceCheckRecord, setting: &Setting) -> Option<&'a CheckedSetting> {
    record.find(
        setting.precision.name(),
        setting.deterministic,
        setting.engine.name(),
    )
}

/// The failing ops of `settings` in `record` (`None` if one of them was never checked).
fn remembered_failures(record: &DeviceCheckRecord, settings: &[Setting]) -> Option<Vec<String>> {
    let mut ops: Vec<String> = Vec::new();
    for setting in settings {
        for op in &find(record, setting)?.failed_ops {
            if !ops.contains(op) {
                ops.push(op.clone());
            }
        }
    }
    Some(ops)
}

/// The device-agnostic rule. For each engine `needs.choice` allows (ours, then candle's for
/// `auto`): remembered passes of all its settings let the run through on it; a setting never
/// checked (or a remembered failure of the last engine to try, which is checked again) runs
/// `run_check` for those settings, whose outcomes are written down; a remembered failure of
/// ours under `auto` is a verdict, so that every process of a grid does not repeat it. No
/// engine passing is an error naming the failing ops.
pub fn gate(
    runs: &RunsRoot,
    identity: &str,
    needs: &Needs,
    mut run_check: impl FnMut(&[Setting]) -> anyhow::Result<Vec<CheckedSetting>>,
) -> anyhow::Result<Decision> {
    let mut record = runs
        .device_check(identity)?
        .unwrap_or_else(|| DeviceCheckRecord::new(identity));
    let path = runs.device_check_path(&DeviceCheckRecord::key(identity));
    let candidates = needs.choice.candidates();
    let mut checked_now = false;
    let mut failures: Vec<(ConvEngine, Vec<String>, bool)> = Vec::new();
    for (i, &engine) in candidates.iter().enumerate() {
        let last = i + 1 == candidates.len();
        let settings = needs.settings(engine);
        let remembered = remembered_failures(&record, &settings);
        let failed = match remembered {
            Some(ops) if ops.is_empty() => {
                let gate = if checked_now {
                    Gate::Passed
                } else {
                    Gate::Remembered
                };
                return Ok(decide(gate, engine, needs, identity, &failures, &path));
            }
            Some(ops) if !last => {
                failures.push((engine, ops, true));
                continue;
            }
            _ => {
                let to_check: Vec<Setting> = settings
                    .iter()
                    .filter(|s| !find(&record, s).is_some_and(CheckedSetting::passed))
                    .copied()
                    .collect();
                record.merge(run_check(&to_check)?);
                runs.write_device_check(&record)?;
                checked_now = true;
                remembered_failures(&record, &settings)
                    .context("the device check did not report every setting it was asked for")?
            }
        };
        if failed.is_empty() {
            return Ok(decide(
                Gate::Passed,
                engine,
                needs,
                identity,
                &failures,
                &path,
            ));
        }
        failures.push((engine, failed, false));
    }
    let what: Vec<String> = failures
        .iter()
        .map(|(engine, ops, _)| format!("{engine} engine: {}", ops.join(", ")))
        .collect();
    bail!(
        "the device check failed on {identity} ({} algorithms, {}): {}; refusing to train. \
         --skip-check (training.skip_device_check=true) trains anyway and records it with the \
         run",
        if needs.deterministic {
            "deterministic"
        } else {
            "free"
        },
        needs
            .precisions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(","),
        what.join("; ")
    )
}

fn decide(
    gate: Gate,
    engine: ConvEngine,
    needs: &Needs,
    identity: &str,
    failures: &[(ConvEngine, Vec<String>, bool)],
    path: &std::path::Path,
) -> Decision {
    let fallback = failures.first().map(|(failed, ops, remembered)| {
        format!(
            "the device check failed for the {failed} convolution engine on {identity}: {} ({}); \
             training.conv_engine is {}, so this run trains on the {engine} engine, which \
             passed: {}. Set training.conv_engine: own to refuse instead",
            ops.join(", "),
            if *remembered {
                format!("remembered in {}; delete it to check again", path.display())
            } else {
                "checked now".to_string()
            },
            needs.choice.name(),
            engine.describe(true)
        )
    });
    Decision {
        gate,
        engine,
        fallback,
    }
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

/// What a check's outcome depends on besides its settings: this binary and the device (GPU,
/// driver, cuDNN).
pub fn identity(device: &Device) -> anyhow::Result<String> {
    Ok(format!(
        "{} | {}",
        binary_identity(),
        device_identity(device).context("identifying the device for the device check")?
    ))
}

/// Adds a check's outcomes to the record of `identity` under `runs` (`allconv check
/// --runs`); returns the record's file.
pub fn record(
    runs: &RunsRoot,
    identity: &str,
    outcomes: &[SettingOutcome],
) -> anyhow::Result<std::path::PathBuf> {
    let mut record = runs
        .device_check(identity)?
        .unwrap_or_else(|| DeviceCheckRecord::new(identity));
    record.merge(outcomes.iter().map(checked));
    runs.write_device_check(&record)?;
    Ok(runs.device_check_path(&DeviceCheckRecord::key(identity)))
}

/// Runs the gate for an experiment about to train: on CUDA, the full check of all 12 networks
/// in the settings the runs need that no remembered check covered; then sets the convolution
/// engine the gate chose.
pub fn ensure_checked(experiment: &ExperimentConfig) -> anyhow::Result<Gate> {
    let training = &experiment.training;
    if !training.device.is_cuda() {
        return Ok(Gate::NotCuda);
    }
    if training.skip_device_check {
        errln!(
            "warning: the device check is skipped (training.skip_device_check); recorded in \
             each run's config and stated in the report"
        );
        return Ok(Gate::Skipped);
    }
    let device = training.open_device()?;
    let identity = identity(&device)?;
    let runs = RunsRoot::new(experiment.out.runs.clone());
    let decision = gate(&runs, &identity, &Needs::of(training), |settings| {
        errln!(
            "device check (once per binary, GPU, driver, cuDNN and setting): {identity}; {}",
            settings
                .iter()
                .map(Setting::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        let report = super::check_table::run_and_print(
            &CheckOptions {
                device: device.clone(),
                precisions: distinct(settings.iter().map(|s| s.precision)),
                deterministic: distinct(settings.iter().map(|s| s.deterministic)),
                engines: distinct(settings.iter().map(|s| s.engine)),
                // All 12, not the grid's: the remembered pass serves any later grid.
                models: Vec::new(),
                quick: false,
                perturb: None,
            },
            &training.device.to_string(),
        )?;
        Ok(report.outcomes().iter().map(checked).collect())
    })?;
    if let Some(message) = &decision.fallback {
        errln!("warning: {message}");
    }
    ops::set_conv_engine(decision.engine);
    Ok(decision.gate)
}

/// The distinct values of `items`, in order of first appearance.
fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests;
