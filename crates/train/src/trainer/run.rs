//! [`run`]: one run from its folder's lock to its result, the steps of [`Trainer`] strung
//! together.

use allconv_runs::RunResult;

use super::{stop, Opened, RunOptions, Trainer};
use crate::config::RunConfig;
use crate::error::Result;

/// Trains one run into its folder (`config.run_dir()`), resuming from its checkpoint if there is
/// one and returning the existing result without training if `result.json` is already there.
///
/// Divergence (non-finite loss, stuck at chance) ends the run normally with status `diverged`.
/// A second process on the same folder gets [`allconv_runs::RunsError::Locked`]; a raised
/// [`RunOptions::stop`] ends it with [`crate::TrainError::Stopped`] after a checkpoint.
pub fn run(config: &RunConfig, options: &RunOptions) -> Result<RunResult> {
    let mut trainer = match Trainer::open(config, options)? {
        Opened::Finished(result) => return Ok(*result),
        Opened::Ready(trainer) => trainer,
    };
    if let Err(refused) = stop::check_requeue(options.max_stalled_stops, &mut trainer.state) {
        trainer.bar.finish_and_clear();
        return Err(refused);
    }
    while !trainer.is_finished() {
        if trainer.stop.requested() {
            return Err(trainer.stop_here());
        }
        trainer.run_epoch()?;
    }
    trainer.finish()
}
