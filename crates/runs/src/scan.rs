//! Finding and reading every run folder below a runs root, leniently: a corrupt file makes that
//! one run an error value, the scan goes on.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, RunsError};
use crate::layout::{LR_PREFIX, SEED_PREFIX};
use crate::{EpochMetrics, RunDir, RunResult};

/// A run folder found by [`scan`], named by its place in the layout.
#[derive(Debug)]
pub struct FoundRun {
    /// The folder.
    pub dir: RunDir,
    /// Model name from the folder name.
    pub model: String,
    /// Learning rate from the `lr-<lr>` folder name.
    pub lr: f64,
    /// Seed from the `seed-<seed>` folder name.
    pub seed: u64,
    /// Its files, or the first one that could not be read.
    pub read: Result<RunRecord>,
}

/// Everything read from one run folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The folder.
    pub dir: PathBuf,
    /// Model name (from `result.json`, else the folder name).
    pub model: String,
    /// Base learning rate (from `result.json`, else the folder name).
    pub lr: f64,
    /// Seed (from `result.json`, else the folder name).
    pub seed: u64,
    /// Rows of `metrics.csv` (empty when the file is absent).
    pub metrics: Vec<EpochMetrics>,
    /// `result.json`, when the run ended.
    pub result: Option<RunResult>,
    /// `config.yaml` verbatim, when present (this crate parses no YAML).
    pub config_yaml: Option<String>,
    /// Whether a live process holds the folder's lock: the run is being trained now.
    pub trainer_running: bool,
}

fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if path.is_dir() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn name_after<'a>(path: &'a Path, prefix: &str) -> Option<&'a str> {
    path.file_name()?.to_str()?.strip_prefix(prefix)
}

/// Finds every run folder under `root` (`<model>/lr-<lr>/seed-<seed>/` holding at least one of
/// `metrics.csv`, `result.json`, `config.yaml`), sorted by path, and reads each. Other folders
/// are ignored. Fails only when the folders themselves cannot be listed.
pub fn scan(root: &Path) -> Result<Vec<FoundRun>> {
    if !root.is_dir() {
        return Err(RunsError::NoRuns(root.to_path_buf()));
    }
    let mut runs = Vec::new();
    for model_dir in subfolders(root)? {
        let Some(model) = model_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        for lr_dir in subfolders(&model_dir)? {
            let Some(lr) = name_after(&lr_dir, LR_PREFIX).and_then(|s| s.parse::<f64>().ok())
            else {
                continue;
            };
            for seed_dir in subfolders(&lr_dir)? {
                let Some(seed) =
                    name_after(&seed_dir, SEED_PREFIX).and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                let dir = RunDir::new(seed_dir);
                if !dir.metrics_path().exists()
                    && !dir.result_path().exists()
                    && !dir.config_path().exists()
                {
                    continue;
                }
                let read = read_run(&dir, model, lr, seed);
                runs.push(FoundRun {
                    dir,
                    model: model.to_string(),
                    lr,
                    seed,
                    read,
                });
            }
        }
    }
    Ok(runs)
}

fn read_run(dir: &RunDir, model: &str, lr: f64, seed: u64) -> Result<RunRecord> {
    let metrics = if dir.metrics_path().exists() {
        dir.read_metrics()?
    } else {
        Vec::new()
    };
    let result = dir.result()?;
    let (model, lr, seed) = match &result {
        Some(r) => (r.model.clone(), r.lr, r.seed),
        None => (model.to_string(), lr, seed),
    };
    Ok(RunRecord {
        dir: dir.path().to_path_buf(),
        model,
        lr,
        seed,
        metrics,
        result,
        config_yaml: fs::read_to_string(dir.config_path()).ok(),
        trainer_running: dir.trainer_running().is_some(),
    })
}
