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

impl RunDir {
    /// Takes the folder's exclusive lock (creating the folder), or fails with
    /// [`RunsError::Locked`] when another process holds it. The lock is an `flock`, released by
    /// the operating system when the holder exits or is killed, so no stale lock survives a crash.
    pub fn lock(&self) -> Result<RunLock> {
        std::fs::create_dir_all(self.path()).at(self.path())?;
        let path = self.lock_path();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        if file.try_lock_exclusive().is_err() {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = text
                .trim()
                .parse::<u32>()
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            return Err(RunsError::Locked {
                run_dir: self.path().to_path_buf(),
                lock: path,
                holder,
            });
        }
        // Informational only: the flock, not the file content, is the lock.
        file.set_len(0).at(&path)?;
        file.rewind().at(&path)?;
        write!(file, "{}", std::process::id()).at(&path)?;
        Ok(RunLock { _file: file })
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
