//! Helpers shared by the root tests that run `allconv` as a process (each includes this module
//! with `mod common;`, so not every file uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `allconv` binary under test.
pub fn allconv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allconv"))
}

/// A finished process's status, stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Synthetic CIFAR-10 (5 x 10 training, 20 test images) under `dir/data` and a one-point grid
/// (Strided-CNN-A, lr 0.01, `epochs` epochs, scale preprocessing, batch 25, CPU) writing its runs
/// to `dir/runs`; returns (config file, runs root).
pub fn tiny_grid(dir: &Path, epochs: usize) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    allconv_cifar::write_synthetic_dir(&data, 10, 20, 5).unwrap();
    let runs = dir.join("runs");
    let config = dir.join("tiny.yaml");
    std::fs::write(
        &config,
        format!(
            "data:\n  dir: {}\n  preprocessing: scale\nschedule:\n  epochs: {epochs}\n  milestones: []\n\
             training:\n  batch_size: 25\n  device: cpu\n  stuck_epochs: 0\n\
             grid:\n  models: [strided-cnn-a]\n  lrs: [0.01]\n\
             out:\n  runs: {}\n",
            data.display(),
            runs.display()
        ),
    )
    .unwrap();
    (config, runs)
}

/// The write end of a pipe whose read end is already closed: the read end belonged to a child
/// that exited at once, so the first write into this pipe fails with EPIPE. Closing the reader
/// before the command starts makes the outcome independent of how fast the command prints.
pub fn pipe_without_reader() -> std::process::Stdio {
    let mut reader = Command::new("sh")
        .args(["-c", "exit 0"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sh runs");
    let writer = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    std::process::Stdio::from(writer)
}
