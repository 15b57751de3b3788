//! One training run in its run folder: data, network, SGD loop, evaluation, metrics, checkpoints,
//! resume, divergence and the final `result.json`.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use allconv_cifar::{batch_count, DeviceSplit, Order};
use allconv_models::{Mode, Network};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::checkpoint::{self, BestMetrics, CheckpointDir, Seeds, TrainerState};
use crate::config::{Provenance, RunConfig, SavedRunConfig};
use crate::divergence::{self, StuckDetector};
use crate::error::{Result, TrainError};
use crate::optim::{Sgd, SgdConfig, StepSchedule};
use crate::run_dir::{EpochMetrics, RunDir, RunResult, RunStatus};

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    /// A progress bar when stderr is a terminal, else one line per epoch.
    #[default]
    Auto,
    /// One line per epoch, never a bar.
    Lines,
    /// Nothing.
    Silent,
}

/// Options of [`run`] that are not part of the recorded configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Progress display.
    pub progress: Progress,
    /// Test hook: return [`TrainError::Interrupted`] after this many epochs of this process (after
    /// their checkpoint), as if the process had been killed there.
    pub stop_after_epochs: Option<usize>,
    /// Test hook: after this many epochs of this process (after their checkpoint), block until the
    /// process is killed, so a test can interrupt a run at a known point instead of racing it.
    pub hold_after_epochs: Option<usize>,
}

