//! The numbers of the report, computed from run folders: one [`RunSummary`] per grid point
//! (found or expected), statistics per model and learning rate, and the learning rate chosen per
//! model two ways.
//!
//! Definitions (also printed in report.md):
//! - a run's error is its **final-epoch** error (`100 * (1 - acc)` of the last evaluated row of
//!   `metrics.csv`), never the best epoch's;
//! - only finished runs (`result.json` with status `done`) enter means and the choice of LR;
//! - several seeds: mean and sample standard deviation (n - 1) over the finished seeds;
//! - LR chosen on the test set (as the paper): lowest mean final test error;
//! - LR chosen on the validation split: lowest mean final validation error; its mean final test
//!   error is reported.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::paper::{self, PaperModel};
use allconv_runs::{EpochMetrics, RunRecord, RunStatus};

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

/// Mean (and sample standard deviation with several values) of one number over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// How many values.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1), `None` for a single value.
    pub std: Option<f64>,
}

impl Stats {
    /// Statistics of a non-empty list; `None` for an empty one.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let sum_sq: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (sum_sq / (n - 1) as f64).sqrt()
        });
        Some(Stats { n, mean, std })
    }
}

/// A learning rate chosen for a model, with the test error it gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selection {
    /// The chosen learning rate.
    pub lr: f64,
    /// Final test error over the finished seeds at that learning rate.
    pub test: Stats,
    /// What the choice was made on (mean final test or validation error).
    pub criterion: f64,
}

/// One model's line of the comparison table.
#[derive(Debug, Clone)]
pub struct ModelRow {
    /// Model name.
    pub model: String,
    /// The paper's row, if the model is one of the twelve.
    pub paper: Option<&'static PaperModel>,
    /// Parameter count reported by our runs (first run that reports one).
    pub parameters: Option<u64>,
    /// LR chosen on the test set, as the paper did.
    pub by_test: Option<Selection>,
    /// LR chosen on the validation split.
    pub by_val: Option<Selection>,
    /// Grid points of this model in each state: done, diverged, other ended, partial, missing.
    pub counts: StateCounts,
}

/// How many grid points are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Finished.
    pub done: usize,
    /// Diverged.
    pub diverged: usize,
    /// Ended with another status.
    pub ended: usize,
    /// Partial (running, or interrupted: see [`RunSummary::running`]).
    pub partial: usize,
    /// Not started.
    pub missing: usize,
    /// A folder that could not be read.
    pub unreadable: usize,
}

impl StateCounts {
    fn add(&mut self, state: &RunState) {
        match state {
            RunState::Done => self.done += 1,
            RunState::Diverged { .. } => self.diverged += 1,
            RunState::Ended { .. } => self.ended += 1,
            RunState::Partial => self.partial += 1,
            RunState::Missing => self.missing += 1,
            RunState::Unreadable { .. } => self.unreadable += 1,
        }
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every grid point, found or expected, ordered by model (paper order first), LR
    /// (largest first), seed.
    pub runs: Vec<RunSummary>,
    /// Models in display order.
    pub models: Vec<String>,
    /// Learning rates in display order (largest first).
    pub lrs: Vec<f64>,
    /// One comparison line per model: the twelve of the paper always, then any other model.
    pub rows: Vec<ModelRow>,
    /// Whether any run has a validation split.
    pub has_validation: bool,
    /// Run folders that are not grid points: not in the grid expected, or (without a grid)
    /// holding neither `metrics.csv` nor `result.json`. Shown apart, never counted.
    pub outside_grid: Vec<RunSummary>,
}

impl Summary {
    /// The runs of one model and learning rate.
    pub fn cell<'a>(&'a self, model: &'a str, lr: f64) -> impl Iterator<Item = &'a RunSummary> {
        let key = paper::model_key(model);
        self.runs
            .iter()
            .filter(move |r| paper::model_key(&r.model) == key && same_lr(r.lr, lr))
    }

    /// Final test error statistics of the finished runs of one model and learning rate.
    pub fn cell_test_stats(&self, model: &str, lr: f64) -> Option<Stats> {
        let values: Vec<f64> = self
            .cell(model, lr)
            .filter(|r| r.is_done())
            .filter_map(|r| r.final_test_error)
            .collect();
        Stats::of(&values)
    }

