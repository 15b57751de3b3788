//! One epoch of a run as a whole: its SGD steps (`training`), the evaluation, the `metrics.csv`
//! row and the checkpoint; and the checkpoint written where a stop request found the run.

use std::time::Instant;

use allconv_runs::EpochMetrics;

use super::options::EpochEnd;
use super::steps::evaluate;
use super::{stop, Evaluation, Trainer};
use crate::error::{Result, TrainError};

impl Trainer {
    /// Writes the checkpoint of the current position (`state.epoch`, `state.step`) on a stop
    /// request and returns the error that ends the run; a stop where this process started
    /// counts as one more stop without progress.
    pub(super) fn stop_here(&mut self) -> TrainError {
        self.bar.finish_and_clear();
        let here = (self.state.epoch, self.state.step);
        self.state.stalled_stops = self
            .stop
            .stalled_after_stop_at(here, self.state.stalled_stops);
        if let Err(e) = self.checkpoint() {
            return e;
        }
        self.say.line(&stop::stopped_line(self.dir.path(), here));
        TrainError::Stopped {
            epochs_done: here.0,
            step: here.1,
        }
    }

    /// Evaluates the network on the validation and test splits (no dropout).
    pub fn evaluate(&self) -> Result<Evaluation> {
        let batch_size = self.config.config.training.batch_size;
        Ok(Evaluation {
            validation: evaluate(&self.model.net, &self.data.validation, batch_size)?,
            test: evaluate(&self.model.net, &self.data.test, batch_size)?,
        })
    }

    /// Writes the checkpoint of the epochs finished so far.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.checkpoints
            .save(&self.model.varmap, &self.model.sgd, &mut self.state)
    }

    /// One whole epoch: training steps, evaluation when due (every `training.eval_every`
    /// epochs and the last), its `metrics.csv` row, the stuck check and the checkpoint. `None`
    /// when a non-finite loss ended the run during the epoch.
    pub fn run_epoch(&mut self) -> Result<Option<EpochMetrics>> {
        let started = Instant::now();
        // Seconds an earlier process spent on this epoch's first steps.
        let earlier = self.state.partial.seconds;
        let Some(trained) = self.train_epoch()? else {
            return Ok(None);
        };
        let epoch = self.state.epoch + 1; // 1-based, the one just trained
        let epochs = self.epochs_planned();
        let evaluate_now = epoch == epochs || epoch % self.config.config.training.eval_every == 0;
        let evaluation = if evaluate_now {
            self.evaluate()?
        } else {
            Evaluation::default()
        };
        let error = |r: Option<(f64, f64)>| r.map(|(_, acc)| 100.0 * (1.0 - acc));
        self.state
            .best
            .record(epoch, error(evaluation.validation), error(evaluation.test));
        let seconds = earlier + started.elapsed().as_secs_f64();
        let row = EpochMetrics {
            epoch,
            lr: trained.lr,
            train_loss: trained.loss,
            train_acc: trained.accuracy,
            val_loss: evaluation.validation.map(|v| v.0),
            val_acc: evaluation.validation.map(|v| v.1),
            test_loss: evaluation.test.map(|v| v.0),
            test_acc: evaluation.test.map(|v| v.1),
            seconds,
            images_per_sec: trained.images as f64 / trained.seconds.max(1e-9),
        };
        self.dir.append_metrics(&row)?;
        let stop = self.stuck.end_epoch(epoch, trained.loss, trained.accuracy);
        self.state.epoch = epoch;
        self.state.stuck_count = self.stuck.count;
        self.state.elapsed_seconds += seconds;
        self.checkpoint()?;
        self.epochs_this_process += 1;
        let remaining = (epochs - epoch) as f64 * self.state.elapsed_seconds / epoch as f64;
        self.say
            .epoch_line(&self.bar, &self.config.model, &row, epochs, remaining);
        if stop.is_some() {
            self.diverged = stop;
        }
        if let Some(observe) = &self.on_epoch_end {
            observe(&EpochEnd {
                run_dir: self.dir.path(),
                metrics: &row,
                epochs_planned: epochs,
                epochs_this_process: self.epochs_this_process,
                finished: self.is_finished(),
            });
        }
        Ok(Some(row))
    }
}
