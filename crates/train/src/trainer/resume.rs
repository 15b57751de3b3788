//! Resuming a run from its checkpoint: the tensors restored, the record extended by this
//! process, the rows after the checkpoint dropped.

use allconv_runs::RunDir;

use super::model::Model;
use super::progress::Reporter;
use super::{record, RunOptions};
use crate::checkpoint::{CheckpointDir, TrainerState};
use crate::config::{Provenance, RunConfig, SavedRunConfig};
use crate::error::Result;

/// What a resume found in the run folder before the data was read.
pub(super) struct Earlier {
    pub(super) state: TrainerState,
    pub(super) record: SavedRunConfig,
    pub(super) changed_files: std::collections::BTreeMap<String, [String; 2]>,
}

/// Restores the checkpoint of `earlier` into the network and optimizer and returns its state
/// with the run's record extended by this process (see `record::resumed`).
#[allow(clippy::too_many_arguments)] // What `prepare` (open.rs) has made of the folder so far.
pub(super) fn resume(
    config: &RunConfig,
    options: &RunOptions,
    dir: &RunDir,
    checkpoints: &CheckpointDir,
    now: &Provenance,
    earlier: Earlier,
    say: &Reporter,
    model: &mut Model,
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
    for unverified in checkpoints.restore(&state, &model.varmap, &mut model.sgd)? {
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
