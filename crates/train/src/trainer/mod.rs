//! One training run in its run folder, in steps: [`Trainer::open`] (lock, skip a finished run,
//! provenance, data, network, resume), [`Trainer::train_epoch`], [`Trainer::evaluate`],
//! [`Trainer::checkpoint`] (or all three as [`Trainer::run_epoch`]) and [`Trainer::finish`]
//! (final weights, `result.json`). [`run`] strings them together.

mod open;
mod options;
mod progress;
mod record;
mod saved_config;
mod steps;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use allconv_cifar::{EpochAugmentation, Order};
use allconv_models::{Mode, Network};
use allconv_runs::{EpochMetrics, RunDir, RunLock, RunResult, RunStatus};
use candle_core::{Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use indicatif::ProgressBar;

use crate::checkpoint::{self, CheckpointDir, PartialEpoch, TrainerState, WeightsInfo};
use crate::config::{RunConfig, TrainingConfig};
use crate::divergence::{self, StuckDetector};
use crate::error::{Result, TrainError};
use crate::optim::{Sgd, StepSchedule};
use open::DeviceData;
pub use options::{EpochEnd, EpochHook, Progress, RunOptions};
use progress::Reporter;
use steps::PendingSteps;
pub use steps::{dropout_seed, evaluate};

/// Process-wide settings of the compute device that a run's configuration asks for; called once
/// per run before the network is built.
pub fn apply_device_settings(training: &TrainingConfig) {
    allconv_models::ops::set_tf32(training.precision.is_tf32());
    // Deterministic cuDNN algorithms only (CUDA); the CPU ops are deterministic regardless.
    allconv_models::ops::set_deterministic(training.deterministic);
    // `auto` leaves the engine the device gate chose (our own unless it failed the check).
    if let Some(engine) = training.conv_engine.fixed() {
        allconv_models::ops::set_conv_engine(engine);
    }
}

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
    parameters: usize,
    dir: RunDir,
    _lock: RunLock,
    say: Reporter,
    checkpoints: CheckpointDir,
    data: DeviceData,
    varmap: VarMap,
    net: Network,
    sgd: Sgd,
    state: TrainerState,
    schedule: StepSchedule,
    stuck: StuckDetector,
    diverged: Option<String>,
    bar: ProgressBar,
    epochs_this_process: usize,
    stop: StopRequest,
    /// (epoch, step) this process started from: a stop there made no progress.
    resumed_at: (usize, usize),
}

/// When the run is to stop part-way: a flag raised from outside, or a step count (test hook).
#[derive(Default)]
struct StopRequest {
    flag: Option<&'static AtomicBool>,
    after_steps: Option<usize>,
    steps_this_process: usize,
}

impl StopRequest {
    fn requested(&self) -> bool {
        self.flag.is_some_and(|f| f.load(Ordering::SeqCst))
            || self.after_steps == Some(self.steps_this_process)
    }
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
            self.stop.steps_this_process += 1;
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

    /// Watches `flag` (and the `after_steps` test hook) for a request to stop part-way.
    fn watch_stop(&mut self, flag: Option<&'static AtomicBool>, after_steps: Option<usize>) {
        self.stop.flag = flag;
        self.stop.after_steps = after_steps;
    }

    /// Writes the checkpoint of the current position (`state.epoch`, `state.step`) on a stop
    /// request and returns the error that ends the run; a stop where this process started
    /// counts as one more stop without progress.
    fn stop_here(&mut self) -> TrainError {
        self.bar.finish_and_clear();
        let here = (self.state.epoch, self.state.step);
        self.state.stalled_stops = if here == self.resumed_at {
            self.state.stalled_stops + 1
        } else {
            0
        };
        if let Err(e) = self.checkpoint() {
            return e;
        }
        self.say.line(&format!(
            "{}: stopped on request at step {} of epoch {} (checkpoint written)",
            self.dir.path().display(),
            here.1,
            here.0 + 1
        ));
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
        Ok(Some(row))
    }

    /// Ends a finished run: the final weights (unless it diverged) and `result.json`.
    pub fn finish(self) -> Result<RunResult> {
        if !self.is_finished() {
            return Err(TrainError::Config(format!(
                "{}: finish asked for after {} of {} epochs",
                self.dir.path().display(),
                self.state.epoch,
                self.epochs_planned()
            )));
        }
        self.bar.finish_and_clear();
        if self.diverged.is_none() {
            checkpoint::save_weights(
                &self.dir.final_weights_path(),
                &self.varmap,
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
            parameters: self.parameters,
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

/// Trains one run into its folder (`config.run_dir()`), resuming from its checkpoint if there is
/// one and returning the existing result without training if `result.json` is already there.
///
/// Divergence (non-finite loss, stuck at chance) ends the run normally with status `diverged`.
/// A second process on the same folder gets [`allconv_runs::RunsError::Locked`].
pub fn run(config: &RunConfig, options: &RunOptions) -> Result<RunResult> {
    let mut trainer = match Trainer::open(config, options)? {
        Opened::Finished(result) => return Ok(*result),
        Opened::Ready(trainer) => trainer,
    };
    let stalled = trainer.state.stalled_stops;
    match options.max_stalled_stops {
        Some(limit) if limit > 0 && stalled >= limit => {
            trainer.bar.finish_and_clear();
            return Err(TrainError::NoProgress {
                stops: stalled,
                epoch: trainer.state.epoch + 1,
                step: trainer.state.step,
            });
        }
        Some(_) => {}
        None => trainer.state.stalled_stops = 0,
    }
    trainer.watch_stop(options.stop, options.stop_after_steps);
    while !trainer.is_finished() {
        if trainer.stop.requested() {
            return Err(trainer.stop_here());
        }
        let Some(row) = trainer.run_epoch()? else {
            continue;
        };
        let end = EpochEnd {
            run_dir: trainer.dir.path(),
            metrics: &row,
            epochs_planned: trainer.epochs_planned(),
            epochs_this_process: trainer.epochs_this_process,
            finished: trainer.is_finished(),
        };
        let stop_here = !end.finished && options.stop_after_epochs == Some(end.epochs_this_process);
        let hook_stops = options
            .on_epoch_end
            .as_ref()
            .is_some_and(|hook| hook(&end).is_break());
        if stop_here || (hook_stops && !end.finished) {
            trainer.bar.finish_and_clear();
            return Err(TrainError::Interrupted {
                epochs_done: trainer.epochs_done(),
            });
        }
    }
    trainer.finish()
}

/// Reads the final weights of a finished run folder (for checks and fine-tuning).
pub fn final_weights(run_dir: &Path) -> Result<std::collections::BTreeMap<String, Tensor>> {
    checkpoint::load_tensors(&RunDir::new(run_dir).final_weights_path(), &Device::Cpu)
}
