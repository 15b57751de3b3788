//! One epoch of a run: its SGD steps, the evaluation, the `metrics.csv` row and the checkpoint,
//! and the checkpoint written where a stop request found the run.

use std::time::Instant;

use allconv_cifar::{EpochAugmentation, Order};
use allconv_models::Mode;
use allconv_runs::EpochMetrics;
use candle_nn::Optimizer;

use super::options::{EpochEnd, StepEnd};
use super::steps::{dropout_seed, evaluate, PendingSteps};
use super::{stop, Evaluation, TrainedEpoch, Trainer};
use crate::checkpoint::PartialEpoch;
use crate::divergence;
use crate::error::{Result, TrainError};

impl Trainer {
    /// Trains the next epoch (every SGD step, losses read every `training.loss_read_every`
    /// steps). `None` when a non-finite loss ended the run in this epoch (its reason is kept
    /// for the result; no row and no checkpoint are written for it).
    ///
    /// A stop request ([`RunOptions::stop`]) seen after a step that is not the epoch's last
    /// writes a checkpoint at that step and returns [`TrainError::Stopped`]; an epoch resumed
    /// from such a checkpoint starts at its step, with its running sums.
    pub fn train_epoch(&mut self) -> Result<Option<TrainedEpoch>> {
        let training = self.config.config.training.clone();
        let epoch = self.state.epoch; // 0-based
        let lr = self.schedule.lr_at(epoch);
        self.sgd.set_learning_rate(lr);
        let started = Instant::now();
        let first = self.state.step;
        let before = std::mem::take(&mut self.state.partial);
        self.state.step = 0;
        let order = if training.shuffle {
            Order::Shuffled {
                seed: self.state.seeds.shuffle,
                epoch: epoch as u64,
            }
        } else {
            Order::Sequential
        };
        let mut loss_sum = before.loss_sum;
        let mut correct = before.correct;
        let mut seen = before.seen;
        let mut pending = PendingSteps::default();
        let batches =
            self.data
                .train
                .batches(training.batch_size, order, training.keep_last_batch)?;
        let last_step = batches.len();
        // Keyed by run seed, epoch and image index, so resume and batch size change no draw.
        let augment = if self.config.config.data.augment {
            Some(EpochAugmentation::new(
                self.config.seed,
                epoch as u64,
                &order.permutation(self.data.train.len()),
                // No batch is larger than the data (`training.batch_size` may be).
                training.batch_size.min(self.data.train.len()),
                self.data.train.device(),
            )?)
        } else {
            None
        };
        // The batches, augmentations and dropout seeds of the steps already done are skipped,
        // not drawn again: all depend only on (seed, epoch, step).
        for (step, batch) in batches.enumerate().skip(first) {
            let (x, y) = batch?;
            let x = match &augment {
                Some(augment) => augment.apply(&x, step * training.batch_size)?,
                None => x,
            };
            let mode = if training.dropout {
                Mode::Train {
                    dropout_seed: dropout_seed(self.state.seeds.dropout, epoch, step),
                }
            } else {
                Mode::Eval
            };
            let logits = self.net.forward(&x, mode)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            self.sgd.backward_step(&loss)?;
            pending.push(&loss, &logits, &y)?;
            self.bar.inc(1);
            self.steps_this_process += 1;
            if let Some(observe) = &self.on_step {
                observe(&StepEnd {
                    epoch: epoch + 1,
                    step: step + 1,
                    steps_this_process: self.steps_this_process,
                });
            }
            let stopping = step + 1 < last_step && self.stop.requested();
            if !stopping && pending.len() < training.loss_read_every && step + 1 < last_step {
                continue;
            }
            let first_step = step + 1 - pending.len();
            for (i, result) in pending.read()?.into_iter().enumerate() {
                if let Some(reason) =
                    divergence::non_finite_loss(result.loss, epoch + 1, first_step + i + 1)
                {
                    self.diverged = Some(reason);
                    self.state.elapsed_seconds += before.seconds + started.elapsed().as_secs_f64();
                    return Ok(None);
                }
                loss_sum += result.loss * result.batch as f64;
                correct += result.correct;
                seen += result.batch;
            }
            let elapsed = started.elapsed().as_secs_f64();
            if stopping {
                self.state.step = step + 1;
                self.state.partial = PartialEpoch {
                    loss_sum,
                    correct,
                    seen,
                    seconds: before.seconds + elapsed,
                };
                return Err(self.stop_here());
            }
            self.bar.set_message(format!(
                "epoch {}/{} loss {:.4} acc {:.1}% {:.0} img/s",
                epoch + 1,
                self.epochs_planned(),
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                seen as f64 / elapsed.max(1e-9)
            ));
        }
        Ok(Some(TrainedEpoch {
            lr,
            loss: loss_sum / seen as f64,
            accuracy: correct as f64 / seen as f64,
            images: seen,
            seconds: before.seconds + started.elapsed().as_secs_f64(),
        }))
    }

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
            validation: evaluate(&self.net, &self.data.validation, batch_size)?,
            test: evaluate(&self.net, &self.data.test, batch_size)?,
        })
    }

    /// Writes the checkpoint of the epochs finished so far.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.checkpoints
            .save(&self.varmap, &self.sgd, &mut self.state)
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
