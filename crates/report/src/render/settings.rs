//! The settings the paper leaves open, beside the values the runs used.

use std::fmt::Write as _;
use std::path::Path;

use super::context::RenderContext;
use crate::paper;
use crate::summary::Summary;

/// The table of open settings: with the values used when the caller read them from the runs'
/// `config.yaml`, else with the first `config.yaml` verbatim.
pub(super) fn section(md: &mut String, summary: &Summary, context: &RenderContext<'_>) {
    let _ = writeln!(
        md,
        "## Settings the paper leaves open, and the values used\n"
    );
    if context.settings.is_empty() {
        with_first_config(md, summary);
    } else {
        with_values_used(md, context);
    }
}

/// The paper's column only, then the first run's `config.yaml` verbatim (the caller read no
/// values).
fn with_first_config(md: &mut String, summary: &Summary) {
    let config = summary.runs.iter().find_map(|r| {
        r.config_yaml
            .as_ref()
            .map(|c| (r.dir.as_deref().unwrap_or(Path::new("?")), c))
    });
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
}

/// The paper's column beside the `config.yaml` keys and values the runs used, then every
/// configuration value in a folded list.
fn with_values_used(md: &mut String, context: &RenderContext<'_>) {
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
