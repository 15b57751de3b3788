//! [`ConfigError`]: what is wrong with a configuration value, named by its key (the checks are
//! in `config`); [`crate::TrainError::InvalidConfig`] adds where the value was written (the
//! file, or the flag as the user typed it).

use allconv_models::ModelError;

use crate::memory::BatchTooLarge;

/// A configuration value that parses but makes no sense. Every variant names the dotted key at
/// fault (`optim.momentum`, `grid.lrs`); the messages are sentences a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside the range its key takes.
    #[error("{key} must be {expected}, got {got}")]
    OutOfRange {
        /// The key.
        key: String,
        /// What the key takes (`at least 1`, `a finite number > 0`).
        expected: String,
        /// The value given, as written back.
        got: String,
    },
    /// A `model:` option that allconv-models refuses (`key` is `model`), a grid model it does
    /// not know (`key` is `grid.models`), or a CPU kernel path this CPU lacks (`key` is
    /// `training.cpu_kernels`).
    #[error("{}", model_refusal(key, refused))]
    Model {
        /// `model`, `grid.models` or `training.cpu_kernels`.
        key: &'static str,
        /// allconv-models' reason (for an option: its key, what it takes and what it got).
        refused: ModelError,
    },
    /// A grid axis that lists one value twice: the two points would share one run folder, and
    /// one would report the other's result as its own.
    #[error(
        "{key} {} {value} more than once ({listed}): each grid point is one run folder",
        if *key == "grid.models" { "names" } else { "lists" }
    )]
    Repeated {
        /// `grid.models`, `grid.lrs` or `grid.seeds`.
        key: &'static str,
        /// The repeated value.
        value: String,
        /// The whole list as given (for models, with a note that names are case-insensitive).
        listed: String,
    },
    /// A value that does not fit the rest of the configuration, the data or the machine: the
    /// message says what, naming the keys involved.
    #[error("{message}")]
    Inconsistent {
        /// The key at fault.
        key: String,
        /// The sentence that says why.
        message: String,
    },
    /// A batch size whose activations would not fit in the machine's memory on the CPU.
    #[error("{0}")]
    TooLarge(BatchTooLarge),
    /// An override that cannot be read into the configuration (an unknown key, a value of the
    /// wrong type), or that puts a key below a value.
    #[error("{message}")]
    NotRead {
        /// The key of the override.
        key: String,
        /// Why, in serde's words (which list the valid keys of a section).
        message: String,
    },
}

impl ConfigError {
    /// A value outside its range.
    pub(crate) fn out_of_range(
        key: impl Into<String>,
        expected: impl Into<String>,
        got: impl ToString,
    ) -> Self {
        ConfigError::OutOfRange {
            key: key.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// A value that does not fit the rest; `message` names `key`.
    pub(crate) fn inconsistent(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Inconsistent {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted key at fault.
    pub fn key(&self) -> String {
        match self {
            ConfigError::OutOfRange { key, .. }
            | ConfigError::Inconsistent { key, .. }
            | ConfigError::NotRead { key, .. } => key.clone(),
            ConfigError::Model {
                key: "model",
                refused: ModelError::InvalidOption { key, .. },
            } => format!("model.{key}"),
            ConfigError::Model { key, .. } | ConfigError::Repeated { key, .. } => key.to_string(),
            ConfigError::TooLarge(too_large) => too_large.what.clone(),
        }
    }
}

/// A model error under the key it came from: a bad option as `model.<option>: expected ...`.
fn model_refusal(key: &str, refused: &ModelError) -> String {
    match (key, refused) {
        (
            "model",
            ModelError::InvalidOption {
                key: option,
                expected,
                got,
            },
        ) => format!("model.{option}: expected {expected}, got {got}"),
        (key, other) => format!("{key}: {other}"),
    }
}
