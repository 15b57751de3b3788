//! The numbers of the report, computed from run folders: one [`RunSummary`] per grid point
//! (found or expected), statistics per model and learning rate, and the learning rate chosen per
//! model two ways.
//!
//! Definitions (also printed in report.md):
//! - a run's error is its **final-epoch** error (`100 * (1 - acc)` of the last evaluated row of
//!   `metrics.csv`), never the best epoch's;
//! - only finished runs (`result.json` with status `done`) enter means and the choice of LR;
//! - several seeds: mean and sample standard deviation (n - 1) over the finished seeds;
//! - LR chosen on the test set (as the paper): lowest mean final test error;
//! - LR chosen on the validation split: lowest mean final validation error; its mean final test
//!   error is reported.
//!
//! The parts: `run` (a grid point and its numbers), `folder` (those numbers read from one run
//! folder), `stats` (mean and deviation over seeds), `table` (the whole summary and its rows),
//! `choice` (the learning rate chosen per model) and `assemble` (the run folders and expected
//! grid points put together into a summary).

mod assemble;
mod choice;
mod folder;
mod run;
mod stats;
mod table;

pub use assemble::{summarize, summarize_all};
pub use run::{same_lr, DataCheck, GridPoint, RunState, RunSummary, UnreadableRun};
pub use stats::Stats;
pub use table::{ModelRow, Selection, StateCounts, Summary};
