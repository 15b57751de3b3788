//! SIGTERM to `allconv reproduce` alone (what Slurm, systemd and `timeout` send): the grid
//! passes it on to its trainers and waits for them, so none trains on as an orphan, and the
//! same command then resumes the run from its checkpoint.

#![cfg(unix)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

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

    // The trainer is held (SIGSTOP) right after its first checkpointed epoch, so the signal
    // lands in the middle of the run however fast the machine is.
    let grid = reproduce().spawn().unwrap();
    let trainer = common::freeze_trainer_after_first_checkpoint(&run_dir, Duration::from_secs(300));
    // SIGTERM to the grid process only, not to its process group; the trainer goes on once the
    // grid has passed it on.
    let sent = Command::new("kill")
        .args(["-s", "TERM", &grid.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    trainer.thaw_when_pending(libc::SIGTERM, Duration::from_secs(60));
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

    // Where the trainer stopped: after epoch 1 at the earliest (it was held after its
    // checkpoint), before the end.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    let (epoch, step) = (
        state["epoch"].as_u64().unwrap(),
        state["step"].as_u64().unwrap(),
    );
    assert!(epoch >= 1, "{state}");

    // The same command resumes from that checkpoint and finishes the run.
    let again = reproduce().output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    let result = std::fs::read_to_string(run_dir.join("result.json")).unwrap();
    assert!(result.contains("\"epochs_run\": 2"), "{result}");
    let log = std::fs::read_to_string(run_dir.join("train.log")).unwrap();
    let resumed = match step {
        0 => format!("resuming after epoch {epoch}/2\n"),
        step => format!(
            "resuming after epoch {epoch}/2, at step {step} of epoch {}",
            epoch + 1
        ),
    };
    assert!(log.contains(&resumed), "{resumed}: {log}");
}
