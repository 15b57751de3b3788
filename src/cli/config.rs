//! `allconv config`: the experiment a command line resolves to, printed as the YAML a run records
//! for it (the `config:` part of its `config.yaml`), or, with `--keys`, every configuration key
//! with its default and what it means (the table of docs/configuration.md, which a test keeps
//! equal to the configuration's keys).

use std::path::PathBuf;

use allconv_runs::outln;
use allconv_train::config::to_yaml_string;
use allconv_train::ExperimentConfig;
use anyhow::{bail, Context};
use serde_json::Value;

use super::config_flags::ConfigFlags;
use super::preset::Preset;

/// The page that describes every key; its table is read for the meanings `--keys` prints.
const CONFIGURATION_DOC: &str = include_str!("../../docs/configuration.md");

/// Flags of `allconv config`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (YAML) [default: the built-in defaults, as `allconv train` uses them].
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// A shipped experiment, by name (its file is configs/<name>.yaml).
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Configuration overrides, as `allconv train` and `allconv reproduce` take them.
    #[command(flatten)]
    overrides: ConfigFlags,
    /// Instead of an experiment: every key, its default and what it means.
    #[arg(long, conflicts_with_all = ["config", "preset"])]
    keys: bool,
}

/// Runs `allconv config`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let settings = args.overrides.settings();
    if args.keys {
        if let Some(first) = settings.first() {
            bail!(
                "--keys lists the defaults, which {} would not change: leave it out, or drop \
                 --keys to see the experiment it makes",
                first.written()
            );
        }
        for line in key_lines() {
            outln!("{line}");
        }
        return Ok(());
    }
    let experiment = resolve(
        args.config.or(args.preset.map(Preset::config_path)),
        &settings,
    )?;
    let text = to_yaml_string(&experiment).context("writing the configuration as YAML")?;
    outln!("{}", text.trim_end());
    Ok(())
}

/// The experiment of `config` (or the defaults) with `settings` applied and validated.
fn resolve(
    config: Option<PathBuf>,
    settings: &[allconv_train::Setting],
) -> anyhow::Result<ExperimentConfig> {
    let mut experiment = match &config {
        Some(path) => ExperimentConfig::load(path).with_context(|| {
            format!(
                "reading the experiment {} (run from the repository root for a preset)",
                path.display()
            )
        })?,
        None => ExperimentConfig::default(),
    };
    experiment
        .apply(settings)
        .context("applying the command-line flags to the experiment")?;
    Ok(experiment)
}

/// One line per configuration key: `key = default  # meaning`.
fn key_lines() -> Vec<String> {
    let defaults = serde_json::to_value(ExperimentConfig::default())
        .unwrap_or(Value::Object(Default::default()));
    let documented = documented_meanings();
    ExperimentConfig::keys()
        .into_iter()
        .map(|key| {
            let default = key
                .split('.')
                .try_fold(&defaults, |node, part| node.get(part))
                .map_or_else(|| "?".to_string(), flow);
            let meaning = documented
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("(not documented)", |(_, m)| m.as_str());
            format!("{key} = {default}  # {meaning}")
        })
        .collect()
}

/// `(key, meaning)` of every row of the key table in docs/configuration.md
/// (`| `key` | default | meaning |`), the meaning without its Markdown backticks.
fn documented_meanings() -> Vec<(String, String)> {
    CONFIGURATION_DOC
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| {
            let (key, rest) = rest.split_once('`')?;
            let cells: Vec<&str> = rest.split(" | ").collect();
            let meaning = cells.get(2)?.trim().trim_end_matches('|').trim();
            Some((key.to_string(), meaning.replace('`', "")))
        })
        .collect()
}

/// A value as YAML writes it in flow style, on one line: `null`, `350`, `gcn_zca`,
/// `[200, 250, 300]`, `{gaussian: {sigma: 0.01}}`.
fn flow(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once_with_its_documented_meaning() {
        let lines = key_lines();
        let listed: Vec<&str> = lines
            .iter()
            .map(|l| l.split(" = ").next().unwrap())
            .collect();
        assert_eq!(listed, ExperimentConfig::keys());
        for line in &lines {
            assert!(!line.contains("(not documented)"), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
        // Defaults and meanings by hand from docs/configuration.md's table.
        let line = |key: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .unwrap()
                .clone()
        };
        assert!(line("schedule.epochs").starts_with("schedule.epochs = 350  # epochs to train"));
        assert!(line("schedule.milestones").starts_with("schedule.milestones = [200, 250, 300]  #"));
        assert!(
            line("data.preprocessing").starts_with("data.preprocessing = gcn_zca  # scale (x/255)")
        );
        assert!(line("data.dir").starts_with("data.dir = null  #"));
        assert!(line("out.runs").starts_with("out.runs = runs  # root of the run folders"));
    }

    #[test]
    fn the_documented_defaults_are_the_code_s() {
        // The default column of docs/configuration.md, where it is one literal (`350`,
        // `[200, 250, 300]`), is what `--keys` prints from the code's defaults.
        let printed = key_lines();
        let mut compared = 0;
        for line in CONFIGURATION_DOC.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").collect();
            let key = cells[0].trim_start_matches("| ").trim_matches('`');
            let default = cells[1];
            if !(default.starts_with('`') && default.ends_with('`')) {
                continue; // "the 12 networks": words, not a value
            }
            let default = default.trim_matches('`');
            let wanted = format!("{key} = {default}  #");
            assert!(
                printed.iter().any(|l| l.starts_with(&wanted)),
                "docs/configuration.md says {key} defaults to {default}; the code's default is \
                 in {:?}",
                printed.iter().find(|l| l.starts_with(&format!("{key} = ")))
            );
            compared += 1;
        }
        // Every key but grid.models (described in words) has a literal default in the table.
        assert_eq!(compared, ExperimentConfig::keys().len() - 1);
    }
}
