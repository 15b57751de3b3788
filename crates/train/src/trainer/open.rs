//! [`Trainer::open`]: the run folder's lock, a finished run skipped, the inputs checked against
//! the run's record, the data loaded, the network built and resumed from its checkpoint, and
//! the record written (once; a resume appends to it, see `record`).

use std::sync::Arc;

use allconv_runs::{RunDir, RunLock, RunResult};
use candle_core::Device;

use super::claim::Claim;
use super::data::{check_batches, load_data, DeviceData};
use super::device::apply_device_settings;
use super::model::Model;
use super::progress::Reporter;
use super::resume::{resume, Earlier};
use super::stop::StopWatch;
use super::{record, saved_config, Opened, RunOptions, Trainer};
use crate::checkpoint::{self, CheckpointDir, TrainerState, WeightsInfo};
use crate::config::{ConfigError, Provenance, RunConfig, SavedRunConfig};
use crate::divergence::StuckDetector;
use crate::error::{Result, TrainError};
use crate::optim::StepSchedule;

/// A run ready to train, all but its lock: what [`prepare`] made of the folder.
struct Prepared {
    say: Reporter,
    checkpoints: CheckpointDir,
    data: DeviceData,
    model: Model,
    state: TrainerState,
    steps_per_epoch: usize,
}

impl Trainer {
    /// Takes the run folder's lock ([`allconv_runs::RunsError::Locked`] when another process has
    /// it), returns the existing result of a finished run, else checks the inputs against the
    /// run's record (see [`RunOptions::allow_changed_data`]), loads the data, builds the network
    /// and optimizer, resumes from the checkpoint if there is one (refusing one written for
    /// another configuration, or one whose tensors fail their checksum), and writes the record.
    pub fn open(config: &RunConfig, options: &RunOptions) -> Result<Opened> {
        let dir = RunDir::new(config.run_dir());
        let claim = Claim::take(&dir)?;
        let say = Reporter::new(options.progress);
        let prepared = match finished(config, &dir, &say) {
            Ok(Some(result)) => return Ok(Opened::Finished(Box::new(result))),
            Ok(None) => prepare(config, options, &dir, say),
            Err(refused) => Err(refused),
        };
        match prepared {
            Ok(prepared) => Ok(Opened::Ready(Box::new(Trainer::ready(
                config,
                options,
                dir,
                claim.into_lock(),
                prepared,
            )))),
            Err(refused) => {
                claim.withdraw();
                Err(refused)
            }
        }
    }

    /// The trainer of a prepared run holding `lock`: its progress bar placed where the run
    /// stands, the stuck check and the stop request watched from there.
    fn ready(
        config: &RunConfig,
        options: &RunOptions,
        dir: RunDir,
        lock: RunLock,
        prepared: Prepared,
    ) -> Trainer {
        let Prepared {
            say,
            checkpoints,
            data,
            model,
            state,
            steps_per_epoch,
        } = prepared;
        let exp = &config.config;
        let bar = say.bar(
            (exp.schedule.epochs * steps_per_epoch) as u64,
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
        Trainer {
            schedule: StepSchedule {
                base_lr: config.lr,
                milestones: exp.schedule.milestones.clone(),
                gamma: exp.schedule.gamma,
            },
            config: config.clone(),
            dir,
            _lock: lock,
            say,
            checkpoints,
            data: Arc::new(data),
            model,
            stop: StopWatch::new(options.stop.clone(), (state.epoch, state.step)),
            state,
            stuck,
            diverged,
            bar,
            epochs_this_process: 0,
            steps_this_process: 0,
            on_step: options.on_step.clone(),
            on_epoch_end: options.on_epoch_end.clone(),
        }
    }
}

/// The result of a run that has ended already, if it has. A finished run counts as this run
/// only under the configuration it finished with: asked for another (e.g. more epochs), it is
/// refused with the differing keys, as an unfinished one is, instead of being reported as done.
fn finished(config: &RunConfig, dir: &RunDir, say: &Reporter) -> Result<Option<RunResult>> {
    let Some(result) = dir.result()? else {
        return Ok(None);
    };
    saved_config::check_saved_config(dir, config, true)?;
    say.line(&format!(
        "{}: finished already ({}, {} epochs), skipping",
        dir.path().display(),
        result.status,
        result.epochs_run
    ));
    Ok(Some(result))
}

/// Everything of an unfinished run but the trainer itself: the inputs checked, the data
/// loaded, the network built, resumed or started fresh, and the record written.
fn prepare(
    config: &RunConfig,
    options: &RunOptions,
    dir: &RunDir,
    say: Reporter,
) -> Result<Prepared> {
    let checkpoints = CheckpointDir::new(dir.checkpoint()).describing(WeightsInfo::of(config));
    let (device, mut now, earlier) = examine(config, options, dir, &checkpoints)?;
    let (data, statistics_md5) = load_data(config, &device)?;
    now.preprocessing_md5 = statistics_md5;
    let steps_per_epoch = check_batches(config, data.train.len(), &device)?;
    let mut model = Model::build(config, &device)?;
    let (state, record) = match earlier {
        Some(earlier) => resume(
            config,
            options,
            dir,
            &checkpoints,
            &now,
            earlier,
            &say,
            &mut model,
        )?,
        None => start_fresh(config, dir, &now, &model)?,
    };
    // Written only once everything above has been checked, so that a configuration refused
    // for its data, weights or checkpoint leaves no config.yaml claiming the folder.
    crate::config::save_yaml(&dir.config_path(), &record)?;
    Ok(Prepared {
        say,
        checkpoints,
        data,
        model,
        state,
        steps_per_epoch,
    })
}

/// What this process reads and what the folder holds, compared before the data is prepared (a
/// fit takes minutes): the device opened, the provenance of this process (its preprocessing
/// statistics are filled in once they are fitted), and what a resume found.
fn examine(
    config: &RunConfig,
    options: &RunOptions,
    dir: &RunDir,
    checkpoints: &CheckpointDir,
) -> Result<(Device, Provenance, Option<Earlier>)> {
    let exp = &config.config;
    let saved_state = checkpoints.state()?;
    let saved_record = saved_config::check_saved_config(dir, config, saved_state.is_some())?;
    // Warnings are printed whatever the progress display: they are not progress.
    for warning in exp.warnings() {
        allconv_runs::errln!("warning: {warning}");
    }
    let device = exp.training.open_device()?;
    // Before the provenance, which records the CPU kernel path these settings choose.
    apply_device_settings(&exp.training)?;
    let now = Provenance::collect(
        &exp.data.resolved_dir(),
        exp.data.kind(),
        exp.training.device,
        &options.source,
    )?;
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
    Ok((device, now, earlier))
}

/// A run without a checkpoint: the weights of `training.init_from` if set, no metrics rows, the
/// state of epoch 0 and the record of this process.
fn start_fresh(
    config: &RunConfig,
    dir: &RunDir,
    now: &Provenance,
    model: &Model,
) -> Result<(TrainerState, SavedRunConfig)> {
    if let Some(init) = &config.config.training.init_from {
        checkpoint::load_weights(init, &model.varmap).map_err(|e| {
            TrainError::invalid(ConfigError::inconsistent(
                "training.init_from",
                format!("training.init_from: {}: {e}", init.display()),
            ))
        })?;
    }
    dir.truncate_metrics(0)?;
    Ok((
        TrainerState::fresh(config),
        record::fresh(config, now, (0, 0)),
    ))
}
