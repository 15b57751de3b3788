//! Spellings of the previous release that still work for this one: each is a hidden argument of
//! its command (so `--help` shows only the new words) that does what the new spelling does, and
//! using it prints one line on standard error saying what to write instead. README.md lists the
//! same table ("Renamed flags"; a test keeps the two equal).

use clap::parser::ValueSource;
use clap::ArgMatches;

/// One old spelling.
#[derive(Debug, Clone, Copy)]
pub struct Deprecated {
    /// The commands that accept it, each as its path of subcommand names (`["data", "fetch"]`).
    pub commands: &'static [&'static [&'static str]],
    /// The id of the hidden argument that takes it (its field name).
    pub id: &'static str,
    /// The old spelling, as the user writes it.
    pub old: &'static str,
    /// What to write instead.
    pub new: &'static str,
}

/// The commands that take the configuration flags (`ConfigFlags`).
const CONFIG_COMMANDS: &[&[&str]] = &[&["train"], &["reproduce"], &["config"]];
/// The `allconv data` commands that read or write a data folder.
const DATA_COMMANDS: &[&[&str]] = &[&["data", "fetch"], &["data", "stats"], &["data", "subset"]];

/// Every old spelling, and its replacement.
pub const DEPRECATED: &[Deprecated] = &[
    Deprecated {
        commands: CONFIG_COMMANDS,
        id: "deprecated_out",
        old: "--out DIR",
        new: "--runs DIR",
    },
    Deprecated {
        commands: CONFIG_COMMANDS,
        id: "deprecated_tf32",
        old: "--tf32",
        new: "--precision tf32",
    },
    Deprecated {
        commands: DATA_COMMANDS,
        id: "deprecated_dir",
        old: "--dir DIR",
        new: "--data-dir DIR",
    },
    Deprecated {
        commands: &[&["data", "subset"]],
        id: "deprecated_to",
        old: "--to DIR",
        new: "--out DIR",
    },
    Deprecated {
        commands: &[&["bench"]],
        id: "deprecated_batch",
        old: "--batch N",
        new: "--batch-size N",
    },
    Deprecated {
        commands: &[&["check"]],
        id: "deprecated_record",
        old: "--record DIR",
        new: "--runs DIR",
    },
    Deprecated {
        commands: &[&["models"]],
        id: "deprecated_names",
        old: "NAME ...",
        new: "--models NAME,...",
    },
];

/// The matches of the subcommand at `path`, if that is the one given.
fn subcommand<'a>(matches: &'a ArgMatches, path: &[&str]) -> Option<&'a ArgMatches> {
    path.iter()
        .try_fold(matches, |m, name| m.subcommand_matches(name))
}

/// One warning line for every old spelling used on this command line.
pub fn warnings(matches: &ArgMatches) -> Vec<String> {
    let mut lines = Vec::new();
    for d in DEPRECATED {
        for path in d.commands {
            let Some(m) = subcommand(matches, path) else {
                continue;
            };
            if m.value_source(d.id) == Some(ValueSource::CommandLine) {
                lines.push(format!(
                    "warning: `allconv {} {}` is deprecated and goes away in the next release; \
                     write `{}`",
                    path.join(" "),
                    d.old,
                    d.new
                ));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The command at `path` of the whole command tree.
    fn command<'a>(root: &'a clap::Command, path: &[&str]) -> &'a clap::Command {
        path.iter().fold(root, |c, name| {
            c.find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name} in {path:?}"))
        })
    }

    /// The long name (or the value name of a positional) `spelling` starts with.
    fn flag_of(spelling: &str) -> &str {
        spelling
            .split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches("--")
    }

    #[test]
    fn every_old_spelling_is_a_hidden_argument_beside_its_visible_replacement() {
        let root = crate::Cli::command();
        for d in DEPRECATED {
            for path in d.commands {
                let cmd = command(&root, path);
                let old = cmd
                    .get_arguments()
                    .find(|a| a.get_id() == d.id)
                    .unwrap_or_else(|| panic!("{path:?} has no argument {}", d.id));
                assert!(old.is_hide_set(), "{path:?} {}: shown in --help", d.old);
                if let Some(long) = old.get_long() {
                    assert_eq!(long, flag_of(d.old), "{path:?} {}", d.id);
                }
                let new = flag_of(d.new);
                let replacement = cmd.get_arguments().find(|a| a.get_long() == Some(new));
                assert!(
                    replacement.is_some_and(|a| !a.is_hide_set()),
                    "{path:?}: no visible --{new} to replace {}",
                    d.old
                );
            }
        }
    }

    #[test]
    fn each_old_spelling_given_warns_once_in_one_line() {
        let root = crate::Cli::command();
        let matches = root
            .clone()
            .try_get_matches_from([
                "allconv",
                "data",
                "subset",
                "--per-file",
                "1",
                "--test",
                "1",
                "--dir",
                "a",
                "--to",
                "b",
            ])
            .unwrap();
        let lines = warnings(&matches);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("`allconv data subset --dir DIR`"),
            "{lines:?}"
        );
        assert!(lines[0].contains("write `--data-dir DIR`"), "{lines:?}");
        assert!(
            lines[1].contains("`allconv data subset --to DIR`"),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains('\n')));
        // The new spellings warn about nothing.
        let matches = root
            .try_get_matches_from([
                "allconv",
                "data",
                "subset",
                "--per-file",
                "1",
                "--test",
                "1",
                "--data-dir",
                "a",
                "--out",
                "b",
            ])
            .unwrap();
        assert!(warnings(&matches).is_empty());
    }

    #[test]
    fn the_readme_table_lists_every_old_spelling_with_its_replacement() {
        let readme = include_str!("../../README.md");
        for d in DEPRECATED {
            let row = format!("`{}` | `{}`", d.old, d.new);
            assert!(
                readme
                    .lines()
                    .any(|l| l.starts_with('|') && l.contains(&row)),
                "README.md has no row with {row}"
            );
        }
    }
}
