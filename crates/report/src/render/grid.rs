//! The tables of every model and learning rate (final test error, and final validation error
//! when the runs have a validation split).

use std::fmt::Write as _;

use super::text::{error, stats, status_text};
use crate::summary::{ModelRow, RunState, RunSummary, Summary};

/// The test-error table, then the validation-error one when there is a validation split.
pub(super) fn tables(md: &mut String, summary: &Summary) {
    table(
        md,
        summary,
        "Every model and learning rate: final test error (%)",
        false,
    );
    if summary.has_validation {
        table(
            md,
            summary,
            "Every model and learning rate: final validation error (%)",
            true,
        );
    }
}

/// One row per model in the grid, one column per learning rate.
fn table(md: &mut String, summary: &Summary, title: &str, on_validation: bool) {
    let _ = writeln!(md, "## {title}\n");
    let _ = write!(md, "| Model |");
    for lr in &summary.lrs {
        let _ = write!(md, " LR {lr} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in &summary.lrs {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for row in summary.rows.iter().filter(|r| {
        r.counts.done
            + r.counts.diverged
            + r.counts.ended
            + r.counts.partial
            + r.counts.missing
            + r.counts.unreadable
            > 0
    }) {
        let _ = write!(md, "| {} |", row.model);
        for &lr in &summary.lrs {
            let _ = write!(md, " {} |", cell_text(summary, row, lr, on_validation));
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\nBold: the learning rate chosen for the model. `–`: not in this grid.\n"
    );
}

fn cell_text(summary: &Summary, row: &ModelRow, lr: f64, on_validation: bool) -> String {
    let runs: Vec<&RunSummary> = summary.cell(&row.model, lr).collect();
    if runs.is_empty() {
        return "–".to_string();
    }
    let mut parts = Vec::new();
    let finished = if on_validation {
        summary.cell_val_stats(&row.model, lr)
    } else {
        summary.cell_test_stats(&row.model, lr)
    };
    if let Some(s) = finished {
        let chosen = if on_validation {
            row.by_val
        } else {
            row.by_test
        };
        let text = stats(&s);
        if chosen.is_some_and(|c| crate::summary::same_lr(c.lr, lr)) {
            parts.push(format!("**{text}**"));
        } else {
            parts.push(text);
        }
    }
    let several = runs.len() > 1;
    for run in runs.iter().filter(|r| !r.is_done()) {
        let value = if on_validation {
            run.final_val_error
        } else {
            run.final_test_error
        };
        let mut text = status_text(run);
        if let (RunState::Partial | RunState::Diverged { .. } | RunState::Ended { .. }, Some(v)) =
            (&run.state, value)
        {
            if v.is_finite() {
                let _ = write!(text, ": {}", error(v));
            }
        }
        if several {
            text = format!("seed {}: {text}", run.seed);
        }
        parts.push(text);
    }
    parts.join("; ")
}
