//! `checkpoint/state.json`: everything besides tensors that a resumed run needs to continue
//! exactly.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::best::BestMetrics;
use crate::config::RunConfig;
use crate::error::{Result, TrainError};

/// The seeds a run derives all its randomness from (all equal to the run seed today; kept
/// apart so the file says which stream each one drives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeds {
    /// Seed of the weight initialisation (checked on resume: the weights came from it).
    pub init: u64,
    /// Seed of the per-epoch shuffle (`Order::Shuffled { seed, epoch }`).
    pub shuffle: u64,
    /// Base of the per-step dropout seeds (mixed with epoch and step).
    pub dropout: u64,
}

/// The running sums of an epoch stopped part-way (a checkpoint written on a stop signal), so
/// that the resumed epoch's `metrics.csv` row is the one an uninterrupted epoch writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartialEpoch {
    /// Sum over the steps done of (mean batch loss x batch size).
    pub loss_sum: f64,
    /// Correctly classified training images so far.
    pub correct: u64,
    /// Training images so far.
    pub seen: usize,
    /// Seconds of those steps.
    pub seconds: f64,
}

/// Everything besides tensors that a resumed run needs to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Finished epochs (the next epoch to run, 0-based).
    pub epoch: usize,
    /// SGD steps of epoch `epoch` (0-based) already done: 0 for a checkpoint at an epoch's end;
    /// more for one written part-way through an epoch on a stop signal. Absent (0) in the
    /// checkpoints of earlier versions, which were all written at epoch ends.
    #[serde(default)]
    pub step: usize,
    /// The running sums of the steps of epoch `epoch` done so far (zero when `step` is 0).
    #[serde(default)]
    pub partial: PartialEpoch,
    /// Consecutive stops (signals) of this run that made no progress: the process stopped at
    /// the very (epoch, step) it had resumed from. Bounds requeue loops (see
    /// `RunOptions::max_stalled_stops`).
    #[serde(default)]
    pub stalled_stops: usize,
    /// Model name.
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Run seed.
    pub seed: u64,
    /// Seeds derived from it.
    pub seeds: Seeds,
    /// Best and last evaluation results.
    pub best: BestMetrics,
    /// Consecutive epochs so far that looked stuck at chance.
    pub stuck_count: usize,
    /// Seconds spent training and evaluating, over all processes.
    pub elapsed_seconds: f64,
    /// Weights file of this checkpoint, relative to `checkpoint/`.
    pub weights_file: String,
    /// Momentum file of this checkpoint, relative to `checkpoint/`.
    pub momentum_file: String,
}

impl TrainerState {
    /// The state of a run before its first epoch.
    pub fn fresh(config: &RunConfig) -> Self {
        TrainerState {
            epoch: 0,
            step: 0,
            partial: PartialEpoch::default(),
            stalled_stops: 0,
            model: config.model.clone(),
            lr: config.lr,
            seed: config.seed,
            seeds: Seeds {
                init: config.seed,
                shuffle: config.seed,
                dropout: config.seed,
            },
            best: BestMetrics::default(),
            stuck_count: 0,
            elapsed_seconds: 0.0,
            weights_file: String::new(),
            momentum_file: String::new(),
        }
    }

    /// Refuses a checkpoint written for another run: model, learning rate, run seed and the
    /// initialisation seed must be those of `config` (`path` is the state file, for the message).
    pub fn check_belongs_to(&self, config: &RunConfig, path: &Path) -> Result<()> {
        let expected = TrainerState::fresh(config);
        let mismatch = |what: &str, saved: String, now: String| {
            TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: format!(
                "written for {what} {saved}, but this run has {now}; delete the run folder or use another --runs"
            ),
        }
        };
        if self.model != expected.model {
            return Err(mismatch("model", self.model.clone(), expected.model));
        }
        if self.lr != expected.lr {
            return Err(mismatch("lr", self.lr.to_string(), expected.lr.to_string()));
        }
        if self.seed != expected.seed {
            return Err(mismatch(
                "seed",
                self.seed.to_string(),
                expected.seed.to_string(),
            ));
        }
        if self.seeds.init != expected.seeds.init {
            return Err(mismatch(
                "initialisation seed",
                self.seeds.init.to_string(),
                expected.seeds.init.to_string(),
            ));
        }
        Ok(())
    }
}
