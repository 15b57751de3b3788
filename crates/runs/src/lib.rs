#![doc = include_str!("../README.md")]
//!
//! Modules: [`layout`] (every path), [`metrics`] (`metrics.csv`), [`result`] (`result.json`
//! and where a folder stands), [`grid`] (`grid.json`), [`lock`] (one trainer per folder),
//! [`scan`] (every run below a root, leniently), [`files`] (crash-safe writes), [`output`]
//! (lines for the user that a closed terminal or pipe cannot turn into a crash).

#![warn(missing_docs)]
// Lines for the user go through `output`: `println!` / `eprintln!` panic when the pipe is gone.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod device_check;
mod error;
pub mod files;
pub mod grid;
pub mod layout;
pub mod lock;
pub mod metrics;
pub mod output;
pub mod result;
pub mod scan;

pub use device_check::{CheckedSetting, DeviceCheckRecord};
pub use error::{IoContext, Result, RunsError};
pub use grid::{GridConfig, GridFile, GridPoint};
pub use layout::{run_dir, CheckpointFiles, RunDir, RunsRoot, SlurmFolder};
pub use lock::RunLock;
pub use metrics::{display_lr, read_metrics, EpochMetrics, METRICS_HEADER};
pub use result::{FolderState, RunResult, RunStatus};
pub use scan::{scan, FoundRun, RunRecord};
