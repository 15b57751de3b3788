//! The options of [`run`] that are not part of the recorded configuration: progress display,
//! the stop request and the observers of steps and epochs, what a resume may accept, and the
//! program's source.

use std::path::Path;
use std::sync::Arc;

use allconv_runs::EpochMetrics;

use crate::config::SourceRevision;
use crate::stop::StopHandle;
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

/// What [`RunOptions::on_step`] is told after every SGD step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepEnd {
    /// The epoch being trained, from 1.
    pub epoch: usize,
    /// Steps of that epoch done, the one just trained included (from 1).
    pub step: usize,
    /// Steps this process has trained so far (1 after its first).
    pub steps_this_process: usize,
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

/// An observer of every SGD step (see [`RunOptions::on_step`]).
pub type StepHook = Arc<dyn Fn(&StepEnd) + Send + Sync>;

/// An observer of every epoch's end (see [`RunOptions::on_epoch_end`]).
pub type EpochHook = Arc<dyn Fn(&EpochEnd<'_>) + Send + Sync>;

/// Options of [`run`] that are not part of the recorded configuration.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Progress display.
    pub progress: Progress,
    /// Stops the run once raised ([`StopHandle::stop`], e.g. by a signal handler): after the SGD
    /// step under way (or before the next epoch) the trainer writes a checkpoint where it stands
    /// and returns [`TrainError::Stopped`]; the next process continues from that very step, as an
    /// uninterrupted run would. A handle raised before the run stops it before its first step.
    pub stop: StopHandle,
    /// Called after every SGD step, before the trainer looks at [`RunOptions::stop`] (so an
    /// observer that raises it stops the run at that step).
    pub on_step: Option<StepHook>,
    /// Called after every epoch's checkpoint, before the next epoch (an observer that raises
    /// [`RunOptions::stop`] stops the run there; after the last epoch the run ends normally).
    pub on_epoch_end: Option<EpochHook>,
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
        let observer = |hook: bool| hook.then_some("<callback>");
        f.debug_struct("RunOptions")
            .field("progress", &self.progress)
            .field("stop", &self.stop)
            .field("on_step", &observer(self.on_step.is_some()))
            .field("on_epoch_end", &observer(self.on_epoch_end.is_some()))
            .field("max_stalled_stops", &self.max_stalled_stops)
            .field("allow_changed_data", &self.allow_changed_data)
            .field("source", &self.source)
            .finish()
    }
}
