//! One lock per run folder within a process too: a second `lock()` is refused, naming the pid.

use std::time::Duration;

use allconv_runs::{RunDir, RunsError};

#[test]
fn a_held_lock_is_refused_and_released_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path().join("run"));
    let held = run.lock().unwrap();
    // flock locks belong to the open file, so a second open in the same process conflicts too.
    match run.lock() {
        Err(RunsError::Locked { holder, lock, .. }) => {
            assert_eq!(holder, format!(" (pid {})", std::process::id()));
            assert_eq!(lock, run.lock_path());
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(!run.wait_unlocked(Duration::from_millis(100)));
    drop(held);
    assert!(run.wait_unlocked(Duration::from_millis(100)));
    assert!(run.lock().is_ok());
}
