//! [`Trainer::train_epoch`]: the SGD steps of one epoch, in the order, with the augmentation
//! and the dropout masks that depend only on (seed, epoch, step), so that a resumed epoch
//! trains exactly the steps an uninterrupted one would.

use std::time::Instant;

use allconv_cifar::{EpochAugmentation, Order};
use allconv_models::Mode;
use candle_nn::Optimizer;

use super::options::StepEnd;
use super::steps::{dropout_seed, PendingSteps};
use super::{TrainedEpoch, Trainer};
use crate::checkpoint::PartialEpoch;
use crate::divergence;
use crate::error::Result;
#[cfg(doc)] // Named in the documentation.
use crate::{RunOptions, TrainError};

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
        self.model.sgd.set_learning_rate(lr);
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
            let logits = self.model.net.forward(&x, mode)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            self.model.sgd.backward_step(&loss)?;
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
}
