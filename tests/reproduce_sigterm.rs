//! SIGTERM to `allconv reproduce` alone (what Slurm, systemd and `timeout` send): the grid
//! passes it on to its trainers and waits for them, so none trains on as an orphan, and the
//! same command then resumes the run from its checkpoint.

#![cfg(unix)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_to_the_grid_stops_its_trainers_and_the_grid_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = common::tiny_grid(tmp.path(), 2);
    let run_dir = runs.join("strided-cnn-a/lr-0.01/seed-0");
    let reproduce = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_allconv"));
        command
            .args(["reproduce", "--jobs", "1", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };

    // The trainer holds after its first checkpointed epoch (test hook) until it is signalled.
    let grid = reproduce()
        .env("ALLCONV_TEST_HOLD", format!("{}=1", run_dir.display()))
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !run_dir.join("checkpoint/state.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no epoch in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM to the grid process only, not to its process group.
    let sent = Command::new("kill")
        .args(["-s", "TERM", &grid.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = grid.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    // The grid waited for its trainer: the run folder's lock is free the moment it has exited
    // (an orphaned trainer would still hold it).
    let lock = allconv_runs::RunDir::new(&run_dir).lock();
    assert!(
        lock.is_ok(),
        "the trainer outlived the grid: {:?}",
        lock.err()
    );
    drop(lock);
    assert!(!run_dir.join("result.json").exists());

    // The same command resumes after the checkpointed epoch and finishes the run.
    let again = reproduce().output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    let result = std::fs::read_to_string(run_dir.join("result.json")).unwrap();
    assert!(result.contains("\"epochs_run\": 2"), "{result}");
    let log = std::fs::read_to_string(run_dir.join("train.log")).unwrap();
    assert!(log.contains("resuming after epoch 1"), "{log}");
}
