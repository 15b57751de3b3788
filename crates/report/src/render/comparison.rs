//! The first section of `report.md`: the paper's table beside ours, how to read it, and the
//! note on runs that did not read the official data.

use std::fmt::Write as _;

use allconv_vocab::Dataset;

use super::context::RenderContext;
use super::text::{optional_error, signed, stats, thousands, NOT_OFFICIAL_MARK};
use crate::paper;
use crate::summary::{DataCheck, ModelRow, Selection, Summary};

/// Whether a model's finished runs include one not known to have read the official data.
fn row_not_official(summary: &Summary, row: &ModelRow) -> bool {
    let key = paper::model_key(&row.model);
    summary
        .runs
        .iter()
        .any(|r| paper::model_key(&r.model) == key && r.is_done() && r.data != DataCheck::Official)
}

fn selection_cells(selection: Option<Selection>, paper_error: Option<f64>) -> [String; 3] {
    match selection {
        Some(s) => [
            stats(&s.test),
            paper_error
                .map(|p| signed(s.test.mean, p))
                .unwrap_or_else(|| "–".to_string()),
            format!("{}", s.lr),
        ],
        None => ["–".to_string(), "–".to_string(), "–".to_string()],
    }
}

fn counts_text(row: &ModelRow) -> String {
    let c = row.counts;
    let mut parts = Vec::new();
    for (n, what) in [
        (c.done, "done"),
        (c.diverged, "diverged"),
        (c.ended, "ended otherwise"),
        (c.partial, "partial"),
        (c.missing, "missing"),
        (c.unreadable, "unreadable"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        "not in this grid".to_string()
    } else {
        parts.join(", ")
    }
}

fn parameters_text(row: &ModelRow) -> String {
    match (row.paper, row.parameters) {
        (Some(p), Some(ours)) if ours != p.parameters => format!(
            "{} (ours {}: differs)",
            thousands(p.parameters),
            thousands(ours)
        ),
        (Some(p), _) => thousands(p.parameters),
        (None, Some(ours)) => thousands(ours),
        (None, None) => "–".to_string(),
    }
}

/// One row per model: the paper's error, ours with the learning rate chosen on test and on
/// validation, and how many of its runs are in each state.
pub(super) fn table(md: &mut String, summary: &Summary, context: &RenderContext<'_>) {
    let _ = writeln!(md, "## {}\n", context.experiment.heading());
    let _ = writeln!(
        md,
        "| Model | Parameters (exact) | Paper | Ours, LR chosen on test | Difference | LR | \
         Ours, LR chosen on validation | Difference | LR | Runs |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in &summary.rows {
        let paper_error = row.paper.map(|p| p.test_error);
        let [t, td, tl] = selection_cells(row.by_test, paper_error);
        let [v, vd, vl] = if summary.has_validation {
            selection_cells(row.by_val, paper_error)
        } else {
            ["n/a".to_string(), "–".to_string(), "–".to_string()]
        };
        let mark = if row_not_official(summary, row) {
            format!(" {NOT_OFFICIAL_MARK}")
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {}{mark} | {} | {} | {t} | {td} | {tl} | {v} | {vd} | {vl} | {} |",
            row.model,
            parameters_text(row),
            optional_error(paper_error),
            counts_text(row),
        );
    }
}

/// Where the paper's numbers come from and what ours mean.
pub(super) fn how_to_read(md: &mut String, summary: &Summary, context: &RenderContext<'_>) {
    let _ = writeln!(
        md,
        "\nPaper: {}.\n\n\
         How to read it: every error is a run's **final-epoch** error (100 × (1 − accuracy) in \
         the last row of its `metrics.csv`), never its best epoch. Only finished runs (status \
         `done`) count; diverged, partial and missing runs are listed in the tables below. With \
         several seeds the value is mean ± sample standard deviation (n − 1) over the finished \
         seeds. *LR chosen on test* is the paper's protocol: the learning rate with the lowest \
         mean final test error, which flatters the result. *LR chosen on validation* is the \
         honest one: the learning rate with the lowest mean final validation error (a split held \
         out from the training set), and its mean final test error.{}\n",
        context.experiment.source(),
        if summary.has_validation {
            ""
        } else {
            " These runs have no validation split, so that column is n/a."
        }
    );
}

/// The mark's footnote, when finished runs did not read the official files (or cannot tell).
pub(super) fn not_official_note(md: &mut String, summary: &Summary, context: &RenderContext<'_>) {
    let finished = |check: fn(&DataCheck) -> bool| {
        summary
            .runs
            .iter()
            .filter(|r| r.is_done() && check(&r.data))
            .count()
    };
    let not_official = finished(|d| matches!(d, DataCheck::NotOfficial(_)));
    let unknown = finished(|d| *d == DataCheck::Unknown);
    if not_official + unknown > 0 && context.experiment.dataset() == Dataset::Cifar100 {
        // No per-file md5 sums of CIFAR-100 are published: its runs are never marked official.
        let _ = writeln!(
            md,
            "{NOT_OFFICIAL_MARK} Not checked against the official CIFAR-100 files: no per-file \
             md5 sums of CIFAR-100 are published, so {not_official} finished run(s) cannot be \
             marked official (the release's tarball md5 is checked when it is fetched) and \
             {unknown} record no data checksums (see Provenance).\n"
        );
    } else if not_official + unknown > 0 {
        let _ = writeln!(
            md,
            "{NOT_OFFICIAL_MARK} Not the official CIFAR-10 data: {not_official} finished run(s) \
             read files whose md5 sums differ from the official ones and {unknown} record no \
             data checksums (see Provenance). Their numbers do not compare with the paper's.\n"
        );
    }
}
