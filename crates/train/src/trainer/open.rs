//! [`Trainer::open`]: the run folder's lock, a finished run skipped, the inputs checked against
//! the run's record, the data loaded, the network built and resumed from its checkpoint, and
//! the record written (once; a resume appends to it, see `record`).

use std::path::Path;

use allconv_cifar::{batch_count, DeviceSplit};
use allconv_models::Network;
use allconv_runs::{RunDir, RunLock};
use candle_core::Device;
use candle_nn::VarMap;

use super::progress::Reporter;
use super::{
    apply_device_settings, record, saved_config, Opened, RunOptions, StopRequest, Trainer,
};
use crate::checkpoint::{self, CheckpointDir, TrainerState, WeightsInfo};
use crate::config::{Provenance, RunConfig, SavedRunConfig};
use crate::divergence::StuckDetector;
use crate::error::{Result, TrainError};
use crate::optim::{Sgd, SgdConfig, StepSchedule};

/// The three splits, uploaded to the device once.
pub(super) struct DeviceData {
    pub(super) train: DeviceSplit,
    pub(super) validation: DeviceSplit,
    pub(super) test: DeviceSplit,
}

/// Loads, normalises and uploads the run's data; returns it with the md5 of the
/// preprocessing statistics it was normalised with.
fn load_data(config: &RunConfig, device: &Device) -> Result<(DeviceData, String)> {
    let exp = &config.config;
    let data_dir = exp.data.resolved_dir();
    let raw = allconv_cifar::load_dataset(exp.data.kind(), &data_dir)?;
    let data = allconv_cifar::prepare(
        &raw,
        &exp.data.prepare_options(),
        exp.data.cache_dir.as_deref(),
    )
    .map_err(|e| match e {
        // Name the configuration key, not the library's option.
        allconv_cifar::CifarError::InvalidOption { option, reason } => TrainError::Config(format!(
            "data.{option}: {reason} (data in {})",
            data_dir.display()
        )),
        other => other.into(),
    })?;
    drop(raw);
    if data.train.is_empty() {
        return Err(TrainError::Config(format!(
            "no training images left in {} after the validation split and train_subset",
            data_dir.display()
        )));
    }
    // Uploaded once: every batch is then gathered on the device (see `DeviceSplit`).
    Ok((
        DeviceData {
            train: DeviceSplit::new(&data.train, device)?,
            validation: DeviceSplit::new(&data.validation, device)?,
            test: DeviceSplit::new(&data.test, device)?,
        },
        data.statistics_md5,
    ))
}

/// Refuses a batch size that trains nothing, or that the CPU cannot hold.
fn check_batches(config: &RunConfig, train_len: usize, device: &Device) -> Result<usize> {
    let training = &config.config.training;
    if device.is_cpu() {
        // No step holds more images than the data has, whatever the batch size says.
        let spec = allconv_models::spec(&config.model, &config.config.model)?;
        let batch = training.batch_size.min(train_len);
        crate::memory::check_cpu_batch(&spec, batch, "training.batch_size")
            .map_err(TrainError::Config)?;
    }
    let steps_per_epoch = batch_count(train_len, training.batch_size, training.keep_last_batch);
    if steps_per_epoch == 0 {
        return Err(TrainError::Config(format!(
            "training.batch_size {} is larger than the {train_len} training images and \
             training.keep_last_batch is false: an epoch would train no SGD step; lower the \
             batch size or keep the last batch",
            training.batch_size
        )));
    }
    Ok(steps_per_epoch)
}

/// What a resume found in the run folder before the data was read.
struct Earlier {
    state: TrainerState,
    record: SavedRunConfig,
    changed_files: std::collections::BTreeMap<String, [String; 2]>,
}

impl Trainer {
    /// Takes the run folder's lock ([`allconv_runs::RunsError::Locked`] when another process has
    /// it), returns the existing result of a finished run, else checks the inputs against the
    /// run's record (see [`RunOptions::allow_changed_data`]), loads the data, builds the network
    /// and optimizer, resumes from the checkpoint if there is one (refusing one written for
    /// another configuration, or one whose tensors fail their checksum), and writes the record.
    pub fn open(config: &RunConfig, options: &RunOptions) -> Result<Opened> {
        let dir = RunDir::new(config.run_dir());
        let existed = dir.path().exists();
        // The nearest folder that is there already: taking the lock creates those below it
        // (up to the runs root itself when that is new).
        let there_before = dir.path().ancestors().find(|a| a.exists());
        let mut lock = Some(dir.lock()?);
        let opened = Self::open_locked(config, options, dir.path(), &mut lock);
        if let (Err(_), Some(_held), false) = (&opened, &lock, existed) {
            // Refused before anything was recorded: leave no folder behind that claims this
            // grid point, nor a runs root that the refused command made. The lock file goes
            // while still held, so no other process can hold it meanwhile; then the folders
            // this call created, if empty.
            let _ = std::fs::remove_file(dir.lock_path());
            let mut folder = Some(dir.path());
            while let Some(f) = folder.filter(|f| Some(*f) != there_before) {
                if std::fs::remove_dir(f).is_err() {
                    break;
                }
                folder = f.parent();
            }
        }
        opened
    }

