//! Crash-safe file writes, for this crate's files and for the trainer's checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// The marker in the name of a file being written (`<name>.tmp-<pid>`), so that leftovers of a
/// killed process can be recognised and removed.
pub const TEMP_MARKER: &str = ".tmp-";

/// The temporary name a file is written under before it is renamed into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMP_MARKER}{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk, then renames it over
/// `path`: a process killed at any point leaves either the old or the new file, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    {
        let mut file = std::fs::File::create(&tmp).at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
    }
    rename(&tmp, path)
}

/// Renames `from` to `to` (atomic on one file system).
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).at(to)
}

/// Writes `value` as pretty JSON (with a final newline) atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|source| crate::RunsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, format!("{json}\n").as_bytes())
}

/// Reads a JSON file into `T`; the error names the file and the field.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).at(path)?;
    serde_json::from_str(&text).map_err(|source| crate::RunsError::Json {
        path: path.to_path_buf(),
        source,
    })
}
