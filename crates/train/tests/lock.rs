//! Two processes on one run folder: the second is refused; a killed holder leaves no stale lock.
//!
//! The holder must be a process of its own, so this test has no libtest harness (as
//! `fetch_killed` in allconv-cifar): run normally it runs the tests below one after the other;
//! started again with `CHILD_ENV` set, the same binary is the holder, and no test is counted
//! for that role.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use allconv_train::{run, RunDir, RunOptions, RunsError, TrainError};

const CHILD_ENV: &str = "ALLCONV_TRAIN_TEST_LOCK_HOLDER";

fn main() {
    if let Some(folder) = std::env::var_os(CHILD_ENV) {
        hold_lock_until_killed(PathBuf::from(folder));
    }
    let tests: [(&str, fn()); 2] = [
        (
            "second_process_is_refused_and_a_killed_holder_releases_the_lock",
            second_process_is_refused_and_a_killed_holder_releases_the_lock,
        ),
        (
            "waiting_for_the_lock_sees_a_holder_exit_within_the_grace_period",
            waiting_for_the_lock_sees_a_holder_exit_within_the_grace_period,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", tests.len());
}

/// The holder's role: take the folder's lock, say so with a `ready` file, hold it until killed
/// (or for 60 s, should the parent die first).
fn hold_lock_until_killed(folder: PathBuf) -> ! {
    let _lock = RunDir::new(&folder).lock().unwrap();
    std::fs::write(folder.join("ready"), b"").unwrap();
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(3)
}

fn spawn_holder(folder: &std::path::Path) -> Child {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, folder)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !folder.join("ready").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "lock holder did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn second_process_is_refused_and_a_killed_holder_releases_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 2, 10);
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 1);
    config.training.batch_size = 10;
    let rc = common::run_config(&config, "strided-cnn-a", 0.01);
    let folder = rc.run_dir();
    std::fs::create_dir_all(&folder).unwrap();

    let mut holder = spawn_holder(&folder);
    let err = run(&rc, &RunOptions::default()).unwrap_err();
    match &err {
        TrainError::Runs(RunsError::Locked { holder: who, .. }) => {
            assert_eq!(who, &format!(" (pid {})", holder.id()))
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("another process") && message.contains("lock"),
        "{message}"
    );
    assert!(
        !RunDir::new(&folder).metrics_path().exists(),
        "the refused process wrote nothing"
    );

    // SIGKILL: the operating system drops the flock with the process.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let result = run(&rc, &RunOptions::default()).unwrap();
    assert_eq!(result.epochs_run, 1);
}

fn waiting_for_the_lock_sees_a_holder_exit_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("run");
    std::fs::create_dir_all(&folder).unwrap();
    let mut holder = spawn_holder(&folder);
    // A live holder: not free within 0.2 s.
    assert!(!RunDir::new(&folder).wait_unlocked(Duration::from_millis(200)));
    // The holder dies 0.5 s from now, inside a 3 s grace (like a trainer still exiting after
    // Ctrl-C when the grid is restarted).
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        holder.kill().unwrap();
        holder.wait().unwrap();
    });
    let started = Instant::now();
    let free = RunDir::new(&folder).wait_unlocked(Duration::from_secs(3));
    killer.join().unwrap();
    assert!(free);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "it waited for the holder"
    );
    // It did not keep the lock.
    assert!(RunDir::new(&folder).lock().is_ok());
}
