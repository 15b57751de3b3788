//! `report.csv` (one row per grid point) and `table3.csv` (one row per model).

use std::fmt::Write as _;

use crate::paper;
use crate::summary::{RunState, Selection, Summary};

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

fn state_word(state: &RunState) -> String {
    match state {
        RunState::Done => "done".into(),
        RunState::Diverged { .. } => "diverged".into(),
        RunState::Ended { status, .. } => status.clone(),
        RunState::Partial => "partial".into(),
        RunState::Missing => "missing".into(),
        RunState::Unreadable { .. } => "unreadable".into(),
    }
}

/// Renders `report.csv`: one row per grid point, errors in percent (final epoch unless named).
pub fn runs_csv(summary: &Summary) -> String {
    let mut out = String::from(
        "model,lr,seed,status,epochs_done,epochs_planned,final_test_error,final_val_error,\
         best_test_error,best_test_epoch,test_error_at_best_val,parameters,wall_seconds,\
         images_per_sec,paper_test_error,lr_chosen_on_test,lr_chosen_on_val,folder\n",
    );
    for run in &summary.runs {
        let row = summary
            .rows
            .iter()
            .find(|r| paper::model_key(&r.model) == paper::model_key(&run.model));
        let chosen = |s: Option<Selection>| {
            s.is_some_and(|s| crate::summary::same_lr(s.lr, run.lr))
                .to_string()
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&run.model),
            run.lr,
            run.seed,
            state_word(&run.state),
            run.epochs_done,
            run.epochs_planned
                .map(|n| n.to_string())
                .unwrap_or_default(),
            num(run.final_test_error),
            num(run.final_val_error),
            num(run.best_test.map(|b| b.0)),
            run.best_test.map(|b| b.1.to_string()).unwrap_or_default(),
            num(run.test_error_at_best_val),
            run.parameters.map(|n| n.to_string()).unwrap_or_default(),
            num(run.wall_seconds),
            num(run.images_per_sec),
            num(row.and_then(|r| r.paper).map(|p| p.test_error)),
            chosen(row.and_then(|r| r.by_test)),
            chosen(row.and_then(|r| r.by_val)),
            csv_field(
                &run.dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
        );
    }
    out
}

/// Renders `table3.csv`: one row per model, the comparison of report.md's first table.
pub fn table3_csv(summary: &Summary) -> String {
    let mut out = String::from(
        "model,parameters,paper_parameters,paper_test_error,lr_chosen_on_test,test_error,\
         test_error_std,seeds,difference,lr_chosen_on_val,val_choice_test_error,\
         val_choice_test_error_std,val_choice_seeds,val_choice_difference,done,diverged,\
         partial,missing,ended,unreadable\n",
    );
    for row in &summary.rows {
        let paper_error = row.paper.map(|p| p.test_error);
        let selection = |s: Option<Selection>| match s {
            Some(s) => format!(
                "{},{},{},{},{}",
                s.lr,
                num(Some(s.test.mean)),
                num(s.test.std),
                s.test.n,
                num(paper_error.map(|p| s.test.mean - p)),
            ),
            None => ",,,,".to_string(),
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&row.model),
            row.parameters
                .or(row.paper.map(|p| p.parameters))
                .map(|n| n.to_string())
                .unwrap_or_default(),
            row.paper.map(|p| p.paper_parameters).unwrap_or_default(),
            num(paper_error),
            selection(row.by_test),
            selection(row.by_val),
            row.counts.done,
            row.counts.diverged,
            row.counts.partial,
            row.counts.missing,
            row.counts.ended,
            row.counts.unreadable,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\", y"), "\"say \"\"x\"\", y\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
