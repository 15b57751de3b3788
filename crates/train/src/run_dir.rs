//! The run folder: its lock, `metrics.csv`, `result.json` and file names.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use fs2::FileExt;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, TrainError};
use crate::fsutil;

/// Header of `metrics.csv` (a contract with the report).
pub const METRICS_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_sec";

/// Paths inside one run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }
    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `config.yaml`: resolved configuration and provenance.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.yaml")
    }
    /// `metrics.csv`: one row per finished epoch.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    /// `result.json`: written when the run ends.
    pub fn result_path(&self) -> PathBuf {
        self.root.join("result.json")
    }
    /// `checkpoint/`.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint")
    }
    /// `weights.safetensors`: the final weights, written when the run ends.
    pub fn final_weights_path(&self) -> PathBuf {
        self.root.join("weights.safetensors")
    }
    /// `lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Waits up to `grace` for no process to hold the folder's lock; returns whether it is free.
    /// The lock is not kept.
    ///
    /// Why: a grid restarted right after Ctrl-C can find its killed predecessor's trainer still
    /// exiting (and holding the lock) for a moment; `allconv reproduce` waits briefly before
    /// starting a run there instead of reporting it as locked. [`RunDir::lock`] itself never
    /// waits, so a second trainer on a live run is refused at once.
    pub fn wait_unlocked(&self, grace: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        loop {
            match self.lock() {
                Ok(_released_at_once) => return true,
                Err(TrainError::Locked { .. }) if started.elapsed() < grace => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(_) => return false,
            }
        }
    }

    /// Takes the folder's exclusive lock (creating the folder), or fails with
    /// [`TrainError::Locked`] when another process holds it. The lock is an `flock`, released by
    /// the operating system when the holder exits or is killed, so no stale lock survives a crash.
    pub fn lock(&self) -> Result<RunLock> {
        std::fs::create_dir_all(&self.root).at(&self.root)?;
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        if file.try_lock_exclusive().is_err() {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text
                .trim()
                .parse::<u32>()
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            return Err(TrainError::Locked {
                run_dir: self.root.clone(),
                holder,
            });
        }
        // Informational only: the flock, not the file content, is the lock.
        file.set_len(0).at(&path)?;
        file.rewind().at(&path)?;
        write!(file, "{}", std::process::id()).at(&path)?;
        Ok(RunLock { _file: file })
    }

    /// Reads `result.json` if the run has ended.
    pub fn result(&self) -> Result<Option<RunResult>> {
        let path = self.result_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).at(&path)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| TrainError::Json { path, source })
    }

    /// Writes `result.json` atomically.
    pub fn write_result(&self, result: &RunResult) -> Result<()> {
        let path = self.result_path();
        let json = serde_json::to_string_pretty(result).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        fsutil::write_atomic(&path, format!("{json}\n").as_bytes())
    }

    /// Makes `metrics.csv` hold the header and exactly the rows of epochs `1..=epochs_done`
    /// (dropping rows a killed process appended after its last checkpoint).
    pub fn truncate_metrics(&self, epochs_done: usize) -> Result<()> {
        let path = self.metrics_path();
        let mut out = format!("{METRICS_HEADER}\n");
        if path.exists() {
            let text = std::fs::read_to_string(&path).at(&path)?;
            for (i, line) in text.lines().enumerate().skip(1) {
                if line.trim().is_empty() {
                    continue;
                }
                let epoch: usize = line
                    .split(',')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| TrainError::Checkpoint {
                        path: path.clone(),
                        reason: format!("line {}: no epoch number in `{line}`", i + 1),
                    })?;
                if epoch <= epochs_done {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        fsutil::write_atomic(&path, out.as_bytes())
    }

    /// Appends one row to `metrics.csv`.
    pub fn append_metrics(&self, row: &EpochMetrics) -> Result<()> {
        let path = self.metrics_path();
        let mut file = OpenOptions::new().append(true).open(&path).at(&path)?;
        writeln!(file, "{}", row.csv_row()).at(&path)?;
        file.sync_data().at(&path)
    }

    /// Reads every row of `metrics.csv`.
    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        let path = self.metrics_path();
        let text = std::fs::read_to_string(&path).at(&path)?;
        let mut lines = text.lines();
        if lines.next() != Some(METRICS_HEADER) {
            return Err(TrainError::Checkpoint {
                path,
                reason: format!("first line is not `{METRICS_HEADER}`"),
            });
        }
        lines
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                EpochMetrics::parse(l).map_err(|reason| TrainError::Checkpoint {
                    path: path.clone(),
                    reason: format!("line {}: {reason}", i + 2),
                })
            })
            .collect()
    }
}

