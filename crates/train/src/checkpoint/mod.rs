//! Checkpoints: weights, momentum buffers and trainer state of a run after an epoch, or part-way
//! through one when the run was told to stop.
//!
//! Files of epoch `k` are `weights-000k.safetensors` and `momentum-000k.safetensors` (with
//! `-step-00000s` before the suffix for one written after step `s` of epoch `k + 1`; names from
//! [`allconv_runs::CheckpointFiles`]), written under a temporary name and renamed;
//! `state.json`, written last the same way, names them. A process killed at any moment therefore
//! leaves `state.json` pointing at a complete, consistent set of files (the previous epoch's or
//! the new one's); older files are deleted only afterwards. Every tensor file carries the md5
//! of its tensors, checked when it is read ([`read_tensor_file`]); weights files also say which network
//! they are for ([`WeightsInfo`]).

mod state;
mod tensors;
mod weights_info;

pub use state::{PartialEpoch, Seeds, TrainerState};
pub use tensors::{
    load_momentum, load_tensors, load_weights, read_tensor_file, save_momentum, save_tensors,
    save_tensors_with, save_weights, weights_of, TensorFile, TENSORS_MD5_KEY,
};
pub use weights_info::WeightsInfo;

use allconv_runs::{files, CheckpointFiles};

use allconv_runs::IoContext;

use crate::error::{Result, TrainError};
use crate::optim::Sgd;

/// A run's `checkpoint/` folder.
pub struct CheckpointDir {
    files: CheckpointFiles,
    info: Option<WeightsInfo>,
}

impl CheckpointDir {
    /// The checkpoint folder of these files (created on first save).
    pub fn new(files: CheckpointFiles) -> Self {
        CheckpointDir { files, info: None }
    }

    /// The same folder, its weights files recording what network they are for.
    pub fn describing(self, info: WeightsInfo) -> Self {
        CheckpointDir {
            info: Some(info),
            ..self
        }
    }

    /// The folder's files.
    pub fn files(&self) -> &CheckpointFiles {
        &self.files
    }

    /// The trainer state of the last complete checkpoint, if any.
    pub fn state(&self) -> Result<Option<TrainerState>> {
        let path = self.files.state_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).at(&path)?;
        let state = serde_json::from_str(&text).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        Ok(Some(state))
    }

    /// Saves weights, momentum buffers and `state` (whose `epoch` names the files), state last,
    /// then deletes the files of older checkpoints. `state.weights_file` and `momentum_file` are
    /// filled in here.
    pub fn save(
        &self,
        varmap: &candle_nn::VarMap,
        sgd: &Sgd,
        state: &mut TrainerState,
    ) -> Result<()> {
        let dir = self.files.path();
        std::fs::create_dir_all(dir).at(dir)?;
        state.weights_file = CheckpointFiles::weights_name_at(state.epoch, state.step);
        state.momentum_file = CheckpointFiles::momentum_name_at(state.epoch, state.step);
        save_weights(
            &self.files.file(&state.weights_file),
            varmap,
            self.info.as_ref(),
        )?;
        save_momentum(&self.files.file(&state.momentum_file), sgd)?;
        let path = self.files.state_path();
        let json = serde_json::to_string_pretty(state).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        files::write_atomic(&path, json.as_bytes())?;
        self.remove_stale(state)
    }

    /// Loads the weights and momentum buffers that `state` names (each checked against its
    /// checksum), then deletes every other tensor file: a save that failed after its tensors
    /// but before `state.json` (a full disk, a kill) leaves complete files of a newer epoch that
    /// no state points to. Returns the files that had no checksum to check (written by an
    /// earlier version).
    pub fn restore(
        &self,
        state: &TrainerState,
        varmap: &candle_nn::VarMap,
        sgd: &mut Sgd,
    ) -> Result<Vec<std::path::PathBuf>> {
        let weights = self.files.file(&state.weights_file);
        let momentum = self.files.file(&state.momentum_file);
        let mut unverified = Vec::new();
        if !load_weights(&weights, varmap)?.verified {
            unverified.push(weights);
        }
        if !load_momentum(&momentum, sgd)? {
            unverified.push(momentum);
        }
        self.remove_stale(state)?;
        Ok(unverified)
    }

    /// Deletes tensor files (and leftover temporary files) not named by `state`.
    fn remove_stale(&self, state: &TrainerState) -> Result<()> {
        let dir = self.files.path();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let current = name == state.weights_file || name == state.momentum_file;
            if !current && CheckpointFiles::is_replaceable(&name) {
                std::fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
        Ok(())
    }
}
