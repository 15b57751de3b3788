//! The frame every fetch shares: a staging folder next to the target, filled by the first route
//! that works and renamed into place only once it verifies, so an interrupted fetch never
//! leaves a folder that looks complete. The temporary folders carry the fetching process's PID;
//! a fetch removes those of processes that no longer run before it starts.

use std::path::{Path, PathBuf};

use super::outcome::FetchOutcome;
use crate::{CifarError, Result};

/// Fills a staging folder (first argument), with a scratch folder for downloads (second).
pub(crate) type Fill<'a> = Box<dyn Fn(&Path, &Path) -> Result<()> + 'a>;

/// One way to acquire a data set: its name in messages and errors, and how it fills the staging
/// folder (`None`: disabled by the fetch options, reported as such).
pub(crate) struct Route<'a> {
    pub(crate) name: String,
    pub(crate) fill: Option<Fill<'a>>,
}

/// Makes `dir` hold what `verify` accepts. A folder that is not empty is only verified, never
/// written into (`AlreadyPresent`, or `ExistingInvalid` with the reason). Otherwise each route in
/// turn fills a fresh staging folder, which is verified and renamed to `dir`; when every route
/// fails, the error lists each route with its reason. `default_name` names the target when
/// `dir` has no file name (its temporaries are `.<name>.<kind>-<PID>`).
pub(crate) fn fetch_staged(
    dir: &Path,
    default_name: &str,
    quiet: bool,
    routes: Vec<Route<'_>>,
    verify: &dyn Fn(&Path) -> Result<()>,
) -> Result<FetchOutcome> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| default_name.to_string());
    remove_stale_temporaries(&parent, &name, quiet);
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| CifarError::io(dir, e))?
            .next()
            .is_none();
        if !empty {
            return match verify(dir) {
                Ok(()) => Ok(FetchOutcome::AlreadyPresent),
                Err(e) => Err(CifarError::ExistingInvalid {
                    dir: dir.to_path_buf(),
                    reason: e.to_string(),
                }),
            };
        }
    }
    std::fs::create_dir_all(&parent).map_err(|e| CifarError::io(&parent, e))?;
    let staging = parent.join(temporary_name(&name, PARTIAL, std::process::id()));
    let work = parent.join(temporary_name(&name, DOWNLOAD, std::process::id()));
    let mut attempts = Vec::new();
    for Route { name: route, fill } in routes {
        let Some(fill) = fill else {
            attempts.push((route, "disabled by the fetch options".to_string()));
            continue;
        };
        if !quiet {
            crate::note(format_args!("trying {route}"));
        }
        let result = fresh_dir(&staging)
            .and_then(|()| fresh_dir(&work))
            .and_then(|()| fill(&staging, &work))
            .and_then(|()| verify(&staging));
        let _ = std::fs::remove_dir_all(&work);
        match result {
            Ok(()) => {
                if dir.exists() {
                    // Only an empty folder gets here (checked above).
                    std::fs::remove_dir(dir).map_err(|e| CifarError::io(dir, e))?;
                }
                std::fs::rename(&staging, dir).map_err(|e| CifarError::io(dir, e))?;
                return Ok(FetchOutcome::Fetched { route });
            }
            Err(e) => {
                if !quiet {
                    crate::note(format_args!("  failed: {e}"));
                }
                attempts.push((route, e.to_string()));
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
    }
    Err(CifarError::FetchFailed {
        dir: dir.to_path_buf(),
        attempts,
    })
}

/// Kinds of temporary folder a fetch makes next to its target: the folder that becomes the
/// target once verified, and the one holding downloads and unpacked packages.
const PARTIAL: &str = "partial";
const DOWNLOAD: &str = "download";

/// `.<target name>.<kind>-<PID>`: the PID says whose folder it is, so a later fetch can tell the
/// leftovers of a killed fetch from the folders of one still running.
fn temporary_name(target_name: &str, kind: &str, pid: u32) -> String {
    format!(".{target_name}.{kind}-{pid}")
}

/// Removes the temporary folders for this target that belong to processes no longer running
/// (a fetch killed with `kill -9` leaves up to ~450 MB there). A folder whose PID is alive is
/// kept, whoever that process is; so is every name that does not parse. Failures to remove
/// are reported and otherwise ignored: they do not stop this fetch.
fn remove_stale_temporaries(parent: &Path, target_name: &str, quiet: bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(pid) = [PARTIAL, DOWNLOAD].iter().find_map(|kind| {
            let digits = file_name.strip_prefix(&format!(".{target_name}.{kind}-"))?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse::<u32>().ok()
        }) else {
            continue;
        };
        if process_is_alive(pid) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) if !quiet => crate::note(format_args!(
                "removed {} (left by an interrupted fetch, process {pid})",
                path.display()
            )),
            Ok(()) => {}
            Err(e) if !quiet => crate::note(format_args!(
                "could not remove {} (left by process {pid}): {e}",
                path.display()
            )),
            Err(_) => {}
        }
    }
}

/// Whether a process with this PID exists (signal 0 checks without sending anything; EPERM
/// means it exists under another user).
#[cfg(unix)]
fn process_is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: kill with signal 0 only checks for the process; it has no memory effects.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Without a way to ask, every PID counts as alive: nothing is removed.
#[cfg(not(unix))]
fn process_is_alive(_pid: u32) -> bool {
    true
}

/// Makes `path` an empty folder (removing what was there: only ever our own temporaries).
pub(crate) fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|e| CifarError::io(path, e))?;
    }
    std::fs::create_dir_all(path).map_err(|e| CifarError::io(path, e))
}
