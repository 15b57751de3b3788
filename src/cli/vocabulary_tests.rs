//! The command line speaks one vocabulary (docs/training.md, "One name per thing"): the whole
//! command tree is walked, and every visible flag of every subcommand is checked for a second
//! name of something that has one, for a configuration key's flag under another name, and for a
//! choice whose values `--help` does not list. The command lines that Slurm scripts emitted by
//! the previous release run still parse.

use clap::{Arg, Command, CommandFactory};

/// Names that would be a second name of a word the command line already has: (synonym, the
/// name used everywhere).
const SYNONYMS: &[(&str, &str)] = &[
    ("dir", "data-dir"),
    ("data", "data-dir"),
    ("data-folder", "data-dir"),
    ("batch", "batch-size"),
    ("bs", "batch-size"),
    ("tf32", "precision"),
    ("fp32", "precision"),
    ("to", "out"),
    ("output", "out"),
    ("out-dir", "out"),
    ("record", "runs"),
    ("runs-dir", "runs"),
    ("root", "runs"),
    ("names", "models"),
    ("model-list", "models"),
    ("gpu", "device"),
    ("cuda", "device"),
    ("engine", "conv-engine"),
    ("methods", "method"),
];

/// Flags recognised by the configuration key their help starts with, and the one name of each:
/// the runs root is `--runs` wherever it is set, never `--out` (an output folder).
const KEYS: &[(&str, &str)] = &[
    ("out.runs", "runs"),
    ("data.dir", "data-dir"),
    ("training.device", "device"),
    ("training.tf32", "precision"),
    ("data.preprocessing", "preprocessing"),
    ("schedule.epochs", "epochs"),
];

/// Flags whose value is one of a closed set: `--help` must list the choices.
const CHOICES: &[&str] = &[
    "device",
    "dataset",
    "precision",
    "preprocessing",
    "method",
    "conv-engine",
    "deterministic",
    "preset",
    "model",
    "models",
];

