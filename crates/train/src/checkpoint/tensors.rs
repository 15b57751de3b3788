//! Named tensors in safetensors files: weights of a `VarMap`, and the optimizer's momentum
//! buffers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use allconv_runs::files;
use candle_core::{Device, Tensor};

use allconv_runs::IoContext;

use crate::error::{Result, TrainError};
use crate::optim::Sgd;
use crate::vars::named_vars;

/// Writes named tensors as safetensors, atomically (temporary file, flush, rename).
pub fn save_tensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let tmp = files::temp_path(path);
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
    Ok(files::rename(&tmp, path)?)
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
        let t = tensors.get(name).ok_or_else(|| {
            err(format!(
                "no tensor for parameter `{name}` (the model expects shape {:?})",
                var.dims()
            ))
        })?;
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

/// Writes the optimizer's velocity buffers as safetensors, keyed by parameter name.
pub fn save_momentum(path: &Path, sgd: &Sgd) -> Result<()> {
    save_tensors(path, &sgd.momentum_buffers())
}

/// Reads velocity buffers written by [`save_momentum`] into the optimizer; a mismatch names the
/// file and the parameter.
pub fn load_momentum(path: &Path, sgd: &mut Sgd) -> Result<()> {
    let buffers = load_tensors(path, &sgd.device())?;
    sgd.set_momentum_buffers(&buffers).map_err(|e| match e {
        TrainError::Checkpoint { reason, .. } => TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })
}
