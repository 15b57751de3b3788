//! The one error type of the crate.

use std::path::PathBuf;

use crate::config_error::ConfigError;

/// Everything that can go wrong while configuring or running a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A YAML file could not be parsed (unknown key, wrong type, bad syntax); the message names the key.
    #[error("{path}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// serde_norway's message, which names the key and the line.
        message: String,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A configuration value that parses but makes no sense, with where it was written when
    /// that is known: the file, or the flag as the user typed it.
    #[error(
        "invalid configuration: {}{problem}",
        origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default()
    )]
    InvalidConfig {
        /// The file or the flag (`configs/quick.yaml`, `--set optim.momentum=2`).
        origin: Option<String>,
        /// What is wrong, naming the key.
        problem: ConfigError,
    },
    /// An experiment file that sets no key at all (empty, or only comments).
    #[error(
        "invalid configuration: {}: the file sets no key; an experiment without any would train \
         the paper's whole protocol (the 12 networks, 4 learning rates, 350 epochs each). Write \
         the keys you mean (configs/paper.yaml states every one), or leave --config out for \
         those defaults",
        path.display()
    )]
    EmptyConfig {
        /// The file.
        path: PathBuf,
    },
    /// The experiment configuration embedded in a grid file cannot be read back.
    #[error("invalid configuration: the embedded experiment configuration: {0}")]
    EmbeddedConfig(serde_json::Error),
    /// A run folder's record (`config.yaml`) was written for another configuration than the one
    /// asked for, and the folder has a checkpoint or a result.
    #[error(
        "invalid configuration: {} was written for a different configuration ({}); delete the \
         run folder or use another --runs",
        record.display(),
        differences.join(", ")
    )]
    RecordDiffers {
        /// The record.
        record: PathBuf,
        /// Each differing key: `key: saved X, now Y`.
        differences: Vec<String>,
    },
    /// A value could not be written out (a configuration as JSON or YAML).
    #[error("cannot represent {what}: {reason}")]
    Unrepresentable {
        /// What was written.
        what: &'static str,
        /// The serialiser's reason.
        reason: String,
    },
    /// An optimizer was given two parameters of one name.
    #[error("optimizer: parameter name `{name}` given twice")]
    DuplicateParameter {
        /// The name.
        name: String,
    },
    /// [`crate::Trainer::finish`] was called on a run that has epochs left.
    #[error("{}: finish asked for after {epochs_done} of {epochs_planned} epochs", run_dir.display())]
    NotFinished {
        /// The run folder.
        run_dir: PathBuf,
        /// Epochs trained.
        epochs_done: usize,
        /// Epochs planned.
        epochs_planned: usize,
    },
    /// A file could not be read or written (run-folder and grid files, and the trainer's own
    /// through [`allconv_runs::IoContext`]), or another process holds the run folder's lock.
    #[error(transparent)]
    Runs(#[from] allconv_runs::RunsError),
    /// A checkpoint or weights file is incomplete, inconsistent or does not fit the model.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A resume would read other inputs than the run recorded (data files, preprocessing
    /// statistics), and changed data was not allowed.
    #[error(
        "{record}: {differences}. Resuming would train the rest of the run on other inputs than \
         its first part: restore them, or pass --allow-changed-data to go on (both checksums \
         are then recorded and the report shows the change)"
    )]
    ChangedInputs {
        /// The run's record (`config.yaml`).
        record: PathBuf,
        /// What differs, with the recorded and the present checksums.
        differences: String,
    },
    /// A stop request ([`crate::StopHandle`]: a signal, or a program's own) stopped the run
    /// part-way; a checkpoint where it stood was written.
    #[error(
        "stopped on request {} (checkpoint written); the same command resumes from there",
        TrainError::position(*epochs_done, *step)
    )]
    Stopped {
        /// Epochs finished before the stop.
        epochs_done: usize,
        /// SGD steps of the next epoch done before the stop (0: at the end of an epoch).
        step: usize,
    },
    /// A requeued run whose last stops each came before a single step was trained.
    #[error(
        "not started: this run was stopped {stops} times in a row before it trained a single \
         step (at step {step} of epoch {epoch}): the time between a task's start and its stop \
         signal is too short to load the data and train; give the tasks more time (`slurm.time`, \
         `--time`) and submit again"
    )]
    NoProgress {
        /// Consecutive stops without progress.
        stops: usize,
        /// The epoch (1-based) the run stands in.
        epoch: usize,
        /// SGD steps of that epoch already done.
        step: usize,
    },
    /// A model name or model option is invalid.
    #[error(transparent)]
    Model(#[from] allconv_models::ModelError),
    /// Loading or preparing CIFAR-10 failed.
    #[error(transparent)]
    Data(#[from] allconv_cifar::CifarError),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl TrainError {
    /// A configuration problem of no particular file or flag.
    pub(crate) fn invalid(problem: ConfigError) -> Self {
        TrainError::InvalidConfig {
            origin: None,
            problem,
        }
    }

    /// Where a run stands after `epochs_done` epochs and `step` steps of the next, in words:
    /// "before its first step", "after epoch 2", "after step 3 of epoch 2".
    pub(crate) fn position(epochs_done: usize, step: usize) -> String {
        match (epochs_done, step) {
            (0, 0) => "before its first step".to_string(),
            (done, 0) => format!("after epoch {done}"),
            (done, step) => format!("after step {step} of epoch {}", done + 1),
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
