//! A training is never ended by its own output: `allconv train` and `allconv reproduce` whose
//! standard error or standard output (or both, as `2>&1 | head -1`) nobody reads any more finish
//! their runs and the report, drop the lines they cannot write, say so once where they still
//! can, and exit with success (docs/training.md, "Output").

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{pipe_without_reader, text, tiny_grid};

/// Which of the command's streams go into a pipe without reader.
#[derive(Debug, Clone, Copy)]
enum Closed {
    Stdout,
    Stderr,
    Both,
}

fn run_with_closed(mut command: Command, closed: Closed) -> Output {
    match closed {
        Closed::Stdout => command.stdout(pipe_without_reader()).stderr(Stdio::piped()),
        Closed::Stderr => command.stdout(Stdio::piped()).stderr(pipe_without_reader()),
        Closed::Both => command
            .stdout(pipe_without_reader())
            .stderr(pipe_without_reader()),
    };
    command.output().unwrap()
}

fn train(config: &Path) -> Command {
    let mut command = common::allconv();
    // --lines: one progress line per epoch on standard error, whatever it is connected to.
    command.args(["train", "--lines", "--config"]).arg(config);
    command
}

fn reproduce(config: &Path) -> Command {
    let mut command = common::allconv();
    command
        .args(["reproduce", "--jobs", "1", "--config"])
        .arg(config);
    command
}

/// The note the command leaves on the stream that is still open, at most once.
fn assert_said_once(out: &Output, closed: Closed) {
    let (open, gone) = match closed {
        Closed::Stdout => (&out.stderr, "standard output"),
        Closed::Stderr => (&out.stdout, "standard error"),
        Closed::Both => return,
    };
    let open = String::from_utf8_lossy(open);
    assert_eq!(
        open.matches(&format!("note: {gone} cannot be written"))
            .count(),
        1,
        "{}",
        text(out)
    );
}

fn assert_finished(out: &Output, runs: &Path, what: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(0), "{what}: {all}");
    assert!(!all.contains("panicked"), "{what}: {all}");
    let run = runs.join("strided-cnn-a/lr-0.01/seed-0");
    assert!(run.join("result.json").exists(), "{what}: {all}");
    // Both epochs trained: the run was not stopped after its first progress line.
    let rows = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 2, "{what}: {rows}");
}

#[test]
fn train_finishes_its_run_whatever_became_of_its_output() {
    for closed in [Closed::Stderr, Closed::Stdout, Closed::Both] {
        let tmp = tempfile::tempdir().unwrap();
        let (config, runs) = tiny_grid(tmp.path(), 2);
        let out = run_with_closed(train(&config), closed);
        assert_finished(&out, &runs, &format!("train, closed {closed:?}"));
        assert_said_once(&out, closed);
    }
}

#[test]
fn reproduce_finishes_its_grid_and_report_whatever_became_of_its_output() {
    for closed in [Closed::Stderr, Closed::Stdout, Closed::Both] {
        let tmp = tempfile::tempdir().unwrap();
        let (config, runs) = tiny_grid(tmp.path(), 2);
        let out = run_with_closed(reproduce(&config), closed);
        let what = format!("reproduce, closed {closed:?}");
        assert_finished(&out, &runs, &what);
        assert!(
            runs.join("report/report.md").exists(),
            "{what}: {}",
            text(&out)
        );
        assert_said_once(&out, closed);
    }
}
