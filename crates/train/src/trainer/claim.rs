//! A run folder's lock, with what taking it made: an open refused before anything was recorded
//! leaves no folder behind that claims the grid point, nor a runs root the refused command made.

use std::path::PathBuf;

use allconv_runs::{RunDir, RunLock};

use crate::error::Result;

/// A run folder's lock, and whether the folder (and which of its parents) existed before.
pub(super) struct Claim {
    dir: RunDir,
    lock: RunLock,
    /// Whether the run folder was there before the lock was taken.
    existed: bool,
    /// The nearest folder that was there already: taking the lock created those below it (up to
    /// the runs root itself when that was new).
    there_before: Option<PathBuf>,
}

impl Claim {
    /// Takes `dir`'s lock ([`allconv_runs::RunsError::Locked`] when another process has it).
    pub(super) fn take(dir: &RunDir) -> Result<Claim> {
        let existed = dir.path().exists();
        let there_before = dir
            .path()
            .ancestors()
            .find(|a| a.exists())
            .map(PathBuf::from);
        let lock = dir.lock()?;
        Ok(Claim {
            dir: dir.clone(),
            lock,
            existed,
            there_before,
        })
    }

    /// The lock, for the trainer that holds it from now on.
    pub(super) fn into_lock(self) -> RunLock {
        self.lock
    }

    /// Gives the folder up after a refusal: when taking the lock created it, the lock file goes
    /// while still held (so no other process can hold it meanwhile), then the folders this claim
    /// created, if empty. A folder that was there before is left as it was.
    pub(super) fn withdraw(self) {
        if self.existed {
            return;
        }
        let _ = std::fs::remove_file(self.dir.lock_path());
        let mut folder = Some(self.dir.path());
        while let Some(f) = folder.filter(|f| Some(*f) != self.there_before.as_deref()) {
            if std::fs::remove_dir(f).is_err() {
                break;
            }
            folder = f.parent();
        }
        drop(self.lock);
    }
}
