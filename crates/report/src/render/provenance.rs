//! The provenance section: which runs did not read the official data, the provenance lines
//! the caller gave, and the files written beside `report.md`.

use std::fmt::Write as _;

use allconv_vocab::Dataset;

use super::context::RenderContext;
use super::text::NOT_OFFICIAL_MARK;
use crate::summary::{DataCheck, Summary};

/// Runs not on the official data, provenance lines, and the list of report files.
pub(super) fn section(md: &mut String, summary: &Summary, context: &RenderContext<'_>) {
    let _ = writeln!(md, "## Provenance\n");
    let data_lines = not_official_lines(summary, context);
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
}

/// One list item per run folder not known to have read the official data, saying why.
fn not_official_lines(summary: &Summary, context: &RenderContext<'_>) -> Vec<String> {
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
    data_lines
}
