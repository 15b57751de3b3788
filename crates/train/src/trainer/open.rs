//! [`Trainer::open`]: the run folder's lock, a finished run skipped, the inputs checked against
//! the run's record, the data loaded, the network built and resumed from its checkpoint, and
//! the record written (once; a resume appends to it, see `record`).

use std::path::Path;

use allconv_models::Network;
use allconv_runs::{RunDir, RunLock};
use candle_nn::VarMap;

use super::data::{check_batches, load_data};
use super::device::apply_device_settings;
use super::progress::Reporter;
use super::resume::{resume, Earlier};
use super::stop::StopWatch;
use super::{record, saved_config, Opened, RunOptions, Trainer};
use crate::checkpoint::{self, CheckpointDir, TrainerState, WeightsInfo};
use crate::config::{Provenance, RunConfig};
use crate::divergence::StuckDetector;
use crate::error::{Result, TrainError};
use crate::optim::{Sgd, SgdConfig, StepSchedule};

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
            stop: StopWatch::new(options.stop.clone(), (state.epoch, state.step)),
            state,
            stuck,
            diverged,
            bar,
            epochs_this_process: 0,
            steps_this_process: 0,
            on_step: options.on_step.clone(),
            on_epoch_end: options.on_epoch_end.clone(),
        })))
    }
}
