//! Reading run folders (`<root>/<model>/lr-<lr>/seed-<seed>/`) as the trainer writes them:
//! `metrics.csv` (one row per finished epoch), `result.json` (when the run ended), `config.yaml`
//! (shown verbatim, never parsed here: YAML belongs to the trainer's config module) and `lock`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ReportError;

/// The exact header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_sec";

/// One row of `metrics.csv`: the state after one finished epoch. Empty cells are `None` (the
/// validation columns are empty without a validation split). Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    /// 1-based epoch number.
    pub epoch: u32,
    /// Learning rate used during this epoch.
    pub lr: Option<f64>,
    /// Mean training loss over the epoch (may be NaN or infinite in a diverged run).
    pub train_loss: Option<f64>,
    /// Training accuracy over the epoch.
    pub train_acc: Option<f64>,
    /// Validation loss after the epoch.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch.
    pub val_acc: Option<f64>,
    /// Test loss after the epoch.
    pub test_loss: Option<f64>,
    /// Test accuracy after the epoch.
    pub test_acc: Option<f64>,
    /// Wall-clock seconds the epoch took.
    pub seconds: Option<f64>,
    /// Training throughput during the epoch.
    pub images_per_sec: Option<f64>,
}

impl MetricsRow {
    /// Test error in percent after this epoch.
    pub fn test_error(&self) -> Option<f64> {
        self.test_acc.map(|a| 100.0 * (1.0 - a))
    }

    /// Validation error in percent after this epoch (`None` without a validation split).
    pub fn val_error(&self) -> Option<f64> {
        self.val_acc.map(|a| 100.0 * (1.0 - a))
    }
}

/// Reads a `metrics.csv`, checking the header and every cell.
///
/// Written by hand rather than with a CSV crate: the file is numbers only, without quoting, under
/// a fixed header, so splitting on commas is the whole format.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, message: String| ReportError::Metrics {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == METRICS_HEADER => {}
        Some((_, header)) => {
            return Err(bad(
                1,
                format!("header is {header:?}, expected {METRICS_HEADER:?}"),
            ))
        }
        None => {
            return Err(bad(
                1,
                format!("empty file, expected the header {METRICS_HEADER:?}"),
            ))
        }
    }
    let columns: Vec<&str> = METRICS_HEADER.split(',').collect();
    let mut rows = Vec::new();
    for (index, line) in lines {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(bad(
                number,
                format!("{} cells, expected {}", cells.len(), columns.len()),
            ));
        }
        let float = |i: usize| -> Result<Option<f64>, ReportError> {
            if cells[i].is_empty() {
                return Ok(None);
            }
            cells[i].parse::<f64>().map(Some).map_err(|_| {
                bad(
                    number,
                    format!("column {} is {:?}, expected a number", columns[i], cells[i]),
                )
            })
        };
        let epoch = cells[0].parse::<u32>().map_err(|_| {
            bad(
                number,
                format!("column epoch is {:?}, expected a whole number", cells[0]),
            )
        })?;
        rows.push(MetricsRow {
            epoch,
            lr: float(1)?,
            train_loss: float(2)?,
            train_acc: float(3)?,
            val_loss: float(4)?,
            val_acc: float(5)?,
            test_loss: float(6)?,
            test_acc: float(7)?,
            seconds: float(8)?,
            images_per_sec: float(9)?,
        });
    }
    Ok(rows)
}

/// `result.json`, written when a run ends. Errors are in percent, `None` where not defined.
/// Unknown fields are accepted so the trainer can add to it without breaking the report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunResult {
    /// Model name as the trainer spells it.
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed of the run.
    pub seed: u64,
    /// `"done"` or `"diverged"` (any other value is shown as is).
    pub status: String,
    /// Why the run stopped early, if it did.
    #[serde(default)]
    pub reason: Option<String>,
    /// Epochs trained.
    #[serde(default)]
    pub epochs_run: Option<u32>,
    /// Epochs the schedule asked for.
    #[serde(default)]
    pub epochs_planned: Option<u32>,
    /// Test error after the last epoch.
    #[serde(default)]
    pub final_test_error: Option<f64>,
    /// Lowest test error over the epochs.
    #[serde(default)]
    pub best_test_error: Option<f64>,
    /// Epoch of the lowest test error.
    #[serde(default)]
    pub best_test_epoch: Option<u32>,
    /// Validation error after the last epoch.
    #[serde(default)]
    pub final_val_error: Option<f64>,
    /// Lowest validation error over the epochs.
    #[serde(default)]
    pub best_val_error: Option<f64>,
    /// Epoch of the lowest validation error.
    #[serde(default)]
    pub best_val_epoch: Option<u32>,
    /// Test error at the epoch of the lowest validation error.
    #[serde(default)]
    pub test_error_at_best_val: Option<f64>,
    /// Wall-clock seconds of the whole run.
    #[serde(default)]
    pub wall_seconds: Option<f64>,
    /// Number of weights and biases of the network.
    #[serde(default)]
    pub parameters: Option<u64>,
}

