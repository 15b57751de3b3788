//! [`run`]: one run from its folder's lock to its result, the steps of [`Trainer`] strung
//! together.

use allconv_runs::RunResult;

use super::{EpochEnd, Opened, RunOptions, Trainer};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};

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
