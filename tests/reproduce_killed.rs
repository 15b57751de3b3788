//! `kill -9` of `allconv reproduce`: its trainers end with it (they get SIGTERM from the kernel,
//! write a checkpoint and stop) instead of training on unsupervised, and a run whose lock a live
//! trainer holds is reported by the next grid and report as running, never as failed.

#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{allconv, text, tiny_grid};

fn reproduce(config: &Path) -> Command {
    let mut command = allconv();
    command
        .args(["reproduce", "--jobs", "1", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits up to `limit` for `done`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_trainers_of_a_killed_grid_end_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 2);
    let run_dir = runs.join("strided-cnn-a/lr-0.01/seed-0");
    // The trainer is held (SIGSTOP) right after its first checkpointed epoch: the grid is killed
    // in the middle of the run however fast the machine is.
    let mut grid = reproduce(&config).spawn().unwrap();
    let held = common::freeze_trainer_after_first_checkpoint(&run_dir, Duration::from_secs(300));
    let trainer = held.pid;
    grid.kill().unwrap(); // SIGKILL: the grid runs none of its code.
    grid.wait().unwrap();
    // The kernel's SIGTERM (the grid's death signal) is what the trainer handles next.
    held.thaw_when_pending(libc::SIGTERM, Duration::from_secs(60));
    let lock = allconv_runs::RunDir::new(&run_dir);
    let ended = wait_for(Duration::from_secs(60), || lock.trainer_running().is_none());
    if !ended {
        // Do not leave the orphan behind this failing test.
        let _ = Command::new("kill")
            .args(["-9", &trainer.to_string()])
            .status();
    }
    assert!(
        ended,
        "trainer {trainer} outlived its killed grid by a minute"
    );
    // It stopped as on SIGTERM: checkpointed, not finished; the same command resumes it.
    assert!(!run_dir.join("result.json").exists());
    let log = std::fs::read_to_string(run_dir.join("train.log")).unwrap();
    assert!(log.contains("stopped on request"), "{log}");
    let again = reproduce(&config).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(run_dir.join("result.json").exists());
}

#[test]
fn a_run_trained_by_another_process_is_reported_as_running_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 1);
    let run_dir = allconv_runs::RunDir::new(runs.join("strided-cnn-a/lr-0.01/seed-0"));
    // This test process holds the run's lock, as a trainer started by hand would; one epoch
    // row, as such a trainer would have written.
    let held = run_dir.lock().unwrap();
    std::fs::write(
        run_dir.metrics_path(),
        format!(
            "{}\n1,0.01,2.3,0.1,,,2.3,0.1,1.0,50.0\n",
            allconv_runs::METRICS_HEADER
        ),
    )
    .unwrap();
    let out: Output = reproduce(&config).output().unwrap();
    let all = text(&out);
    let pid = format!("(pid {})", std::process::id());
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("being trained by another process"), "{all}");
    assert!(all.contains(&pid), "{all}");
    assert!(all.contains("the grid is not finished"), "{all}");
    assert!(
        !all.contains("FAILED") && !all.contains("failed (see"),
        "{all}"
    );
    assert!(all.contains("0 failed"), "{all}");
    let report = std::fs::read_to_string(runs.join("report/report.md")).unwrap();
    assert!(report.contains("partial 1/1 (running)"), "{report}");

    // Once the other trainer has gone, the report says the run was interrupted.
    drop(held);
    let out = allconv()
        .args(["report", "--runs"])
        .arg(&runs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report = std::fs::read_to_string(runs.join("report/report.md")).unwrap();
    assert!(report.contains("partial 1/1 (interrupted)"), "{report}");
}