    /// Final validation error statistics of the finished runs of one model and learning rate.
    pub fn cell_val_stats(&self, model: &str, lr: f64) -> Option<Stats> {
        let values: Vec<f64> = self
            .cell(model, lr)
            .filter(|r| r.is_done())
            .filter_map(|r| r.final_val_error)
            .collect();
        Stats::of(&values)
    }
}

/// Learning rates are equal when they print the same (they come from folder names and JSON).
pub fn same_lr(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn display_name(model: &str) -> String {
    paper::find(model)
        .map(|m| m.name.to_string())
        .unwrap_or_else(|| model.to_string())
}

fn model_order(model: &str) -> (usize, String) {
    let key = paper::model_key(model);
    let index = paper::TABLE3
        .iter()
        .position(|m| paper::model_key(m.name) == key)
        .unwrap_or(paper::TABLE3.len());
    (index, key)
}

fn summarize_folder(folder: &RunRecord, planned: Option<u32>) -> RunSummary {
    let result = folder.result.as_ref();
    let state = match result.map(|r| &r.status) {
        Some(RunStatus::Done) => RunState::Done,
        Some(RunStatus::Diverged) => RunState::Diverged {
            reason: result.and_then(|r| r.reason.clone()),
        },
        Some(RunStatus::Other(status)) => RunState::Ended {
            status: status.clone(),
            reason: result.and_then(|r| r.reason.clone()),
        },
        // A trainer in its first epoch has no row yet, but the run has started.
        None if folder.metrics.is_empty() && !folder.trainer_running => RunState::Missing,
        None => RunState::Partial,
    };
    let best_test = folder
        .metrics
        .iter()
        .filter_map(|m| {
            m.test_error()
                .filter(|e| e.is_finite())
                .map(|e| (e, m.epoch as u32))
        })
        .fold(None, |best: Option<(f64, u32)>, (e, epoch)| match best {
            Some((b, _)) if b <= e => best,
            _ => Some((e, epoch)),
        });
    let best_val_row = folder
        .metrics
        .iter()
        .filter(|m| m.val_error().is_some_and(f64::is_finite))
        .fold(None, |best: Option<&EpochMetrics>, m| match best {
            Some(b) if b.val_error() <= m.val_error() => best,
            _ => Some(m),
        });
    let seconds: Vec<f64> = folder.metrics.iter().map(|m| m.seconds).collect();
    let throughput: Vec<f64> = folder.metrics.iter().map(|m| m.images_per_sec).collect();
    RunSummary {
        model: display_name(&folder.model),
        lr: folder.lr,
        seed: folder.seed,
        dir: Some(folder.dir.clone()),
        state,
        epochs_done: folder.metrics.len() as u32,
        epochs_planned: result.map(|r| r.epochs_planned as u32).or(planned),
        // The last evaluated epoch (the trainer may evaluate every N epochs; it always evaluates
        // the last one of a finished run).
        final_test_error: folder
            .metrics
            .iter()
            .rev()
            .find_map(EpochMetrics::test_error),
        final_val_error: folder
            .metrics
            .iter()
            .rev()
            .find_map(EpochMetrics::val_error),
        best_test,
        test_error_at_best_val: best_val_row.and_then(EpochMetrics::test_error),
        parameters: result.map(|r| r.parameters as u64),
        wall_seconds: result
            .map(|r| r.wall_seconds)
            .or_else(|| (!seconds.is_empty()).then(|| seconds.iter().sum())),
        images_per_sec: Stats::of(&throughput).map(|s| s.mean),
        metrics: folder.metrics.clone(),
        config_yaml: folder.config_yaml.clone(),
        data: DataCheck::Unknown,
        running: folder.trainer_running,
    }
}

/// A grid point with no numbers: not started, or a folder that could not be read.
fn empty_run(model: &str, lr: f64, seed: u64, planned: Option<u32>) -> RunSummary {
    RunSummary {
        model: display_name(model),
        lr,
        seed,
        dir: None,
        state: RunState::Missing,
        epochs_done: 0,
        epochs_planned: planned,
        final_test_error: None,
        final_val_error: None,
        best_test: None,
        test_error_at_best_val: None,
        parameters: None,
        wall_seconds: None,
        images_per_sec: None,
        metrics: Vec::new(),
        config_yaml: None,
        data: DataCheck::Unknown,
        running: false,
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

fn select(summary: &Summary, model: &str, on_validation: bool) -> Option<Selection> {
    let mut best: Option<Selection> = None;
    for &lr in &summary.lrs {
        let criterion = if on_validation {
            summary.cell_val_stats(model, lr)
        } else {
            summary.cell_test_stats(model, lr)
        };
        let (Some(criterion), Some(test)) = (criterion, summary.cell_test_stats(model, lr)) else {
            continue;
        };
        if !criterion.mean.is_finite() {
            continue;
        }
        // Ties keep the larger learning rate (the first in display order).
        if best.is_none_or(|b| criterion.mean < b.criterion) {
            best = Some(Selection {
                lr,
                test,
                criterion: criterion.mean,
            });
        }
    }
    best
}

/// Computes the report's numbers from the run folders found and the grid points expected.
/// Every expected point appears (as missing when it has no folder); see [`summarize_all`] for
/// the folders that are not grid points.
pub fn summarize(folders: &[RunRecord], expected: &[GridPoint]) -> Summary {
    summarize_all(folders, &[], expected)
}

/// [`summarize`], with the folders that could not be read: a grid point whose folder is
/// unreadable is shown as such (never as missing, never in the means). A folder is a grid point
/// when it is in `expected`, or, with no grid expected, when it holds `metrics.csv` or
/// `result.json`; every other folder goes to [`Summary::outside_grid`].
pub fn summarize_all(
    folders: &[RunRecord],
    unreadable: &[UnreadableRun],
    expected: &[GridPoint],
) -> Summary {
    let mut by_point: BTreeMap<(String, String, u64), RunSummary> = BTreeMap::new();
    let mut outside_grid = Vec::new();
    let point_key =
        |model: &str, lr: f64, seed: u64| (paper::model_key(model), format!("{lr}"), seed);
    let find_point = |model: &str, lr: f64, seed: u64| {
        expected.iter().find(|p| {
            paper::model_key(&p.model) == paper::model_key(model)
                && same_lr(p.lr, lr)
                && p.seed == seed
        })
    };
    for folder in folders {
        let point = find_point(&folder.model, folder.lr, folder.seed);
        let run = summarize_folder(folder, point.and_then(|p| p.epochs));
        let in_grid = if expected.is_empty() {
            !folder.metrics.is_empty() || folder.result.is_some()
        } else {
            point.is_some()
        };
        if in_grid {
            by_point.insert(point_key(&folder.model, folder.lr, folder.seed), run);
        } else {
            outside_grid.push(run);
        }
    }
    for bad in unreadable {
        let point = find_point(&bad.model, bad.lr, bad.seed);
        let mut run = empty_run(&bad.model, bad.lr, bad.seed, point.and_then(|p| p.epochs));
        run.dir = Some(bad.dir.clone());
        run.state = RunState::Unreadable {
            reason: bad.reason.clone(),
        };
        if expected.is_empty() || point.is_some() {
            by_point.insert(point_key(&bad.model, bad.lr, bad.seed), run);
        } else {
            outside_grid.push(run);
        }
    }
    for point in expected {
        by_point
            .entry(point_key(&point.model, point.lr, point.seed))
            .or_insert_with(|| empty_run(&point.model, point.lr, point.seed, point.epochs));
    }
    let mut runs: Vec<RunSummary> = by_point.into_values().collect();
    runs.sort_by(|a, b| {
        model_order(&a.model)
            .cmp(&model_order(&b.model))
            .then(b.lr.total_cmp(&a.lr))
            .then(a.seed.cmp(&b.seed))
    });

    let mut models: Vec<String> = paper::TABLE3.iter().map(|m| m.name.to_string()).collect();
    for run in &runs {
        if !models
            .iter()
            .any(|m| paper::model_key(m) == paper::model_key(&run.model))
        {
            models.push(run.model.clone());
        }
    }
    let mut lrs: Vec<f64> = Vec::new();
    for run in &runs {
        if !lrs.iter().any(|&l| same_lr(l, run.lr)) {
            lrs.push(run.lr);
        }
    }
    lrs.sort_by(|a, b| b.total_cmp(a));
    let has_validation = runs.iter().any(|r| r.final_val_error.is_some());

    let mut summary = Summary {
        runs,
        models,
        lrs,
        rows: Vec::new(),
        has_validation,
        outside_grid,
    };
    let rows = summary
        .models
        .iter()
        .map(|model| {
            let mut counts = StateCounts::default();
            let key = paper::model_key(model);
            let mut parameters = None;
            for run in summary
                .runs
                .iter()
                .filter(|r| paper::model_key(&r.model) == key)
            {
                counts.add(&run.state);
                parameters = parameters.or(run.parameters);
            }
            ModelRow {
                model: model.clone(),
                paper: paper::find(model),
                parameters,
                by_test: select(&summary, model, false),
                by_val: select(&summary, model, true),
                counts,
            }
        })
        .collect();
    summary.rows = rows;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_three_values() {
        // mean (10 + 12 + 14) / 3 = 12; sample variance (4 + 0 + 4) / 2 = 4, std 2.
        let s = Stats::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 12.0).abs() < 1e-12);
        assert!((s.std.unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(Stats::of(&[5.0]).unwrap().std, None);
        assert_eq!(Stats::of(&[]), None);
    }
}
