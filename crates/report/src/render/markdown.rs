//! `report.md`: its sections in order, each written by the module named for it.

use std::fmt::Write as _;

use super::context::RenderContext;
use super::{comparison, grid, provenance, runs, settings};
use crate::summary::{RunState, Summary};

/// Renders `report.md`.
pub fn markdown(summary: &Summary, context: &RenderContext<'_>) -> String {
    let mut md = String::new();
    heading(&mut md, summary, context);
    comparison::table(&mut md, summary, context);
    comparison::how_to_read(&mut md, summary, context);
    comparison::not_official_note(&mut md, summary, context);
    runs::unreadable(&mut md, summary);
    grid::tables(&mut md, summary);
    runs::every_run(&mut md, summary);
    runs::outside_grid(&mut md, summary);
    curves(&mut md, context);
    settings::section(&mut md, summary, context);
    provenance::section(&mut md, summary, context);
    md
}

/// The marker that makes the folder ours, the title, and how many grid points are in each
/// state.
fn heading(md: &mut String, summary: &Summary, context: &RenderContext<'_>) {
    let total = summary.runs.len();
    let count = |f: fn(&RunState) -> bool| summary.runs.iter().filter(|r| f(&r.state)).count();
    let _ = writeln!(md, "{}", crate::MARKER);
    let _ = writeln!(
        md,
        "# All Convolutional Net on {}: reproduction report\n",
        context.experiment.data()
    );
    let _ = writeln!(
        md,
        "Generated from the run folders under `{}`: {total} grid points, {} done, {} diverged, \
         {} partial, {} missing, {} ended otherwise, {} unreadable.\n",
        context.runs_root,
        count(|s| *s == RunState::Done),
        count(|s| matches!(s, RunState::Diverged { .. })),
        count(|s| *s == RunState::Partial),
        count(|s| *s == RunState::Missing),
        count(|s| matches!(s, RunState::Ended { .. })),
        count(|s| matches!(s, RunState::Unreadable { .. })),
    );
}

/// A link to each model's figure, and the figure itself.
fn curves(md: &mut String, context: &RenderContext<'_>) {
    let _ = writeln!(md, "## Curves\n");
    if context.figures.is_empty() {
        let _ = writeln!(md, "No run has a finished epoch yet.\n");
    }
    for (model, path) in context.figures {
        let _ = writeln!(
            md,
            "- {model}: test accuracy and training loss per epoch, one line per learning rate \
             (and seed): [{path}]({path})\n\n  ![{model}]({path})\n"
        );
    }
}
