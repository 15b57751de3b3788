//! The end of a run: its final weights (unless it diverged) and `result.json`; and reading the
//! final weights of a finished run back.

use std::path::Path;

use allconv_runs::{RunDir, RunResult, RunStatus};
use candle_core::{Device, Tensor};

use super::Trainer;
use crate::checkpoint::{self, WeightsInfo};
use crate::error::{Result, TrainError};

impl Trainer {
    /// Ends a finished run: the final weights (unless it diverged) and `result.json`.
    pub fn finish(self) -> Result<RunResult> {
        if !self.is_finished() {
            return Err(TrainError::NotFinished {
                run_dir: self.dir.path().to_path_buf(),
                epochs_done: self.state.epoch,
                epochs_planned: self.epochs_planned(),
            });
        }
        self.bar.finish_and_clear();
        if self.diverged.is_none() {
            checkpoint::save_weights(
                &self.dir.final_weights_path(),
                &self.model.varmap,
                Some(&WeightsInfo::of(&self.config)),
            )?;
        }
        let best = &self.state.best;
        let result = RunResult {
            model: self.config.model.clone(),
            lr: self.config.lr,
            seed: self.config.seed,
            status: if self.diverged.is_some() {
                RunStatus::Diverged
            } else {
                RunStatus::Done
            },
            reason: self.diverged.clone(),
            epochs_run: self.state.epoch,
            epochs_planned: self.epochs_planned(),
            final_test_error: best.last_test_error,
            best_test_error: best.best_test_error,
            best_test_epoch: best.best_test_epoch,
            final_val_error: best.last_val_error,
            best_val_error: best.best_val_error,
            best_val_epoch: best.best_val_epoch,
            test_error_at_best_val: best.test_error_at_best_val,
            wall_seconds: self.state.elapsed_seconds,
            parameters: self.model.parameters,
        };
        self.dir.write_result(&result)?;
        self.say.line(&format!(
            "{}: {}",
            self.dir.path().display(),
            result.summary()
        ));
        Ok(result)
    }
}

/// Reads the final weights of a finished run folder (for checks and fine-tuning).
pub fn final_weights(run_dir: &Path) -> Result<std::collections::BTreeMap<String, Tensor>> {
    checkpoint::load_tensors(&RunDir::new(run_dir).final_weights_path(), &Device::Cpu)
}