/// The dropout seed of one training step, a mix of run seed, epoch and step so every step draws
/// fresh masks and a resumed run draws the same ones (splitmix64 finaliser: consecutive inputs
/// give unrelated outputs).
pub fn dropout_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(step as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mean cross-entropy and accuracy (fraction) of `net` on `split` in evaluation mode (no dropout);
/// `None` for an empty split. The per-batch results stay on the device until one read at the end.
pub fn evaluate(
    net: &Network,
    split: &DeviceSplit,
    batch_size: usize,
) -> Result<Option<(f64, f64)>> {
    if split.is_empty() {
        return Ok(None);
    }
    let mut pending = PendingSteps::default();
    for batch in split.batches(batch_size, Order::Sequential, true)? {
        let (x, y) = batch?;
        let logits = net.forward(&x, Mode::Eval)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        pending.push(&loss, &logits, &y)?;
    }
    let mut loss_sum = 0.0;
    let mut correct = 0u64;
    for step in pending.read()? {
        loss_sum += step.loss * step.batch as f64;
        correct += step.correct;
    }
    let n = split.len() as f64;
    Ok(Some((loss_sum / n, correct as f64 / n)))
}

/// Losses and correct counts of steps not yet read from the device.
///
/// Why: `to_scalar` waits for the device to finish all queued work; doing it every step keeps a
/// GPU idle while the host prepares the next one. The tensors are detached so they do not keep
/// the step's autograd graph (all its activations) alive.
#[derive(Default)]
struct PendingSteps {
    losses: Vec<Tensor>,
    correct: Vec<Tensor>,
    batches: Vec<usize>,
}

/// One step's numbers, read back.
struct StepResult {
    loss: f64,
    correct: u64,
    batch: usize,
}

impl PendingSteps {
    fn push(&mut self, loss: &Tensor, logits: &Tensor, labels: &Tensor) -> Result<()> {
        self.losses.push(loss.detach());
        let correct = logits
            .detach()
            .argmax(1)?
            .eq(labels)?
            .to_dtype(DType::U32)?
            .sum_all()?;
        self.correct.push(correct);
        self.batches.push(labels.dims1()?);
        Ok(())
    }

    fn len(&self) -> usize {
        self.batches.len()
    }

    /// Reads every pending step (one transfer each for losses and counts) and clears.
    fn read(&mut self) -> Result<Vec<StepResult>> {
        if self.batches.is_empty() {
            return Ok(Vec::new());
        }
        let losses: Vec<f32> = Tensor::stack(&self.losses, 0)?.to_vec1()?;
        let correct: Vec<u32> = Tensor::stack(&self.correct, 0)?.to_vec1()?;
        let steps = losses
            .into_iter()
            .zip(correct)
            .zip(&self.batches)
            .map(|((loss, correct), &batch)| StepResult {
                loss: f64::from(loss),
                correct: u64::from(correct),
                batch,
            })
            .collect();
        self.losses.clear();
        self.correct.clear();
        self.batches.clear();
        Ok(steps)
    }
}

/// Trains one run into its folder (`config.run_dir()`), resuming from its checkpoint if there is
/// one and returning the existing result without training if `result.json` is already there.
///
/// Divergence (non-finite loss, stuck at chance) ends the run normally with status `diverged`.
/// A second process on the same folder gets [`TrainError::Locked`].
pub fn run(config: &RunConfig, options: &RunOptions) -> Result<RunResult> {
    let exp = &config.config;
    let spec = allconv_models::spec(&config.model, &exp.model)?;
    let dir = RunDir::new(config.run_dir());
    let _lock = dir.lock()?;
    let say = Reporter::new(options.progress);

    if let Some(result) = dir.result()? {
        say.line(&format!(
            "{}: finished already ({}, {} epochs), skipping",
            dir.path().display(),
            result.status,
            result.epochs_run
        ));
        return Ok(result);
    }
    if exp.training.deterministic && exp.training.device == crate::config::DeviceKind::Cuda {
        say.line("warning: deterministic mode asked for on CUDA: GPU reductions may differ in the last bits between runs");
    }

    let checkpoints = CheckpointDir::new(dir.checkpoint_path());
    let state = checkpoints.state()?;
    check_saved_config(&dir, config, state.is_some())?;

    let device = exp.training.device.open()?;
    let data_dir = exp.data.resolved_dir();
    let provenance = Provenance::collect(&data_dir, exp.training.device)?;
    crate::config::save_yaml(
        &dir.config_path(),
        &SavedRunConfig {
            model: config.model.clone(),
            lr: config.lr,
            seed: config.seed,
            config: exp.clone(),
            provenance,
        },
    )?;

    let raw = allconv_cifar::load_dir(&data_dir)?;
    let data = allconv_cifar::prepare(
        &raw,
        &exp.data.prepare_options(),
        exp.data.cache_dir.as_deref(),
    )?;
    drop(raw);
    if data.train.is_empty() {
        return Err(TrainError::Config(format!(
            "no training images left in {} after the validation split and train_subset",
            data_dir.display()
        )));
    }

    // Uploaded once: every batch is then gathered on the device (see `DeviceSplit`).
    let train = DeviceSplit::new(&data.train, &device)?;
    let validation = DeviceSplit::new(&data.validation, &device)?;
    let test = DeviceSplit::new(&data.test, &device)?;
    drop(data);
    allconv_models::ops::set_tf32(exp.training.tf32);

    let varmap = VarMap::new();
    let net = Network::new(&spec, &varmap, &device, config.seed)?;
    let mut sgd = Sgd::from_varmap(
        &varmap,
        SgdConfig {
            lr: config.lr,
            momentum: exp.optim.momentum,
            weight_decay: exp.optim.weight_decay,
            weight_decay_bias: exp.optim.weight_decay_bias,
        },
    )?;

    let mut state = match state {
        Some(state) => {
            checkpoints.restore(&state, &varmap, &mut sgd)?;
            dir.truncate_metrics(state.epoch)?;
            say.line(&format!(
                "{}: resuming after epoch {}/{}",
                dir.path().display(),
                state.epoch,
                exp.schedule.epochs
            ));
            state
        }
        None => {
            if let Some(init) = &exp.training.init_from {
                checkpoint::load_weights(init, &varmap)?;
            }
            dir.truncate_metrics(0)?;
            TrainerState {
                epoch: 0,
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
    };

    let schedule = StepSchedule {
        base_lr: config.lr,
        milestones: exp.schedule.milestones.clone(),
        gamma: exp.schedule.gamma,
    };
    let epochs = exp.schedule.epochs;
    let batch_size = exp.training.batch_size;
    let steps_per_epoch = batch_count(train.len(), batch_size, exp.training.keep_last_batch);
    let bar = say.bar(
        (epochs * steps_per_epoch) as u64,
        (state.epoch * steps_per_epoch) as u64,
        &format!("{} lr {} seed {}", config.model, config.lr, config.seed),
    );
    let mut stuck = StuckDetector {
        limit: exp.training.stuck_epochs,
        count: state.stuck_count,
    };
    // A run stopped as stuck whose process died before writing result.json stops again here,
    // exactly where an uninterrupted run stopped.
    let mut diverged: Option<String> = (stuck.limit > 0 && stuck.count >= stuck.limit).then(|| {
        format!(
            "stuck: training loss within {} of ln(10) and accuracy within 1 point of 10% for {} \
             consecutive epochs (up to epoch {})",
            divergence::STUCK_LOSS_TOLERANCE,
            stuck.count,
            state.epoch
        )
    });
    let mut epochs_this_process = 0;

    while diverged.is_none() && state.epoch < epochs {
        let epoch = state.epoch; // 0-based
        let lr = schedule.lr_at(epoch);
        sgd.set_learning_rate(lr);
        let started = Instant::now();
        let order = if exp.training.shuffle {
            Order::Shuffled {
                seed: state.seeds.shuffle,
                epoch: epoch as u64,
            }
        } else {
            Order::Sequential
        };

        let mut loss_sum = 0.0;
        let mut correct = 0u64;
        let mut seen = 0usize;
        let mut pending = PendingSteps::default();
        let read_every = exp.training.loss_read_every;
        let iter = train.batches(batch_size, order, exp.training.keep_last_batch)?;
        let last_step = iter.len();
        for (step, batch) in iter.enumerate() {
            let (x, y) = batch?;
            let mode = if exp.training.dropout {
                Mode::Train {
                    dropout_seed: dropout_seed(state.seeds.dropout, epoch, step),
                }
            } else {
                Mode::Eval
            };
            let logits = net.forward(&x, mode)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            sgd.backward_step(&loss)?;
            pending.push(&loss, &logits, &y)?;
            bar.inc(1);
            if pending.len() < read_every && step + 1 < last_step {
                continue;
            }
            let first_step = step + 1 - pending.len();
            for (i, result) in pending.read()?.into_iter().enumerate() {
                if let Some(reason) =
                    divergence::non_finite_loss(result.loss, epoch + 1, first_step + i + 1)
                {
                    diverged = Some(reason);
                    break;
                }
                loss_sum += result.loss * result.batch as f64;
                correct += result.correct;
                seen += result.batch;
            }
            if diverged.is_some() {
                break;
            }
            let elapsed = started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "epoch {}/{} loss {:.4} acc {:.1}% {:.0} img/s",
                epoch + 1,
                epochs,
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64,
                seen as f64 / elapsed.max(1e-9)
            ));
        }
        if diverged.is_some() {
            state.elapsed_seconds += started.elapsed().as_secs_f64();
            break;
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let train_loss = loss_sum / seen as f64;
        let train_acc = correct as f64 / seen as f64;

        let last = epoch + 1 == epochs;
        let evaluate_now = last || (epoch + 1) % exp.training.eval_every == 0;
        let (val, test) = if evaluate_now {
            (
                evaluate(&net, &validation, batch_size)?,
                evaluate(&net, &test, batch_size)?,
            )
        } else {
            (None, None)
        };
        let error = |r: Option<(f64, f64)>| r.map(|(_, acc)| 100.0 * (1.0 - acc));
        state.best.record(epoch + 1, error(val), error(test));
        let seconds = started.elapsed().as_secs_f64();
        let row = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss,
            train_acc,
            val_loss: val.map(|v| v.0),
            val_acc: val.map(|v| v.1),
            test_loss: test.map(|v| v.0),
            test_acc: test.map(|v| v.1),
            seconds,
            images_per_sec: seen as f64 / train_seconds.max(1e-9),
        };
        dir.append_metrics(&row)?;
        let stop = stuck.end_epoch(epoch + 1, train_loss, train_acc);

        state.epoch = epoch + 1;
        state.stuck_count = stuck.count;
        state.elapsed_seconds += seconds;
        checkpoints.save(&varmap, &sgd, &mut state)?;
        let remaining = (epochs - state.epoch) as f64 * state.elapsed_seconds / state.epoch as f64;
        say.epoch_line(&bar, &config.model, &row, epochs, remaining);

        if let Some(reason) = stop {
            diverged = Some(reason);
            break;
        }
        epochs_this_process += 1;
        if options.stop_after_epochs == Some(epochs_this_process) && state.epoch < epochs {
            bar.finish_and_clear();
            return Err(TrainError::Interrupted {
                epochs_done: state.epoch,
            });
        }
        if options.hold_after_epochs == Some(epochs_this_process) && state.epoch < epochs {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    }
    bar.finish_and_clear();

    if diverged.is_none() {
        checkpoint::save_weights(&dir.final_weights_path(), &varmap)?;
    }
    let result = RunResult {
        model: config.model.clone(),
        lr: config.lr,
        seed: config.seed,
        status: if diverged.is_some() {
            RunStatus::Diverged
        } else {
            RunStatus::Done
        },
        reason: diverged,
        epochs_run: state.epoch,
        epochs_planned: epochs,
        final_test_error: state.best.last_test_error,
        best_test_error: state.best.best_test_error,
        best_test_epoch: state.best.best_test_epoch,
        final_val_error: state.best.last_val_error,
        best_val_error: state.best.best_val_error,
        best_val_epoch: state.best.best_val_epoch,
        test_error_at_best_val: state.best.test_error_at_best_val,
        wall_seconds: state.elapsed_seconds,
        parameters: spec.parameter_count(),
    };
    dir.write_result(&result)?;
    say.line(&format!(
        "{}: {}{} after {} epochs, final test error {}",
        dir.path().display(),
        result.status,
        result
            .reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        result.epochs_run,
        result
            .final_test_error
            .map(|e| format!("{e:.2}%"))
            .unwrap_or_else(|| "n/a".into())
    ));
    Ok(result)
}

/// Refuses to continue a run folder whose `config.yaml` was written for a different run: every
/// recorded setting but the output root and the device must match.
fn check_saved_config(dir: &RunDir, config: &RunConfig, has_checkpoint: bool) -> Result<()> {
    let path = dir.config_path();
    if !path.exists() {
        return Ok(());
    }
    let saved: SavedRunConfig = crate::config::load_yaml(&path)?;
    let comparable = |model: &str, lr: f64, seed: u64, exp: &crate::config::ExperimentConfig| {
        let mut v = serde_json::json!({ "model": model, "lr": lr, "seed": seed, "config": exp });
        if let Some(c) = v.get_mut("config").and_then(|c| c.as_object_mut()) {
            c.remove("out");
            c.remove("grid");
            if let Some(t) = c.get_mut("training").and_then(|t| t.as_object_mut()) {
                t.remove("device");
            }
        }
        v
    };
    let old = comparable(&saved.model, saved.lr, saved.seed, &saved.config);
    let new = comparable(&config.model, config.lr, config.seed, &config.config);
    let mut differences = Vec::new();
    diff_json("", &old, &new, &mut differences);
    if differences.is_empty() || !has_checkpoint {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "{} was written for a different configuration ({}); delete the run folder or use another --out",
        path.display(),
        differences.join(", ")
    )))
}

