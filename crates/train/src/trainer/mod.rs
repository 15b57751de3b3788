//! One training run in its run folder, one file per phase: [`Trainer::open`] (`open`: lock, skip
//! a finished run, provenance, data, network, resume), [`Trainer::train_epoch`] (`training`),
//! [`Trainer::evaluate`], [`Trainer::checkpoint`] (or all three and the metrics row as
//! [`Trainer::run_epoch`]: `epoch`), the stop protocol (`stop`) and [`Trainer::finish`]
//! (`finish`: final weights, `result.json`). [`run()`](run::run) strings them together.
//!
//! This file holds the trainer's state; the files it names are the leaves that state is made
//! of (data, model, progress, stop watch), and the phases implement `Trainer` above them.

mod claim;
mod data;
pub(crate) mod device;
mod epoch;
pub(crate) mod finish;
mod model;
mod open;
pub(crate) mod options;
mod progress;
mod record;
mod resume;
pub(crate) mod run;
mod saved_config;
pub(crate) mod steps;
mod stop;
mod training;

use std::sync::Arc;

use allconv_runs::{RunDir, RunLock, RunResult};
use indicatif::ProgressBar;

use crate::checkpoint::{CheckpointDir, TrainerState};
use crate::config::RunConfig;
use crate::divergence::StuckDetector;
use crate::optim::StepSchedule;
use data::DeviceData;
use model::Model;
use options::{EpochHook, RunOptions, StepHook};
use progress::Reporter;
use stop::StopWatch;

/// Losses and accuracies (fractions) of one evaluation; `None` for an empty split.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evaluation {
    /// Validation (loss, accuracy).
    pub validation: Option<(f64, f64)>,
    /// Test (loss, accuracy).
    pub test: Option<(f64, f64)>,
}

/// The numbers of one epoch of training steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainedEpoch {
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy (fraction).
    pub accuracy: f64,
    /// Images trained on.
    pub images: usize,
    /// Seconds of the training steps.
    pub seconds: f64,
}

/// What [`Trainer::open`] found.
pub enum Opened {
    /// The run had ended already (`result.json`); nothing was trained.
    Finished(Box<RunResult>),
    /// The run is ready to train, resumed from its checkpoint if it had one.
    Ready(Box<Trainer>),
}

/// One run being trained, holding its folder's lock.
pub struct Trainer {
    config: RunConfig,
    dir: RunDir,
    _lock: RunLock,
    say: Reporter,
    checkpoints: CheckpointDir,
    /// Shared with the batches of the epoch under way.
    data: Arc<DeviceData>,
    model: Model,
    state: TrainerState,
    schedule: StepSchedule,
    stuck: StuckDetector,
    diverged: Option<String>,
    bar: ProgressBar,
    epochs_this_process: usize,
    steps_this_process: usize,
    stop: StopWatch,
    on_step: Option<StepHook>,
    on_epoch_end: Option<EpochHook>,
}

impl Trainer {
    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// Epochs finished and checkpointed.
    pub fn epochs_done(&self) -> usize {
        self.state.epoch
    }

    /// Epochs the schedule plans.
    pub fn epochs_planned(&self) -> usize {
        self.config.config.schedule.epochs
    }

    /// Whether the run has ended: all epochs trained, or diverged.
    pub fn is_finished(&self) -> bool {
        self.diverged.is_some() || self.state.epoch >= self.epochs_planned()
    }
}
