//! `report.md`.

use std::fmt::Write as _;
use std::path::Path;

use allconv_vocab::Dataset;

use super::context::RenderContext;
use super::text::{epochs, error, signed, stats, status_text, thousands, NOT_OFFICIAL_MARK};
use crate::paper;
use crate::summary::{DataCheck, ModelRow, RunState, RunSummary, Selection, Summary};

/// Whether a model's finished runs include one not known to have read the official data.
fn row_not_official(summary: &Summary, row: &ModelRow) -> bool {
    let key = paper::model_key(&row.model);
    summary
        .runs
        .iter()
        .any(|r| paper::model_key(&r.model) == key && r.is_done() && r.data != DataCheck::Official)
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

/// Renders `report.md`.
pub fn markdown(summary: &Summary, context: &RenderContext<'_>) -> String {
    let mut md = String::new();
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
            paper_error.map(error).unwrap_or_else(|| "–".to_string()),
            counts_text(row),
        );
    }
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

    let mut grid_table = |title: &str, on_validation: bool| {
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
    };
    grid_table("Every model and learning rate: final test error (%)", false);
    if summary.has_validation {
        grid_table(
            "Every model and learning rate: final validation error (%)",
            true,
        );
    }

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
    let opt = |v: Option<f64>| v.map(error).unwrap_or_else(|| "–".to_string());
    for run in &summary.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.model,
            run.lr,
            run.seed,
            status_text(run),
            epochs(run),
            opt(run.final_test_error),
            run.best_test
                .map(|(e, epoch)| format!("{} ({epoch})", error(e)))
                .unwrap_or_else(|| "–".to_string()),
            opt(run.final_val_error),
            opt(run.test_error_at_best_val),
            run.wall_seconds
                .map(|s| format!("{s:.0}"))
                .unwrap_or_else(|| "–".to_string()),
            run.images_per_sec
                .map(|s| format!("{s:.0}"))
                .unwrap_or_else(|| "–".to_string()),
            run.dir
                .as_ref()
                .map(|d| format!("`{}`", d.display()))
                .unwrap_or_else(|| "–".to_string()),
        );
    }
    let _ = writeln!(md);

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
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                run.model,
                run.lr,
                run.seed,
                status_text(run),
                epochs(run),
                opt(run.final_test_error),
                run.dir
                    .as_ref()
                    .map(|d| format!("`{}`", d.display()))
                    .unwrap_or_else(|| "–".to_string()),
            );
        }
        let _ = writeln!(md);
    }

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

    let _ = writeln!(
        md,
        "## Settings the paper leaves open, and the values used\n"
    );
    let config = summary.runs.iter().find_map(|r| {
        r.config_yaml
            .as_ref()
            .map(|c| (r.dir.as_deref().unwrap_or(Path::new("?")), c))
    });
    if context.settings.is_empty() {
        let _ = writeln!(md, "| Setting | Paper |");
        let _ = writeln!(md, "|---|---|");
        for setting in paper::SETTINGS {
            let _ = writeln!(md, "| {} | {} |", setting.name, setting.paper);
        }
        match config {
            Some((dir, text)) => {
                let _ = writeln!(
                    md,
                    "\nThe values used are in each run's `config.yaml`; the first one, `{}`, \
                     verbatim:\n\n```yaml\n{}\n```\n",
                    allconv_runs::RunDir::new(dir).config_path().display(),
                    text.trim_end()
                );
            }
            None => {
                let _ = writeln!(md, "\nNo run folder has a `config.yaml` yet.\n");
            }
        }
    } else {
        let _ = writeln!(md, "| Setting | Paper | Used (`config.yaml` keys) |");
        let _ = writeln!(md, "|---|---|---|");
        for setting in paper::SETTINGS {
            let used: Vec<String> = setting
                .keys
                .iter()
                .map(|key| {
                    let value = context
                        .settings
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("not recorded");
                    format!("`{key}` = {}", value.replace('|', "\\|"))
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                setting.name,
                setting.paper,
                used.join("<br>")
            );
        }
        let _ = writeln!(
            md,
            "\n<details><summary>Every configuration value of the runs</summary>\n\n\
             | Key | Value |\n|---|---|"
        );
        for (key, value) in context.settings {
            let _ = writeln!(md, "| `{key}` | {} |", value.replace('|', "\\|"));
        }
        let _ = writeln!(md, "\n</details>\n");
    }

    let _ = writeln!(md, "## Provenance\n");
    let cifar100 = context.experiment.dataset() == Dataset::Cifar100;
    let mut data_lines = Vec::new();
    for run in summary.runs.iter().filter(|r| r.dir.is_some()) {
        let dir = run.dir.as_ref().map(|d| d.display().to_string());
        let dir = dir.unwrap_or_default();
        match &run.data {
            DataCheck::Official => {}
            DataCheck::NotOfficial(_) if cifar100 => data_lines.push(format!(
                "- `{dir}`: CIFAR-100, whose files have no published md5 sums to compare with \
                 (their md5 sums are listed below)"
            )),
            DataCheck::NotOfficial(files) => data_lines.push(format!(
                "- `{dir}`: not the official data (md5 differs for {})",
                files.join(", ")
            )),
            DataCheck::Unknown => data_lines.push(format!(
                "- `{dir}`: not known to be the official data (no data checksums recorded)"
            )),
        }
    }
    if data_lines.is_empty() {
        let _ = writeln!(
            md,
            "Every run read the official CIFAR-10 files (their md5 sums are recorded).\n"
        );
    } else {
        let _ = writeln!(
            md,
            "{NOT_OFFICIAL_MARK} Runs not on the official {} data:\n",
            context.experiment.dataset().title()
        );
        for line in data_lines {
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md);
    }
    if context.provenance.is_empty() {
        let _ = writeln!(
            md,
            "Data checksums, git revision and device of each run are in its `config.yaml` \
             (`provenance`).\n"
        );
    } else {
        for (key, value) in context.provenance {
            let _ = writeln!(md, "- {key}: `{value}`");
        }
        let _ = writeln!(
            md,
            "\nEach run's own provenance (data checksums, git revision, device) is in its \
             `config.yaml`.\n"
        );
    }
    let _ = writeln!(
        md,
        "Files: `report.csv` (one row per grid point), `table3.csv` (one row per model), \
         `figures/`."
    );
    md
}
