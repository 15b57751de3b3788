//! The options of [`super::run`] that are not part of the recorded configuration: progress
//! display, stop requests and test hooks, what a resume may accept, and the program's source.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use allconv_runs::EpochMetrics;

use crate::config::SourceRevision;
#[cfg(doc)] // Named in the documentation.
use crate::{run, TrainError};

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

/// What [`RunOptions::on_epoch_end`] is told after every epoch's checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct EpochEnd<'a> {
    /// The run folder.
    pub run_dir: &'a Path,
    /// The epoch's row of `metrics.csv`.
    pub metrics: &'a EpochMetrics,
    /// Epochs the schedule plans.
    pub epochs_planned: usize,
    /// Epochs this process has trained so far (1 after its first).
    pub epochs_this_process: usize,
    /// Whether the run has ended (all epochs, or diverged): [`run`] writes the result next.
    pub finished: bool,
}

/// A callback after every epoch's checkpoint; [`ControlFlow::Break`] stops the run there with
/// [`TrainError::Interrupted`], as if the process had been killed (after the last epoch there is
/// nothing left to stop, and the run ends normally).
pub type EpochHook = Arc<dyn Fn(&EpochEnd<'_>) -> ControlFlow<()> + Send + Sync>;

/// Options of [`run`] that are not part of the recorded configuration.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Progress display.
    pub progress: Progress,
    /// Test hook: return [`TrainError::Interrupted`] after this many epochs of this process (after
    /// their checkpoint), as if the process had been killed there.
    pub stop_after_epochs: Option<usize>,
    /// Called after every epoch's checkpoint (tests use it to interrupt a run at a known point).
    pub on_epoch_end: Option<EpochHook>,
    /// Raised (by a signal handler) to stop the run: after the SGD step under way the trainer
    /// writes a checkpoint at that step and returns [`TrainError::Stopped`]; the next process
    /// continues from that very step, as an uninterrupted run would.
    pub stop: Option<&'static AtomicBool>,
    /// Test hook: stop as [`RunOptions::stop`] does after this many SGD steps of this process.
    pub stop_after_steps: Option<usize>,
    /// `Some(n)`: this process is a requeue of a stopped one (a Slurm restart), and it refuses
    /// to start ([`TrainError::NoProgress`]) when the run's last `n` stops each came before a
    /// single step was trained. `None`: a fresh start, which clears that count.
    pub max_stalled_stops: Option<usize>,
    /// Resume even when the data files or preprocessing statistics differ from the run's
    /// record (else [`TrainError::ChangedInputs`]); the change is recorded with both checksums.
    pub allow_changed_data: bool,
    /// The source the calling program was built from, recorded in the run's provenance.
    pub source: SourceRevision,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("progress", &self.progress)
            .field("stop_after_epochs", &self.stop_after_epochs)
            .field(
                "on_epoch_end",
                &self.on_epoch_end.as_ref().map(|_| "<callback>"),
            )
            .field("stop", &self.stop)
            .field("stop_after_steps", &self.stop_after_steps)
            .field("max_stalled_stops", &self.max_stalled_stops)
            .field("allow_changed_data", &self.allow_changed_data)
            .field("source", &self.source)
            .finish()
    }
}
