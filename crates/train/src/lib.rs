#![doc = include_str!("../README.md")]
//! Training for allconv: SGD with momentum and weight decay ([`Sgd`]), the step learning-rate
//! schedule ([`StepSchedule`]), YAML experiment configurations ([`config`]), checkpoints
//! ([`checkpoint`]) and the [`Trainer`] of one run folder ([`run`]): one model, one learning
//! rate, one seed per folder, laid out by allconv-runs for the report.

#![warn(missing_docs)]
// Lines for the user go through `allconv_runs::output`: `println!` / `eprintln!` panic when
// the pipe is gone.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod best;
pub mod checkpoint;
pub mod config;
mod config_error;
pub mod divergence;
mod error;
pub mod grid;
pub mod memory;
pub mod optim;
pub mod stop;
mod trainer;
pub mod vars;

pub use allconv_runs::{
    EpochMetrics, GridFile, GridPoint, RunDir, RunResult, RunStatus, RunsError, METRICS_HEADER,
};
pub use config::{ExperimentConfig, RunConfig, Setting};
pub use config_error::ConfigError;
pub use error::{Result, TrainError};
pub use grid::ExperimentGrid;
pub use optim::{Sgd, SgdConfig, StepSchedule};
pub use stop::StopHandle;
pub use trainer::device::apply_device_settings;
pub use trainer::finish::final_weights;
pub use trainer::options::{EpochEnd, EpochHook, Progress, RunOptions, StepEnd, StepHook};
pub use trainer::run::run;
pub use trainer::steps::{dropout_seed, evaluate};
pub use trainer::{Evaluation, Opened, TrainedEpoch, Trainer};
