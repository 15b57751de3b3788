//! `result.json`: how a run ended and its final and best errors; and where a run folder stands.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::RunDir;

/// How a run ended.
///
/// Written as a lower-case string; a status this version does not know is kept as
/// [`RunStatus::Other`] so a report can show it instead of refusing the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RunStatus {
    /// All planned epochs ran.
    Done,
    /// Stopped early: non-finite loss, or stuck at chance level. A result, not a failure.
    Diverged,
    /// Any other status string (not written by this version of the trainer).
    Other(String),
}

impl RunStatus {
    /// The status as written in `result.json`.
    pub fn as_str(&self) -> &str {
        match self {
            RunStatus::Done => "done",
            RunStatus::Diverged => "diverged",
            RunStatus::Other(s) => s,
        }
    }
}

impl From<String> for RunStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "done" => RunStatus::Done,
            "diverged" => RunStatus::Diverged,
            _ => RunStatus::Other(s),
        }
    }
}

impl From<RunStatus> for String {
    fn from(s: RunStatus) -> Self {
        s.as_str().to_string()
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The content of `result.json`, written when a run ends. Errors are in percent; `None` is
/// written as `null` where a value is not defined (no validation split, nothing evaluated) and
/// read as `None` when the key is absent. Unknown keys are accepted, so the trainer can add to
/// the file without breaking older readers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Model name (the trainer's canonical spelling).
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// How the run ended.
    pub status: RunStatus,
    /// Why the run diverged; `null` when done.
    #[serde(default)]
    pub reason: Option<String>,
    /// Epochs finished (rows in metrics.csv).
    pub epochs_run: usize,
    /// Epochs the schedule asked for.
    pub epochs_planned: usize,
    /// Test error of the last evaluated epoch.
    #[serde(default)]
    pub final_test_error: Option<f64>,
    /// Lowest test error over evaluated epochs.
    #[serde(default)]
    pub best_test_error: Option<f64>,
    /// 1-based epoch of the lowest test error.
    #[serde(default)]
    pub best_test_epoch: Option<usize>,
    /// Validation error of the last evaluated epoch.
    #[serde(default)]
    pub final_val_error: Option<f64>,
    /// Lowest validation error.
    #[serde(default)]
    pub best_val_error: Option<f64>,
    /// 1-based epoch of the lowest validation error.
    #[serde(default)]
    pub best_val_epoch: Option<usize>,
    /// Test error in the epoch with the lowest validation error.
    #[serde(default)]
    pub test_error_at_best_val: Option<f64>,
    /// Seconds spent training and evaluating, over all processes that worked on the run.
    pub wall_seconds: f64,
    /// Number of trainable parameters (weights and biases).
    pub parameters: usize,
}

impl RunResult {
    /// The one-line summary of a finished run, e.g. `all-cnn-c lr 0.05 seed 0: done, 350/350
    /// epochs, final test error 9.08%, best 8.90% (epoch 340), 9000 s`.
    pub fn summary(&self) -> String {
        let pct = |e: Option<f64>| {
            e.map(|e| format!("{e:.2}%"))
                .unwrap_or_else(|| "n/a".into())
        };
        format!(
            "{} lr {} seed {}: {}{}, {}/{} epochs, final test error {}, best {} (epoch {}), {:.0} s",
            self.model,
            self.lr,
            self.seed,
            self.status,
            self.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.epochs_run,
            self.epochs_planned,
            pct(self.final_test_error),
            pct(self.best_test_error),
            self.best_test_epoch
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
            self.wall_seconds,
        )
    }
}

/// Where a run folder stands, as far as its files tell.
#[derive(Debug, Clone, PartialEq)]
pub enum FolderState {
    /// `result.json` is there: the run ended (done or diverged) and is skipped by a rerun.
    Ended(Box<RunResult>),
    /// No (readable) `result.json`: the run has not started (`epochs_done` 0), is training, or
    /// was interrupted and resumes from its checkpoint when started again.
    Open {
        /// Data lines of `metrics.csv`.
        epochs_done: usize,
    },
}

impl RunDir {
    /// Reads `result.json` if the run has ended.
    pub fn result(&self) -> Result<Option<RunResult>> {
        let path = self.result_path();
        if !path.exists() {
            return Ok(None);
        }
        crate::files::read_json(&path).map(Some)
    }

    /// Writes `result.json` atomically.
    pub fn write_result(&self, result: &RunResult) -> Result<()> {
        crate::files::write_json(&self.result_path(), result)
    }

    /// Where the folder stands. A `result.json` that cannot be read counts as not ended: the
    /// trainer, which reads it strictly, names the problem when the run is started.
    pub fn state(&self) -> FolderState {
        match self.result() {
            Ok(Some(result)) => FolderState::Ended(Box::new(result)),
            _ => FolderState::Open {
                epochs_done: self.epochs_done(),
            },
        }
    }
}