    /// [`Trainer::open`] once the lock is held: `lock` moves into the trainer it returns.
    fn open_locked(
        config: &RunConfig,
        options: &RunOptions,
        dir: &Path,
        lock: &mut Option<RunLock>,
    ) -> Result<Opened> {
        let exp = &config.config;
        let dir = RunDir::new(dir.to_path_buf());
        let say = Reporter::new(options.progress);

        if let Some(result) = dir.result()? {
            // A finished run counts as this run only under the configuration it finished with:
            // asked for another (e.g. more epochs), it is refused with the differing keys, as an
            // unfinished one is, instead of being reported as done.
            saved_config::check_saved_config(&dir, config, true)?;
            say.line(&format!(
                "{}: finished already ({}, {} epochs), skipping",
                dir.path().display(),
                result.status,
                result.epochs_run
            ));
            return Ok(Opened::Finished(Box::new(result)));
        }

        let checkpoints = CheckpointDir::new(dir.checkpoint()).describing(WeightsInfo::of(config));
        let saved_state = checkpoints.state()?;
        let saved_record = saved_config::check_saved_config(&dir, config, saved_state.is_some())?;

        // Warnings are printed whatever the progress display: they are not progress.
        for warning in exp.warnings() {
            allconv_runs::errln!("warning: {warning}");
        }
        let device = exp.training.open_device()?;
        let mut now = Provenance::collect(
            &exp.data.resolved_dir(),
            exp.data.kind(),
            exp.training.device,
            &options.source,
        )?;
        // The data files are compared before the data is prepared (a fit takes minutes).
        let earlier = match (saved_state, saved_record) {
            (Some(state), Some(record)) => Some(Earlier {
                changed_files: record::check_data_files(
                    &dir.config_path(),
                    &record.provenance,
                    &now,
                    options.allow_changed_data,
                )?,
                state,
                record,
            }),
            (Some(state), None) => Some(Earlier {
                record: record::fresh(config, &now, (state.epoch, state.step)),
                state,
                changed_files: Default::default(),
            }),
            (None, _) => None,
        };
        if let Some(warning) = now.data_warning() {
            allconv_runs::errln!("{warning}");
        }
        let (data, statistics_md5) = load_data(config, &device)?;
        now.preprocessing_md5 = statistics_md5;
        let steps_per_epoch = check_batches(config, data.train.len(), &device)?;
        apply_device_settings(&exp.training);

        let spec = allconv_models::spec(&config.model, &exp.model)?;
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
        let (state, record) = match earlier {
            Some(earlier) => resume(
                config,
                options,
                &dir,
                &checkpoints,
                &now,
                earlier,
                &say,
                (&varmap, &mut sgd),
            )?,
            None => {
                if let Some(init) = &exp.training.init_from {
                    checkpoint::load_weights(init, &varmap).map_err(|e| {
                        TrainError::Config(format!("training.init_from: {}: {e}", init.display()))
                    })?;
                }
                dir.truncate_metrics(0)?;
                (
                    TrainerState::fresh(config),
                    record::fresh(config, &now, (0, 0)),
                )
            }
        };
        // Written only once everything above has been checked, so that a configuration refused
        // for its data, weights or checkpoint leaves no config.yaml claiming the folder.
        crate::config::save_yaml(&dir.config_path(), &record)?;

        let epochs = exp.schedule.epochs;
        let bar = say.bar(
            (epochs * steps_per_epoch) as u64,
            (state.epoch * steps_per_epoch + state.step) as u64,
            &format!("{} lr {} seed {}", config.model, config.lr, config.seed),
        );
        let stuck = StuckDetector {
            limit: exp.training.stuck_epochs,
            count: state.stuck_count,
            classes: exp.data.kind().num_classes(),
        };
        // A run stopped as stuck whose process died before writing result.json stops again here,
        // exactly where an uninterrupted run stopped.
        let diverged = stuck
            .stopped()
            .map(|what| format!("{what} (up to epoch {})", state.epoch));
        Ok(Opened::Ready(Box::new(Trainer {
            schedule: StepSchedule {
                base_lr: config.lr,
                milestones: exp.schedule.milestones.clone(),
                gamma: exp.schedule.gamma,
            },
            config: config.clone(),
            parameters: spec.parameter_count(),
            dir,
            _lock: lock
                .take()
                .expect("the lock is held until the trainer takes it"),
            say,
            checkpoints,
            data,
            varmap,
            net,
            sgd,
            resumed_at: (state.epoch, state.step),
            state,
            stuck,
            diverged,
            bar,
            epochs_this_process: 0,
            stop: StopRequest::default(),
        })))
    }
}

/// Restores the checkpoint of `earlier` into the network and optimizer and returns its state
/// with the run's record extended by this process (see `record::resumed`).
#[allow(clippy::too_many_arguments)] // The pieces of `open_locked` it continues from.
fn resume(
    config: &RunConfig,
    options: &RunOptions,
    dir: &RunDir,
    checkpoints: &CheckpointDir,
    now: &Provenance,
    earlier: Earlier,
    say: &Reporter,
    (varmap, sgd): (&VarMap, &mut Sgd),
) -> Result<(TrainerState, SavedRunConfig)> {
    let Earlier {
        state,
        record: saved,
        changed_files,
    } = earlier;
    state.check_belongs_to(config, &checkpoints.files().state_path())?;
    let at = (state.epoch, state.step);
    let (record, warnings) = record::resumed(
        &dir.config_path(),
        saved,
        now,
        at,
        changed_files,
        options.allow_changed_data,
    )?;
    for unverified in checkpoints.restore(&state, varmap, sgd)? {
        allconv_runs::errln!(
            "warning: {} has no checksum (written by an earlier version): resumed without \
             verifying its tensors",
            unverified.display()
        );
    }
    for warning in warnings {
        allconv_runs::errln!("warning: {}: {warning}", dir.path().display());
    }
    dir.truncate_metrics(state.epoch)?;
    let step = if state.step == 0 {
        String::new()
    } else {
        format!(", at step {} of epoch {}", state.step, state.epoch + 1)
    };
    say.line(&format!(
        "{}: resuming after epoch {}/{}{step}",
        dir.path().display(),
        state.epoch,
        config.config.schedule.epochs
    ));
    Ok((state, record))
}