/// Holds a run folder's lock until dropped (or until the process dies).
pub struct RunLock {
    _file: File,
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training cross-entropy over the epoch (dropout on, weights changing).
    pub train_loss: f64,
    /// Training accuracy over the epoch, a fraction.
    pub train_acc: f64,
    /// Validation loss, if there is a validation split and this epoch was evaluated.
    pub val_loss: Option<f64>,
    /// Validation accuracy (fraction).
    pub val_acc: Option<f64>,
    /// Test loss, if this epoch was evaluated.
    pub test_loss: Option<f64>,
    /// Test accuracy (fraction).
    pub test_acc: Option<f64>,
    /// Wall seconds of the epoch, training and evaluation.
    pub seconds: f64,
    /// Training images per second (training steps only).
    pub images_per_sec: f64,
}

impl EpochMetrics {
    /// The CSV line (no newline); absent values are empty fields. A hand-written formatter because
    /// every field is a number, so no quoting or escaping can arise.
    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_acc,
            opt(self.val_loss),
            opt(self.val_acc),
            opt(self.test_loss),
            opt(self.test_acc),
            self.seconds,
            self.images_per_sec
        )
    }

    /// Parses a line written by [`EpochMetrics::csv_row`].
    pub fn parse(line: &str) -> std::result::Result<Self, String> {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 10 {
            return Err(format!("expected 10 fields, found {}", fields.len()));
        }
        let num = |i: usize| -> std::result::Result<f64, String> {
            fields[i]
                .parse()
                .map_err(|_| format!("field {i} `{}` is not a number", fields[i]))
        };
        let opt = |i: usize| -> std::result::Result<Option<f64>, String> {
            if fields[i].is_empty() {
                Ok(None)
            } else {
                num(i).map(Some)
            }
        };
        Ok(EpochMetrics {
            epoch: fields[0]
                .parse()
                .map_err(|_| format!("epoch `{}` is not an integer", fields[0]))?,
            lr: num(1)?,
            train_loss: num(2)?,
            train_acc: num(3)?,
            val_loss: opt(4)?,
            val_acc: opt(5)?,
            test_loss: opt(6)?,
            test_acc: opt(7)?,
            seconds: num(8)?,
            images_per_sec: num(9)?,
        })
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// All planned epochs ran.
    Done,
    /// Stopped early: non-finite loss, or stuck at chance level.
    Diverged,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Done => "done",
            RunStatus::Diverged => "diverged",
        })
    }
}

/// The content of `result.json` (a contract with the report). Errors are in percent; `None` is
/// written as `null` where a value is not defined (no validation split, nothing evaluated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Model name.
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// `done` or `diverged`.
    pub status: RunStatus,
    /// Why the run diverged; `null` when done.
    pub reason: Option<String>,
    /// Epochs finished (rows in metrics.csv).
    pub epochs_run: usize,
    /// Epochs the schedule asked for.
    pub epochs_planned: usize,
    /// Test error of the last evaluated epoch.
    pub final_test_error: Option<f64>,
    /// Lowest test error over evaluated epochs.
    pub best_test_error: Option<f64>,
    /// 1-based epoch of the lowest test error.
    pub best_test_epoch: Option<usize>,
    /// Validation error of the last evaluated epoch.
    pub final_val_error: Option<f64>,
    /// Lowest validation error.
    pub best_val_error: Option<f64>,
    /// 1-based epoch of the lowest validation error.
    pub best_val_epoch: Option<usize>,
    /// Test error in the epoch with the lowest validation error.
    pub test_error_at_best_val: Option<f64>,
    /// Seconds spent training and evaluating, over all processes that worked on the run.
    pub wall_seconds: f64,
    /// Number of trainable parameters.
    pub parameters: usize,
}