/// Every command of the tree with its path (`allconv data fetch`), the root included.
fn commands() -> Vec<(String, Command)> {
    fn walk(path: &str, cmd: &Command, out: &mut Vec<(String, Command)>) {
        out.push((path.to_string(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            walk(&format!("{path} {}", sub.get_name()), sub, out);
        }
    }
    let mut out = Vec::new();
    let mut root = crate::Cli::command();
    root.build();
    walk("allconv", &root, &mut out);
    out
}

/// The visible arguments of `cmd` (clap's own --help and --version left out).
fn visible(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set() && !["help", "version"].contains(&a.get_id().as_str()))
}

/// Every name a user may write for `arg`: its long name and visible aliases, or a positional's
/// value name.
fn names(arg: &Arg) -> Vec<String> {
    let mut names: Vec<String> = arg.get_long().into_iter().map(str::to_string).collect();
    names.extend(
        arg.get_visible_aliases()
            .unwrap_or_default()
            .into_iter()
            .map(str::to_string),
    );
    if arg.is_positional() {
        names.push(arg.get_id().as_str().replace('_', "-"));
    }
    names
}

#[test]
fn no_flag_is_a_second_name_for_a_word_of_the_vocabulary() {
    let mut wrong = Vec::new();
    let mut flags = 0;
    for (path, cmd) in commands() {
        for arg in visible(&cmd) {
            flags += 1;
            for name in names(arg) {
                if let Some((_, one)) = SYNONYMS.iter().find(|(s, _)| *s == name) {
                    wrong.push(format!(
                        "`{path} --{name}`: the command line calls it --{one}"
                    ));
                }
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            for (key, one) in KEYS {
                if help.starts_with(key) && arg.get_long() != Some(one) {
                    wrong.push(format!(
                        "`{path} --{}` sets {key}, which every command sets with --{one}",
                        arg.get_long().unwrap_or("?")
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The walk reached the flags of every command (a hand count of this release's visible
    // flags would go stale; dozens is what the ten commands have).
    assert!(flags > 60, "{flags} flags");
}

#[test]
fn every_choice_lists_its_values_in_help() {
    let mut unlisted = Vec::new();
    let mut choices = 0;
    for (path, cmd) in commands() {
        for arg in visible(&cmd) {
            let Some(long) = arg.get_long() else { continue };
            if !CHOICES.contains(&long) {
                continue;
            }
            choices += 1;
            if arg.get_possible_values().is_empty() || arg.is_hide_possible_values_set() {
                unlisted.push(format!("`{path} --{long}` does not list its values"));
            }
        }
    }
    assert!(unlisted.is_empty(), "{}", unlisted.join("\n"));
    assert!(choices >= 20, "{choices} choice flags");
    // And --help shows them, e.g. the devices of `allconv train`.
    let mut root = crate::Cli::command();
    let help = root
        .find_subcommand_mut("train")
        .unwrap()
        .render_long_help()
        .to_string();
    for value in ["cuda:N", "fp32", "tf32", "all-cnn-c"] {
        assert!(help.contains(value), "train --help lacks {value}:\n{help}");
    }
    assert!(
        !help.contains("Boxed"),
        "a developers' note in --help:\n{help}"
    );
}

#[test]
fn model_lists_are_one_parser_everywhere() {
    let models: Vec<String> = allconv_models::MODEL_NAMES
        .iter()
        .map(|m| m.to_string())
        .collect();
    let mut seen = 0;
    for (path, cmd) in commands() {
        for arg in visible(&cmd) {
            let Some(long @ ("model" | "models")) = arg.get_long() else {
                continue;
            };
            seen += 1;
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            assert_eq!(values, models, "{path} --{long}");
            if long == "models" {
                assert_eq!(arg.get_value_delimiter(), Some(','), "{path} --models");
            }
        }
    }
    // train, evaluate, visualize (--model); reproduce, bench, check, models (--models).
    assert_eq!(seen, 7);
    // Any letter case, comma-separated, kept as written (errors quote it).
    for args in [
        &["allconv", "models", "--models", "ALL-CNN-C,Model-A"][..],
        &["allconv", "bench", "--models", "ALL-CNN-C,Model-A"],
        &["allconv", "check", "--models", "ALL-CNN-C,Model-A"],
        &["allconv", "reproduce", "--models", "ALL-CNN-C,Model-A"],
    ] {
        let matches = crate::Cli::command().try_get_matches_from(args).unwrap();
        let (_, sub) = matches.subcommand().unwrap();
        let got: Vec<&String> = sub.get_many::<String>("models").unwrap().collect();
        assert_eq!(got, ["ALL-CNN-C", "Model-A"], "{args:?}");
    }
}

#[test]
fn the_commands_of_slurm_scripts_emitted_by_the_previous_release_still_parse() {
    // The array task and the report job of `allconv reproduce --emit-slurm` (both releases), and
    // a task with the runs root given the old way.
    for args in [
        &[
            "allconv", "train", "--lines", "--grid", "g.json", "--index", "3",
        ][..],
        &["allconv", "train", "--grid", "g.json", "--index", "3"],
        &[
            "allconv", "train", "--grid", "g.json", "--index", "3", "--out", "runs/x",
        ],
        &["allconv", "report", "--runs", "runs/x"],
    ] {
        crate::Cli::command()
            .try_get_matches_from(args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

#[test]
fn help_is_for_users_and_names_both_data_sets() {
    let mut wrong = Vec::new();
    for (path, cmd) in commands() {
        let mut texts: Vec<String> = cmd
            .get_about()
            .into_iter()
            .chain(cmd.get_long_about())
            .map(|t| t.to_string())
            .collect();
        texts.extend(visible(&cmd).filter_map(|a| a.get_help().map(|h| h.to_string())));
        for text in texts {
            // Notes for developers (why a variant is boxed) are code comments, not help.
            if text.contains("Boxed") {
                wrong.push(format!("{path}: a developers' note: {text}"));
            }
            // What works on both data sets says so; a CIFAR-10-only flag says "CIFAR-10:".
            let only_cifar10 = text.replace("CIFAR-100", "").contains("CIFAR-10");
            if only_cifar10 && !text.contains("CIFAR-100") && !text.starts_with("CIFAR-10:") {
                wrong.push(format!("{path}: CIFAR-10 only: {text}"));
            }
            if text.contains("0-9") {
                wrong.push(format!("{path}: CIFAR-10's classes: {text}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
