//! The numbers of one run folder (or of a grid point without a readable one).

use allconv_runs::{EpochMetrics, RunRecord, RunStatus};

use super::run::{DataCheck, RunState, RunSummary};
use super::stats::Stats;
use crate::paper;

fn display_name(model: &str) -> String {
    paper::find(model)
        .map(|m| m.name.to_string())
        .unwrap_or_else(|| model.to_string())
}

pub(super) fn summarize_folder(folder: &RunRecord, planned: Option<u32>) -> RunSummary {
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
pub(super) fn empty_run(model: &str, lr: f64, seed: u64, planned: Option<u32>) -> RunSummary {
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
