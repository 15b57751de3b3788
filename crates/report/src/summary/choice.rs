//! The learning rate chosen for a model: the lowest mean final test error (the paper's
//! protocol) or the lowest mean final validation error.

use super::table::{Selection, Summary};

pub(super) fn select(summary: &Summary, model: &str, on_validation: bool) -> Option<Selection> {
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
