//! The whole summary: every grid point, the display order of models and learning rates, and
//! one comparison row per model.

use super::run::{same_lr, RunState, RunSummary};
use super::stats::Stats;
use crate::paper::{self, PaperModel};

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
    pub(super) fn add(&mut self, state: &RunState) {
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
        self.cell_stats(model, lr, |r| r.final_test_error)
    }

    /// Final validation error statistics of the finished runs of one model and learning rate.
    pub fn cell_val_stats(&self, model: &str, lr: f64) -> Option<Stats> {
        self.cell_stats(model, lr, |r| r.final_val_error)
    }

    /// Statistics of one error of the finished runs of one model and learning rate.
    fn cell_stats(
        &self,
        model: &str,
        lr: f64,
        error: fn(&RunSummary) -> Option<f64>,
    ) -> Option<Stats> {
        let values: Vec<f64> = self
            .cell(model, lr)
            .filter(|r| r.is_done())
            .filter_map(error)
            .collect();
        Stats::of(&values)
    }
}
