//! The run folder's lock: an `flock` on `lock`, so one process trains a folder at a time and a
//! crashed holder leaves no stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::error::{IoContext, Result, RunsError};
use crate::RunDir;

/// Holds a run folder's lock until dropped (or until the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// Why [`lock_exclusive`] did not get the lock.
enum Held {
    /// Another process holds it: " (pid N)" when the lock file names the holder, else empty.
    By(String),
    /// The folder or the lock file could not be created or written.
    Io(RunsError),
}

/// Takes an exclusive `flock` on `path` inside `folder` (creating both) and writes this
/// process's id into it for whoever finds it held.
fn lock_exclusive(
    folder: &std::path::Path,
    path: &std::path::Path,
) -> std::result::Result<RunLock, Held> {
    std::fs::create_dir_all(folder)
        .at(folder)
        .map_err(Held::Io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
        .map_err(Held::Io)?;
    if file.try_lock_exclusive().is_err() {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let holder = text
            .trim()
            .parse::<u32>()
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default();
        return Err(Held::By(holder));
    }
    // Informational only: the flock, not the file content, is the lock.
    let write_pid = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())
    };
    write_pid(&mut file).at(path).map_err(Held::Io)?;
    Ok(RunLock { _file: file })
}

impl crate::RunsRoot {
    /// Takes the lock of the whole runs root, held by the process that runs its grid (`allconv
    /// reproduce`), or fails with [`RunsError::GridLocked`] naming the holder: two grids on one
    /// folder would start the same runs twice and report each other's as failed.
    pub fn lock_grid(&self) -> Result<RunLock> {
        lock_exclusive(self.path(), &self.grid_lock_path()).map_err(|held| match held {
            Held::By(holder) => RunsError::GridLocked {
                root: self.path().to_path_buf(),
                lock: self.grid_lock_path(),
                holder,
            },
            Held::Io(e) => e,
        })
    }
}

impl RunDir {
    /// Takes the folder's exclusive lock (creating the folder), or fails with
    /// [`RunsError::Locked`] when another process holds it. The lock is an `flock`, released by
    /// the operating system when the holder exits or is killed, so no stale lock survives a crash.
    pub fn lock(&self) -> Result<RunLock> {
        lock_exclusive(self.path(), &self.lock_path()).map_err(|held| match held {
            Held::By(holder) => RunsError::Locked {
                run_dir: self.path().to_path_buf(),
                lock: self.lock_path(),
                holder,
            },
            Held::Io(e) => e,
        })
    }

    /// Whether a live process holds the folder's lock (trains it now): `Some` with " (pid N)"
    /// when the lock file names it (or empty), `None` when nobody does. Creates nothing: a
    /// folder without a lock file has no trainer.
    pub fn trainer_running(&self) -> Option<String> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.lock_path())
            .ok()?;
        if file.try_lock_exclusive().is_ok() {
            // Nobody held it; released when `file` closes.
            return None;
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        Some(
            text.trim()
                .parse::<u32>()
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default(),
        )
    }

    /// Waits up to `grace` for no process to hold the folder's lock; returns whether it is free.
    /// The lock is not kept.
    ///
    /// Why: a grid restarted right after Ctrl-C can find its killed predecessor's trainer still
    /// exiting (and holding the lock) for a moment; `allconv reproduce` waits briefly before
    /// starting a run there instead of reporting it as locked. [`RunDir::lock`] itself never
    /// waits, so a second trainer on a live run is refused at once.
    pub fn wait_unlocked(&self, grace: Duration) -> bool {
        let started = Instant::now();
        loop {
            match self.lock() {
                Ok(_released_at_once) => return true,
                Err(RunsError::Locked { .. }) if started.elapsed() < grace => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => return false,
            }
        }
    }
}
