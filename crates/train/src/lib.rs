//! Training for allconv: SGD with momentum and weight decay ([`Sgd`]), the step learning-rate
//! schedule ([`StepSchedule`]), YAML experiment configurations ([`config`]), and resumable run
//! folders ([`run`]): one model, one learning rate, one seed per folder, with `config.yaml`,
//! `metrics.csv`, `checkpoint/`, `result.json` and a lock, laid out as ARCHITECTURE.md specifies
//! for the report.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod divergence;
mod error;
mod fsutil;
pub mod grid;
pub mod optim;
pub mod run_dir;
mod trainer;

pub use config::{ExperimentConfig, Overrides, RunConfig};
pub use error::{Result, TrainError};
pub use grid::{GridFile, GridPoint};
pub use optim::{Sgd, SgdConfig, StepSchedule};
pub use run_dir::{EpochMetrics, RunDir, RunResult, RunStatus, METRICS_HEADER};
pub use trainer::{dropout_seed, evaluate, final_weights, run, Progress, RunOptions};
