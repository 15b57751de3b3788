//! Refusing to resume a run folder with a configuration other than the one it was started with.

use allconv_runs::RunDir;

use crate::config::{ExperimentConfig, RunConfig, SavedRunConfig};
use crate::error::{Result, TrainError};

/// Refuses to continue a run folder whose `config.yaml` was written for a different run: every
/// recorded setting but the output root, the device and CPU kernel path, how the data folder was
/// made and the Slurm resources must match. Returns the record, when the folder has one.
pub(crate) fn check_saved_config(
    dir: &RunDir,
    config: &RunConfig,
    has_checkpoint: bool,
) -> Result<Option<SavedRunConfig>> {
    let path = dir.config_path();
    if !path.exists() {
        return Ok(None);
    }
    let saved: SavedRunConfig = crate::config::load_yaml(&path)?;
    let comparable = |model: &str, lr: f64, seed: u64, exp: &ExperimentConfig| {
        let mut v = serde_json::json!({ "model": model, "lr": lr, "seed": seed, "config": exp });
        if let Some(c) = v.get_mut("config").and_then(|c| c.as_object_mut()) {
            c.remove("out");
            c.remove("grid");
            // Resources of the cluster job, not of the training: a resubmission may change them.
            c.remove("slurm");
            // Where the run computes, which a resume on another machine may change (each part's
            // device, CPU and kernel path are in the provenance's segments).
            if let Some(t) = c.get_mut("training").and_then(|t| t.as_object_mut()) {
                t.remove("device");
                t.remove("cpu_kernels");
            }
            // How the data folder was made, not what was read (the md5 sums in the provenance
            // say that): folders started before the key existed resume.
            if let Some(d) = c.get_mut("data").and_then(|d| d.as_object_mut()) {
                d.remove("derive_subset");
            }
        }
        v
    };
    let old = comparable(&saved.model, saved.lr, saved.seed, &saved.config);
    let new = comparable(&config.model, config.lr, config.seed, &config.config);
    let mut differences = Vec::new();
    diff_json("", &old, &new, &mut differences);
    if differences.is_empty() || !has_checkpoint {
        return Ok(Some(saved));
    }
    Err(TrainError::RecordDiffers {
        record: path,
        differences,
    })
}

fn diff_json(
    prefix: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff_json(
                    &key,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if old != new => out.push(format!("{prefix}: saved {old}, now {new}")),
        _ => {}
    }
}
