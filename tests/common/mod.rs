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

/// A trainer process held still with SIGSTOP at a known point of its run (see
/// [`freeze_trainer_after_first_checkpoint`]); dropped, it goes on (SIGCONT), so a failing test
/// leaves no process stopped behind.
#[cfg(unix)]
pub struct Frozen {
    /// The trainer's process id.
    pub pid: u32,
}

#[cfg(unix)]
impl Frozen {
    /// Lets the trainer go on: the signals sent to it meanwhile are handled now.
    pub fn thaw(self) {}

    /// Lets the trainer go on once `sig` is pending for it (sent by another process, e.g. a
    /// grid passing a signal on), so that it handles the signal before it trains another step.
    /// Linux reads the pending set in /proc; elsewhere the wait is a second.
    pub fn thaw_when_pending(self, sig: libc::c_int, limit: std::time::Duration) {
        let status = PathBuf::from(format!("/proc/{}/status", self.pid));
        if !status.exists() {
            std::thread::sleep(std::time::Duration::from_secs(1));
            return;
        }
        let bit = 1u64 << (sig - 1);
        let pending = || {
            let text = std::fs::read_to_string(&status).unwrap_or_default();
            // `SigPnd` (the thread's) and `ShdPnd` (the process's): hexadecimal masks.
            text.lines()
                .filter_map(|l| {
                    l.strip_prefix("SigPnd:")
                        .or_else(|| l.strip_prefix("ShdPnd:"))
                })
                .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .any(|mask| mask & bit != 0)
                || text.is_empty()
        };
        let start = std::time::Instant::now();
        while !pending() {
            assert!(
                start.elapsed() < limit,
                "signal {sig} never reached trainer {}",
                self.pid
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// The trainer was killed while held: there is nothing to continue.
    pub fn killed(self) {
        std::mem::forget(self);
    }
}

#[cfg(unix)]
impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.pid, libc::SIGCONT);
    }
}

/// Sends `sig` to process `pid`.
#[cfg(unix)]
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory effects in this process.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Stops process `pid` (SIGSTOP) and waits until the kernel says it is stopped (Linux: its
/// state in /proc; elsewhere a moment).
#[cfg(unix)]
fn stop_process(pid: u32) {
    signal(pid, libc::SIGSTOP);
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(200) {
        match std::fs::read_to_string(&stat) {
            // `pid (name) S ...`: the state follows the name's closing parenthesis.
            Ok(text) => match text.rsplit_once(')').map(|(_, rest)| rest.trim_start()) {
                Some(rest) if rest.starts_with('T') || rest.starts_with('t') => return,
                Some(_) => std::thread::sleep(std::time::Duration::from_micros(100)),
                None => return,
            },
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(2));
                return;
            }
        }
    }
}

/// Holds the trainer of `run_dir` with SIGSTOP right after it has checkpointed its first epoch
/// (`checkpoint/state.json` is written last), the way an operator holds a job: the trainer is
/// found by the pid in the run folder's lock file, watched until `metrics.csv` has its first row,
/// then stepped (stopped, looked at, continued for a moment) until the checkpoint is there while
/// it is stopped. Whatever signal the test sends next lands at that point of the run, however
/// fast the machine is. Panics after `limit`.
#[cfg(unix)]
pub fn freeze_trainer_after_first_checkpoint(run_dir: &Path, limit: std::time::Duration) -> Frozen {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let waited = |what: &str| {
        assert!(
            start.elapsed() < limit,
            "{}: {what} within {limit:?}",
            run_dir.display()
        )
    };
    let first_row = || {
        std::fs::read_to_string(run_dir.join("metrics.csv"))
            .is_ok_and(|text| text.lines().nth(1).is_some_and(|row| row.contains(',')))
    };
    while !first_row() {
        waited("no metrics.csv row");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid: u32 = std::fs::read_to_string(run_dir.join("lock"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no trainer pid in its lock file", run_dir.display()));
    loop {
        stop_process(pid);
        let frozen = Frozen { pid };
        if run_dir.join("checkpoint/state.json").exists() {
            return frozen;
        }
        drop(frozen);
        waited("no checkpoint after the first row");
        std::thread::sleep(Duration::from_millis(1));
    }
}
