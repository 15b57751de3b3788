//! [`Trainer::train_epoch`]: the SGD steps of one epoch, in the order, with the augmentation
//! and the dropout masks that depend only on (seed, epoch, step), so that a resumed epoch
//! trains exactly the steps an uninterrupted one would.

use std::sync::Arc;
use std::time::Instant;

use allconv_cifar::{EpochAugmentation, Order};
use allconv_models::Mode;
use candle_core::Tensor;
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
        // The running sums of the steps an earlier process did (zero for a whole epoch).
        let mut sums = std::mem::take(&mut self.state.partial);
        let earlier_seconds = sums.seconds;
        self.state.step = 0;
        let order = self.order(epoch);
        let mut pending = PendingSteps::default();
        // The epoch's batches borrow the data while every step changes the trainer.
        let data = Arc::clone(&self.data);
        let batches = data
            .train
            .batches(training.batch_size, order, training.keep_last_batch)?;
        let last_step = batches.len();
        let augment = self.augmentation(epoch, order)?;
        // The batches, augmentations and dropout seeds of the steps already done are skipped,
        // not drawn again: all depend only on (seed, epoch, step).
        for (step, batch) in batches.enumerate().skip(first) {
            self.train_step(batch?, (epoch, step), augment.as_ref(), &mut pending)?;
            let stopping = step + 1 < last_step && self.stop.requested();
            if !stopping && pending.len() < training.loss_read_every && step + 1 < last_step {
                continue;
            }
            if !self.read_pending(&mut pending, (epoch, step), &mut sums)? {
                self.state.elapsed_seconds += earlier_seconds + started.elapsed().as_secs_f64();
                return Ok(None);
            }
            let elapsed = started.elapsed().as_secs_f64();
            if stopping {
                self.state.step = step + 1;
                self.state.partial = PartialEpoch {
                    seconds: earlier_seconds + elapsed,
                    ..sums
                };
                return Err(self.stop_here());
            }
            self.show_progress(epoch, &sums, elapsed);
        }
        Ok(Some(TrainedEpoch {
            lr,
            loss: sums.loss_sum / sums.seen as f64,
            accuracy: sums.correct as f64 / sums.seen as f64,
            images: sums.seen,
            seconds: earlier_seconds + started.elapsed().as_secs_f64(),
        }))
    }

    /// The order of the training images in `epoch` (0-based): shuffled by the run's shuffle
    /// seed and the epoch, or as stored.
    fn order(&self, epoch: usize) -> Order {
        if self.config.config.training.shuffle {
            Order::Shuffled {
                seed: self.state.seeds.shuffle,
                epoch: epoch as u64,
            }
        } else {
            Order::Sequential
        }
    }

    /// The augmentation of `epoch`'s training images when `data.augment` is on, keyed by run
    /// seed, epoch and image index, so that neither a resume nor the batch size changes a draw.
    fn augmentation(&self, epoch: usize, order: Order) -> Result<Option<EpochAugmentation>> {
        if !self.config.config.data.augment {
            return Ok(None);
        }
        let train = &self.data.train;
        Ok(Some(EpochAugmentation::new(
            self.config.seed,
            epoch as u64,
            &order.permutation(train.len()),
            // No batch is larger than the data (`training.batch_size` may be).
            self.config.config.training.batch_size.min(train.len()),
            train.device(),
        )?))
    }

    /// One SGD step on the batch `(x, y)` of `(epoch, step)` (both 0-based), augmented and with
    /// dropout as configured; its loss and accuracy stay on the device in `pending`. The step
    /// observer is told of it.
    fn train_step(
        &mut self,
        (x, y): (Tensor, Tensor),
        (epoch, step): (usize, usize),
        augment: Option<&EpochAugmentation>,
        pending: &mut PendingSteps,
    ) -> Result<()> {
        let training = &self.config.config.training;
        let x = match augment {
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
        Ok(())
    }

    /// Reads the pending steps, the last of which is `(epoch, step)` (0-based), into `sums`.
    /// False when one of their losses is not finite: the run has diverged there (the reason is
    /// kept for the result, naming that very step).
    fn read_pending(
        &mut self,
        pending: &mut PendingSteps,
        (epoch, step): (usize, usize),
        sums: &mut PartialEpoch,
    ) -> Result<bool> {
        let first_step = step + 1 - pending.len();
        for (i, result) in pending.read()?.into_iter().enumerate() {
            if let Some(reason) =
                divergence::non_finite_loss(result.loss, epoch + 1, first_step + i + 1)
            {
                self.diverged = Some(reason);
                return Ok(false);
            }
            sums.loss_sum += result.loss * result.batch as f64;
            sums.correct += result.correct;
            sums.seen += result.batch;
        }
        Ok(true)
    }

    /// The progress bar's message: the epoch's loss, accuracy and speed so far.
    fn show_progress(&self, epoch: usize, sums: &PartialEpoch, elapsed: f64) {
        self.bar.set_message(format!(
            "epoch {}/{} loss {:.4} acc {:.1}% {:.0} img/s",
            epoch + 1,
            self.epochs_planned(),
            sums.loss_sum / sums.seen as f64,
            100.0 * sums.correct as f64 / sums.seen as f64,
            sums.seen as f64 / elapsed.max(1e-9)
        ));
    }
}
