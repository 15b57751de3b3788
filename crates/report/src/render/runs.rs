//! The sections listing runs one by one: the folders that could not be read, every grid point,
//! and the run folders outside the grid.

use std::fmt::Write as _;

use super::text::{epochs, error, folder_cell, optional_error, status_text};
use crate::summary::{RunState, RunSummary, Summary};

/// The folders whose files could not be read, with the reason (only when there are some).
pub(super) fn unreadable(md: &mut String, summary: &Summary) {
    if summary
        .runs
        .iter()
        .chain(&summary.outside_grid)
        .any(|r| matches!(r.state, RunState::Unreadable { .. }))
    {
        let _ = writeln!(md, "## Runs that could not be read\n");
        let _ = writeln!(
            md,
            "These folders are left out of every number above; fix or remove the file named \
             and run the report again.\n"
        );
        for run in summary.runs.iter().chain(&summary.outside_grid) {
            if let RunState::Unreadable { reason } = &run.state {
                let dir = run
                    .dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                let _ = writeln!(md, "- `{dir}`: {reason}");
            }
        }
        let _ = writeln!(md);
    }
}

/// One row per grid point with all its numbers.
pub(super) fn every_run(md: &mut String, summary: &Summary) {
    let _ = writeln!(md, "## Every run\n");
    let _ = writeln!(
        md,
        "| Model | LR | Seed | Status | Epochs | Final test error | Best test error (epoch) | \
         Final val error | Test error at best val | Wall time (s) | Images/s | Folder |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for run in &summary.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            leading_cells(run),
            run.best_test
                .map(|(e, epoch)| format!("{} ({epoch})", error(e)))
                .unwrap_or_else(|| "–".to_string()),
            optional_error(run.final_val_error),
            optional_error(run.test_error_at_best_val),
            run.wall_seconds
                .map(|s| format!("{s:.0}"))
                .unwrap_or_else(|| "–".to_string()),
            run.images_per_sec
                .map(|s| format!("{s:.0}"))
                .unwrap_or_else(|| "–".to_string()),
            folder_cell(run),
        );
    }
    let _ = writeln!(md);
}

/// The run folders that are not grid points (only when there are some).
pub(super) fn outside_grid(md: &mut String, summary: &Summary) {
    if !summary.outside_grid.is_empty() {
        let _ = writeln!(md, "## Runs outside the grid\n");
        let _ = writeln!(
            md,
            "Run folders under this root that are not grid points (not in its grid.json, or \
             holding only a `config.yaml`): shown here, counted nowhere above.\n"
        );
        let _ = writeln!(
            md,
            "| Model | LR | Seed | Status | Epochs | Final test error | Folder |"
        );
        let _ = writeln!(md, "|---|---:|---:|---|---:|---:|---|");
        for run in &summary.outside_grid {
            let _ = writeln!(md, "| {} | {} |", leading_cells(run), folder_cell(run),);
        }
        let _ = writeln!(md);
    }
}

/// The cells both run tables start with: model, learning rate, seed, status, epochs and final
/// test error.
fn leading_cells(run: &RunSummary) -> String {
    format!(
        "{} | {} | {} | {} | {} | {}",
        run.model,
        run.lr,
        run.seed,
        status_text(run),
        epochs(run),
        optional_error(run.final_test_error)
    )
}
