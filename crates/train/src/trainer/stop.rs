//! The stop protocol: when a run stops part-way (its [`StopHandle`] raised), how the stops that
//! made no progress are counted, and when a requeued process refuses to start because of them.
//!
//! A stop writes a checkpoint where the run stands (see `Trainer::stop_here`); a stop at the very
//! (epoch, step) the process resumed from trained nothing, and the count of such stops in a row
//! is kept in the checkpoint. A Slurm requeue whose run has stalled too often refuses to start,
//! saying why; a fresh start clears the count.

use std::path::Path;

use crate::checkpoint::TrainerState;
use crate::error::{Result, TrainError};
use crate::stop::StopHandle;

/// What the trainer watches to stop part-way, and where this process started.
pub(super) struct StopWatch {
    handle: StopHandle,
    /// (epoch, step) this process started from: a stop there made no progress.
    resumed_at: (usize, usize),
}

impl StopWatch {
    /// Watches `handle` for a run that this process resumed at `resumed_at` (epoch, step).
    pub(super) fn new(handle: StopHandle, resumed_at: (usize, usize)) -> Self {
        StopWatch { handle, resumed_at }
    }

    /// Whether the run is asked to stop.
    pub(super) fn requested(&self) -> bool {
        self.handle.is_stopped()
    }

    /// The count of stops in a row without progress after a stop at `here` (epoch, step), when
    /// it was `before`: one more where this process started, else none.
    pub(super) fn stalled_after_stop_at(&self, here: (usize, usize), before: usize) -> usize {
        if here == self.resumed_at {
            before + 1
        } else {
            0
        }
    }
}

/// Applies the requeue policy to a run about to train: `Some(limit)` (a requeued process)
/// refuses a run stopped `limit` times in a row without progress ([`TrainError::NoProgress`]);
/// `None` (a fresh start) clears the count.
pub(super) fn check_requeue(limit: Option<usize>, state: &mut TrainerState) -> Result<()> {
    match limit {
        Some(limit) if limit > 0 && state.stalled_stops >= limit => Err(TrainError::NoProgress {
            stops: state.stalled_stops,
            epoch: state.epoch + 1,
            step: state.step,
        }),
        Some(_) => Ok(()),
        None => {
            state.stalled_stops = 0;
            Ok(())
        }
    }
}

/// The line said when a run in `run_dir` stopped at `here` (epoch, step) with its checkpoint.
pub(super) fn stopped_line(run_dir: &Path, here: (usize, usize)) -> String {
    format!(
        "{}: stopped on request {} (checkpoint written)",
        run_dir.display(),
        TrainError::position(here.0, here.1)
    )
}
