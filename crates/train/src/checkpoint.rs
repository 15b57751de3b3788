//! Checkpoints: weights, momentum buffers and trainer state of a run after an epoch.
//!
//! Files of epoch `k` are `weights-000k.safetensors` and `momentum-000k.safetensors`, written under
//! a temporary name and renamed; `state.json`, written last the same way, names them. A process
//! killed at any moment therefore leaves `state.json` pointing at a complete, consistent set of
//! files (the previous epoch's or the new one's); older files are deleted only afterwards.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, TrainError};
use crate::fsutil;

/// Name of the trainer-state file inside `checkpoint/`.
pub const STATE_FILE: &str = "state.json";

/// Writes named tensors as safetensors, atomically (temporary file, flush, rename).
pub fn save_tensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let tmp = fsutil::temp_path(path);
    let map: HashMap<&str, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.as_str(), v.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&map, &tmp).map_err(|e| TrainError::Checkpoint {
        path: tmp.clone(),
        reason: format!("cannot write safetensors: {e}"),
    })?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .at(&tmp)?;
    fsutil::rename(&tmp, path)
}

/// Reads every tensor of a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    if !path.exists() {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: "file not found".into(),
        });
    }
    let map = candle_core::safetensors::load(path, device).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: format!("not a readable safetensors file: {e}"),
    })?;
    Ok(map.into_iter().collect())
}

/// The named variables of a `VarMap`, sorted by name.
pub fn named_vars(varmap: &candle_nn::VarMap) -> Vec<(String, candle_core::Var)> {
    let mut vars: Vec<_> = varmap
        .data()
        .lock()
        .expect("VarMap mutex poisoned")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Current values of every variable of a `VarMap`, by name.
pub fn weights_of(varmap: &candle_nn::VarMap) -> BTreeMap<String, Tensor> {
    named_vars(varmap)
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect()
}

/// Saves the variables of a `VarMap` (PyTorch-style names such as `conv1.weight`).
pub fn save_weights(path: &Path, varmap: &candle_nn::VarMap) -> Result<()> {
    save_tensors(path, &weights_of(varmap))
}

/// Loads weights into a `VarMap`: the file must hold exactly the map's names, each with the
/// variable's shape (so weights of another model are refused with the first mismatch named).
pub fn load_weights(path: &Path, varmap: &candle_nn::VarMap) -> Result<()> {
    let vars = named_vars(varmap);
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    let tensors = load_tensors(path, &device)?;
    let err = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    for name in tensors.keys() {
        if !vars.iter().any(|(n, _)| n == name) {
            let known: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
            return Err(err(format!(
                "tensor `{name}` is not a parameter of this model (parameters: {})",
                known.join(", ")
            )));
        }
    }
    for (name, var) in &vars {
        let t = tensors
            .get(name)
            .ok_or_else(|| err(format!("no tensor for parameter `{name}`")))?;
        if t.dims() != var.dims() {
            return Err(err(format!(
                "tensor `{name}` has shape {:?}, the model expects {:?}",
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Best and last evaluation results so far (errors in percent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BestMetrics {
    /// Test error of the last evaluated epoch.
    pub last_test_error: Option<f64>,
    /// Lowest test error.
    pub best_test_error: Option<f64>,
    /// 1-based epoch of the lowest test error.
    pub best_test_epoch: Option<usize>,
    /// Validation error of the last evaluated epoch.
    pub last_val_error: Option<f64>,
    /// Lowest validation error.
    pub best_val_error: Option<f64>,
    /// 1-based epoch of the lowest validation error.
    pub best_val_epoch: Option<usize>,
    /// Test error in the epoch of the lowest validation error.
    pub test_error_at_best_val: Option<f64>,
}

impl BestMetrics {
    /// Records one evaluated epoch (1-based) with its validation and test errors in percent.
    pub fn record(&mut self, epoch: usize, val_error: Option<f64>, test_error: Option<f64>) {
        if let Some(t) = test_error {
            self.last_test_error = Some(t);
            if self.best_test_error.is_none_or(|b| t < b) {
                self.best_test_error = Some(t);
                self.best_test_epoch = Some(epoch);
            }
        }
        if let Some(v) = val_error {
            self.last_val_error = Some(v);
            if self.best_val_error.is_none_or(|b| v < b) {
                self.best_val_error = Some(v);
                self.best_val_epoch = Some(epoch);
                self.test_error_at_best_val = test_error;
            }
        }
    }
}

/// The seeds a run derives all its randomness from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeds {
    /// Seed of the weight initialisation.
    pub init: u64,
    /// Seed of the per-epoch shuffle (`Order::Shuffled { seed, epoch }`).
    pub shuffle: u64,
    /// Base of the per-step dropout seeds (mixed with epoch and step).
    pub dropout: u64,
}

/// Everything besides tensors that a resumed run needs to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Finished epochs (the next epoch to run, 0-based).
    pub epoch: usize,
    /// Model name.
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Run seed.
    pub seed: u64,
    /// Seeds derived from it.
    pub seeds: Seeds,
    /// Best and last evaluation results.
    pub best: BestMetrics,
    /// Consecutive epochs so far that looked stuck at chance.
    pub stuck_count: usize,
    /// Seconds spent training and evaluating, over all processes.
    pub elapsed_seconds: f64,
    /// Weights file of this checkpoint, relative to `checkpoint/`.
    pub weights_file: String,
    /// Momentum file of this checkpoint, relative to `checkpoint/`.
    pub momentum_file: String,
}

/// A run's `checkpoint/` folder.
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    /// The checkpoint folder `dir` (created on first save).
    pub fn new(dir: PathBuf) -> Self {
        CheckpointDir { dir }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The trainer state of the last complete checkpoint, if any.
    pub fn state(&self) -> Result<Option<TrainerState>> {
        let path = self.dir.join(STATE_FILE);
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
        sgd: &crate::optim::Sgd,
        state: &mut TrainerState,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).at(&self.dir)?;
        state.weights_file = format!("weights-{:04}.safetensors", state.epoch);
        state.momentum_file = format!("momentum-{:04}.safetensors", state.epoch);
        save_weights(&self.dir.join(&state.weights_file), varmap)?;
        sgd.save_momentum(&self.dir.join(&state.momentum_file))?;
        let json = serde_json::to_string_pretty(state).map_err(|source| TrainError::Json {
            path: self.dir.join(STATE_FILE),
            source,
        })?;
        fsutil::write_atomic(&self.dir.join(STATE_FILE), json.as_bytes())?;
        self.remove_stale(state)
    }

    /// Loads the weights and momentum buffers that `state` names.
    pub fn restore(
        &self,
        state: &TrainerState,
        varmap: &candle_nn::VarMap,
        sgd: &mut crate::optim::Sgd,
    ) -> Result<()> {
        load_weights(&self.dir.join(&state.weights_file), varmap)?;
        sgd.load_momentum(&self.dir.join(&state.momentum_file))
    }

    /// Deletes tensor files (and leftover temporary files) not named by `state`.
    fn remove_stale(&self, state: &TrainerState) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours =
                name == STATE_FILE || name == state.weights_file || name == state.momentum_file;
            let checkpoint_file = name.starts_with("weights-")
                || name.starts_with("momentum-")
                || name.contains(".tmp-");
            if !ours && checkpoint_file {
                std::fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
        Ok(())
    }
}
