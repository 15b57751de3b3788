//! The summary put together from the run folders found, the folders that could not be read and
//! the grid points expected.

use std::collections::BTreeMap;

use allconv_runs::RunRecord;

use super::choice::select;
use super::folder::{empty_run, summarize_folder};
use super::run::{same_lr, GridPoint, RunState, RunSummary, UnreadableRun};
use super::table::{ModelRow, StateCounts, Summary};
use crate::paper;

fn model_order(model: &str) -> (usize, String) {
    let key = paper::model_key(model);
    let index = paper::TABLE3
        .iter()
        .position(|m| paper::model_key(m.name) == key)
        .unwrap_or(paper::TABLE3.len());
    (index, key)
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
    let (runs, outside_grid) = place_runs(folders, unreadable, expected);
    let mut summary = Summary {
        models: models_in_order(&runs),
        lrs: lrs_in_order(&runs),
        has_validation: runs.iter().any(|r| r.final_val_error.is_some()),
        runs,
        rows: Vec::new(),
        outside_grid,
    };
    summary.rows = summary
        .models
        .iter()
        .map(|model| model_row(&summary, model))
        .collect();
    summary
}

/// The grid points, one run each, in display order (model, learning rate largest first, seed),
/// and the run folders that are not grid points.
fn place_runs(
    folders: &[RunRecord],
    unreadable: &[UnreadableRun],
    expected: &[GridPoint],
) -> (Vec<RunSummary>, Vec<RunSummary>) {
    let mut by_point: BTreeMap<(String, String, u64), RunSummary> = BTreeMap::new();
    let mut outside_grid = Vec::new();
    for folder in folders {
        let point = find_point(expected, &folder.model, folder.lr, folder.seed);
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
        let point = find_point(expected, &bad.model, bad.lr, bad.seed);
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
    (runs, outside_grid)
}

/// What makes two runs the same grid point: the model (any spelling), the learning rate as it
/// prints, the seed.
fn point_key(model: &str, lr: f64, seed: u64) -> (String, String, u64) {
    (paper::model_key(model), format!("{lr}"), seed)
}

/// The expected grid point of a run, if it is one.
fn find_point<'a>(
    expected: &'a [GridPoint],
    model: &str,
    lr: f64,
    seed: u64,
) -> Option<&'a GridPoint> {
    expected.iter().find(|p| {
        paper::model_key(&p.model) == paper::model_key(model) && same_lr(p.lr, lr) && p.seed == seed
    })
}

/// The paper's twelve models in its order, then any other model of the runs.
fn models_in_order(runs: &[RunSummary]) -> Vec<String> {
    let mut models: Vec<String> = paper::TABLE3.iter().map(|m| m.name.to_string()).collect();
    for run in runs {
        if !models
            .iter()
            .any(|m| paper::model_key(m) == paper::model_key(&run.model))
        {
            models.push(run.model.clone());
        }
    }
    models
}

/// The learning rates of the runs, largest first.
fn lrs_in_order(runs: &[RunSummary]) -> Vec<f64> {
    let mut lrs: Vec<f64> = Vec::new();
    for run in runs {
        if !lrs.iter().any(|&l| same_lr(l, run.lr)) {
            lrs.push(run.lr);
        }
    }
    lrs.sort_by(|a, b| b.total_cmp(a));
    lrs
}

/// A model's comparison row: its runs counted by state, its parameter count and the learning
/// rate chosen both ways.
fn model_row(summary: &Summary, model: &str) -> ModelRow {
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
        model: model.to_string(),
        paper: paper::find(model),
        parameters,
        by_test: select(summary, model, false),
        by_val: select(summary, model, true),
        counts,
    }
}
