//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a run folder or a grid file.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// Reading or writing a file or folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A JSON file (`result.json`, `grid.json`) could not be parsed or written; the message
    /// names the field.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A line of a `metrics.csv` is not what the trainer writes.
    #[error("{path}: line {line}: {message}")]
    Metrics {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Another process holds the run folder's lock.
    #[error(
        "run folder {run_dir} is being trained by another process{holder} (lock file {lock} is \
         held); wait for it to finish or stop it"
    )]
    Locked {
        /// The run folder.
        run_dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// " (pid N)" when the lock file names the holder, else empty.
        holder: String,
    },
    /// Another process runs the grid of this runs root.
    #[error(
        "{root} is being run by another `allconv reproduce`{holder} (lock file {lock} is held); \
         wait for it to finish, stop it, or use another --runs"
    )]
    GridLocked {
        /// The runs root.
        root: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// " (pid N)" when the lock file names the holder, else empty.
        holder: String,
    },
    /// A grid file has no point with the index asked for.
    #[error("grid has no point with index {index} (it has {count} points{indices})")]
    NoGridPoint {
        /// The index asked for.
        index: usize,
        /// How many points the grid has.
        count: usize,
        /// ", indices LO..=HI" when the grid has points, else empty.
        indices: String,
    },
    /// The runs root to scan is not a folder.
    #[error("runs folder {0} does not exist (train something first, or pass --runs)")]
    NoRuns(PathBuf),
}

/// Result with [`RunsError`].
pub type Result<T, E = RunsError> = std::result::Result<T, E>;

/// Attaches a path to an `std::io::Error`, making it a [`RunsError::Io`] (the trainer uses it
/// for its own files too, so every I/O error of the project names its path the same way).
pub trait IoContext<T> {
    /// The error, if any, as [`RunsError::Io`] naming `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| RunsError::Io {
            path: path.into(),
            source,
        })
    }
}
