//! One grid point: what the caller expects, where it stands, and the numbers the report shows
//! for it.

use std::path::PathBuf;

use allconv_runs::EpochMetrics;

/// A grid point the caller expects to exist (from the grid being run), so that a run that has
/// not started yet is shown as missing instead of silently absent.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPoint {
    /// Model name.
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Epochs the schedule plans, when known (shown for missing and partial runs).
    pub epochs: Option<u32>,
}

/// Where a grid point stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Trained to the end (`result.json` status `done`).
    Done,
    /// Stopped because the loss became non-finite or exploded; a result, not a failure.
    Diverged {
        /// The trainer's reason, if given.
        reason: Option<String>,
    },
    /// Ended with another status (shown as is, not used for the choice of LR).
    Ended {
        /// The status written by the trainer.
        status: String,
        /// The trainer's reason, if given.
        reason: Option<String>,
    },
    /// Some epochs finished, no `result.json` yet: still training, or interrupted (a rerun
    /// resumes it).
    Partial,
    /// No folder, or a folder without any finished epoch.
    Missing,
    /// A folder whose `metrics.csv` or `result.json` could not be read (corrupt or truncated).
    Unreadable {
        /// What is wrong with it (names the file, line and field).
        reason: String,
    },
}

/// Whether a run read the official CIFAR-10 files, as its `config.yaml` recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DataCheck {
    /// The recorded md5 sums are the official ones.
    Official,
    /// These files' recorded md5 sums differ from the official ones.
    NotOfficial(Vec<String>),
    /// No data checksums recorded (no readable `config.yaml`).
    #[default]
    Unknown,
}

/// One grid point with the numbers the report shows for it.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Model name (the paper's spelling when it is one of the twelve).
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// The run folder, if there is one.
    pub dir: Option<PathBuf>,
    /// Where the run stands.
    pub state: RunState,
    /// Rows in `metrics.csv`.
    pub epochs_done: u32,
    /// Epochs planned, when known (`result.json` or the grid).
    pub epochs_planned: Option<u32>,
    /// Test error (%) after the last finished epoch.
    pub final_test_error: Option<f64>,
    /// Validation error (%) after the last finished epoch.
    pub final_val_error: Option<f64>,
    /// Lowest test error (%) over the finished epochs and its epoch.
    pub best_test: Option<(f64, u32)>,
    /// Test error (%) at the epoch of the lowest validation error.
    pub test_error_at_best_val: Option<f64>,
    /// Parameter count from `result.json`.
    pub parameters: Option<u64>,
    /// Wall-clock seconds (`result.json`, else the sum of the epochs' seconds).
    pub wall_seconds: Option<f64>,
    /// Mean training throughput over the epochs, images per second.
    pub images_per_sec: Option<f64>,
    /// Per-epoch metrics (for the curves).
    pub metrics: Vec<EpochMetrics>,
    /// `config.yaml` of the run, verbatim.
    pub config_yaml: Option<String>,
    /// Whether the run read the official data.
    pub data: DataCheck,
    /// Whether a trainer holds the run's lock (it is being trained now).
    pub running: bool,
}

impl RunSummary {
    /// Whether the run counts for means and the choice of learning rate.
    pub fn is_done(&self) -> bool {
        self.state == RunState::Done
    }
}

/// A run folder that could not be read: where it is in the layout and why.
#[derive(Debug, Clone, PartialEq)]
pub struct UnreadableRun {
    /// Model name from the folder name.
    pub model: String,
    /// Learning rate from the folder name.
    pub lr: f64,
    /// Seed from the folder name.
    pub seed: u64,
    /// The folder.
    pub dir: PathBuf,
    /// The reading error (names the file, line and field).
    pub reason: String,
}

/// Learning rates are equal when they print the same (they come from folder names and JSON).
pub fn same_lr(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}