/// Reads and checks a `result.json`.
pub fn read_result(path: &Path) -> Result<RunResult, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReportError::ResultJson {
        path: path.to_path_buf(),
        source,
    })
}

/// Everything found in one run folder.
#[derive(Debug, Clone)]
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Model name (from `result.json`, else the folder name).
    pub model: String,
    /// Base learning rate (from `result.json`, else the `lr-<lr>` folder name).
    pub lr: f64,
    /// Seed (from `result.json`, else the `seed-<seed>` folder name).
    pub seed: u64,
    /// Rows of `metrics.csv` (empty when the file is absent).
    pub metrics: Vec<MetricsRow>,
    /// `result.json`, when the run ended.
    pub result: Option<RunResult>,
    /// `config.yaml` verbatim, when present.
    pub config_yaml: Option<String>,
    /// Whether a `lock` file is present (a trainer holds the folder, or one was killed).
    pub lock_present: bool,
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let entries = fs::read_dir(dir).map_err(|source| ReportError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ReportError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.path().is_dir() {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

fn name_after<'a>(path: &'a Path, prefix: &str) -> Option<&'a str> {
    path.file_name()?.to_str()?.strip_prefix(prefix)
}

/// Finds every run folder under `root` (`<model>/lr-<lr>/seed-<seed>/` holding at least one of
/// `metrics.csv`, `result.json`, `config.yaml`), sorted by path. Other folders are ignored.
pub fn scan(root: &Path) -> Result<Vec<RunFolder>, ReportError> {
    if !root.is_dir() {
        return Err(ReportError::NoRuns(root.to_path_buf()));
    }
    let mut runs = Vec::new();
    for model_dir in read_dir_sorted(root)? {
        let Some(model_name) = model_dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        for lr_dir in read_dir_sorted(&model_dir)? {
            let Some(lr) = name_after(&lr_dir, "lr-").and_then(|s| s.parse::<f64>().ok()) else {
                continue;
            };
            for seed_dir in read_dir_sorted(&lr_dir)? {
                let Some(seed) = name_after(&seed_dir, "seed-").and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                let metrics_path = seed_dir.join("metrics.csv");
                let result_path = seed_dir.join("result.json");
                let config_path = seed_dir.join("config.yaml");
                if !metrics_path.exists() && !result_path.exists() && !config_path.exists() {
                    continue;
                }
                let metrics = if metrics_path.exists() {
                    read_metrics(&metrics_path)?
                } else {
                    Vec::new()
                };
                let result = if result_path.exists() {
                    Some(read_result(&result_path)?)
                } else {
                    None
                };
                let config_yaml = fs::read_to_string(&config_path).ok();
                let (model, lr, seed) = match &result {
                    Some(r) => (r.model.clone(), r.lr, r.seed),
                    None => (model_name.to_string(), lr, seed),
                };
                runs.push(RunFolder {
                    lock_present: seed_dir.join("lock").exists(),
                    dir: seed_dir,
                    model,
                    lr,
                    seed,
                    metrics,
                    result,
                    config_yaml,
                });
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_with_empty_validation_and_nan_loss_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        fs::write(
            &path,
            format!("{METRICS_HEADER}\n1,0.1,2.1,0.2,,,2.0,0.25,3.5,100\n2,0.1,NaN,0.1,,,inf,0.1,3.0,120\n"),
        )
        .unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].val_acc, None);
        // 100 * (1 - 0.25) = 75.
        assert_eq!(rows[0].test_error(), Some(75.0));
        assert!(rows[1].train_loss.unwrap().is_nan());
        assert_eq!(rows[1].test_loss, Some(f64::INFINITY));
    }

    #[test]
    fn a_bad_cell_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        fs::write(
            &path,
            format!("{METRICS_HEADER}\n1,0.1,x,0.2,,,2.0,0.25,3.5,100\n"),
        )
        .unwrap();
        let message = read_metrics(&path).unwrap_err().to_string();
        assert!(message.contains("metrics.csv"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("train_loss"), "{message}");
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        fs::write(&path, "epoch,loss\n1,2\n").unwrap();
        let message = read_metrics(&path).unwrap_err().to_string();
        assert!(
            message.contains("expected \"epoch,lr,train_loss"),
            "{message}"
        );
    }
}