fn diff_json(
    prefix: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff_json(
                    &key,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if old != new => out.push(format!("{prefix}: saved {old}, now {new}")),
        _ => {}
    }
}

/// Progress output: a bar on a terminal, lines otherwise, or nothing.
struct Reporter {
    mode: Progress,
    terminal: bool,
}

impl Reporter {
    fn new(mode: Progress) -> Self {
        Reporter {
            mode,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, text: &str) {
        if self.mode != Progress::Silent {
            eprintln!("{text}");
        }
    }

    fn bar(&self, total: u64, position: u64, prefix: &str) -> ProgressBar {
        if self.mode != Progress::Auto || !self.terminal {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {percent}% {msg} ETA {eta}")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar.set_position(position);
        bar.reset_eta();
        bar
    }

    fn epoch_line(
        &self,
        bar: &ProgressBar,
        model: &str,
        row: &EpochMetrics,
        epochs: usize,
        remaining_s: f64,
    ) {
        if self.mode == Progress::Silent {
            return;
        }
        let pct = |v: Option<f64>| {
            v.map(|a| format!("{:.2}%", 100.0 * a))
                .unwrap_or_else(|| "-".into())
        };
        let loss = |v: Option<f64>| v.map(|l| format!("{l:.4}")).unwrap_or_else(|| "-".into());
        let text = format!(
            "{model} epoch {}/{epochs} lr {} | train loss {:.4} acc {:.2}% | val loss {} acc {} | test loss {} acc {} | {:.1} s, {:.0} img/s, ETA {}",
            row.epoch,
            row.lr,
            row.train_loss,
            100.0 * row.train_acc,
            loss(row.val_loss),
            pct(row.val_acc),
            loss(row.test_loss),
            pct(row.test_acc),
            row.seconds,
            row.images_per_sec,
            format_duration(remaining_s)
        );
        if bar.is_hidden() {
            eprintln!("{text}");
        } else {
            bar.println(text);
        }
    }
}

/// `1h02m03s`-style duration.
fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Reads the final weights of a finished run folder (for checks and fine-tuning).
pub fn final_weights(run_dir: &Path) -> Result<std::collections::BTreeMap<String, Tensor>> {
    checkpoint::load_tensors(&RunDir::new(run_dir).final_weights_path(), &Device::Cpu)
}
