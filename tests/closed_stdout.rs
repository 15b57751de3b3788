//! A reader that goes away (`allconv models | head -5`) ends a command quietly and with
//! success, as it does standard Unix tools, instead of a "failed printing to stdout" panic.

mod common;

use std::process::{Command, Stdio};

use common::pipe_without_reader;

const BIN: &str = env!("CARGO_BIN_EXE_allconv");

fn run_into_closed_pipe(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .stdout(pipe_without_reader())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_quiet_success(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {:?}\n{err}", out.status);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!err.contains("Broken pipe"), "{what}: {err}");
}

#[test]
fn models_into_a_closed_pipe_ends_quietly_with_success() {
    let out = run_into_closed_pipe(&["models".as_ref()]);
    assert_quiet_success(&out, "allconv models");
}

#[test]
fn data_stats_into_a_closed_pipe_ends_quietly_with_success() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar");
    allconv_cifar::write_synthetic_dir(&dir, 4, 4, 2).unwrap();
    let out = run_into_closed_pipe(&[
        "data".as_ref(),
        "stats".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
    ]);
    assert_quiet_success(&out, "allconv data stats");
}

#[test]
fn a_closed_pipe_does_not_hide_a_failure() {
    // Bad input still fails, with its message on stderr, even when nobody reads stdout.
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("absent");
    let out = run_into_closed_pipe(&[
        "data".as_ref(),
        "stats".as_ref(),
        "--dir".as_ref(),
        absent.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data_batch_1.bin"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_stdout_that_cannot_be_written_is_an_error_not_a_panic() {
    // /dev/full refuses every write with ENOSPC, as a full disk behind `> file` does.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(BIN)
        .arg("models")
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("writing to standard output failed"), "{err}");
}
