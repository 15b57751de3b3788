//! Named tensors in safetensors files: weights of a `VarMap`, and the optimizer's momentum
//! buffers; each file carries the md5 of its tensors in its metadata, checked on every read.
//!
//! The safetensors header checks shapes and offsets, nothing checks the values: a byte changed
//! inside a tensor (a damaged disk, a bad copy) would otherwise resume a run with other weights
//! without a word. Files written before the checksum existed, and weights written by other tools
//! (plain PyTorch names, no metadata), have none and are read as they are.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use allconv_runs::files;
use candle_core::{Device, Tensor};
use md5::{Digest, Md5};
use safetensors::View;

use allconv_runs::IoContext;

use super::weights_info::WeightsInfo;
use crate::error::{Result, TrainError};
use crate::optim::Sgd;
use crate::vars::named_vars;

/// The metadata key of the md5 of a file's tensors (the same key the ZCA cache uses).
pub const TENSORS_MD5_KEY: &str = "tensors_md5";

/// A safetensors file as read: its tensors, its metadata, and whether it had a checksum.
#[derive(Debug)]
pub struct TensorFile {
    /// The tensors, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The file's metadata (empty when it has none).
    pub metadata: BTreeMap<String, String>,
    /// True when the file recorded [`TENSORS_MD5_KEY`] and its tensors matched it; false when it
    /// recorded none (a mismatch is an error, never a file).
    pub verified: bool,
}

/// md5 over every tensor in name order: its name, dtype, shape and bytes, so that a renamed,
/// reshaped or altered tensor changes it.
fn tensors_md5<'a, V: View + 'a>(tensors: impl IntoIterator<Item = (&'a str, V)>) -> String {
    let mut sorted: Vec<(&str, V)> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Md5::new();
    for (name, view) in sorted {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(format!("{:?}", view.dtype()).as_bytes());
        for dim in view.shape() {
            hasher.update((*dim as u64).to_le_bytes());
        }
        hasher.update(&*view.data());
    }
    format!("{:x}", hasher.finalize())
}

/// Writes named tensors as safetensors with their checksum, atomically (temporary file, flush,
/// rename).
pub fn save_tensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    save_tensors_with(path, tensors, &BTreeMap::new())
}

/// [`save_tensors`] with further metadata entries (e.g. [`WeightsInfo`]).
pub fn save_tensors_with(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let tmp = files::temp_path(path);
    let on_cpu: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(k, v)| Ok((k.as_str(), v.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    let mut info: HashMap<String, String> = metadata.clone().into_iter().collect();
    info.insert(
        TENSORS_MD5_KEY.to_string(),
        tensors_md5(on_cpu.iter().map(|(k, t)| (*k, t))),
    );
    let bytes =
        safetensors::serialize(on_cpu.iter().map(|(k, t)| (*k, t)), Some(info)).map_err(|e| {
            TrainError::Checkpoint {
                path: tmp.clone(),
                reason: format!("cannot write safetensors: {e}"),
            }
        })?;
    let bytes = with_sorted_header(bytes).map_err(|reason| TrainError::Checkpoint {
        path: tmp.clone(),
        reason,
    })?;
    std::fs::write(&tmp, &bytes).at(&tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .at(&tmp)?;
    Ok(files::rename(&tmp, path)?)
}

/// The safetensors file `bytes` with the keys of its JSON header in sorted order.
///
/// Why: safetensors writes the metadata from a `HashMap`, whose order changes from map to map,
/// and equal weights must give equal files (a resumed run's final weights are compared byte for
/// byte with an uninterrupted run's). The data section is left as it is: its offsets count from
/// its own start, whatever the header's length.
fn with_sorted_header(bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    let length_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("no header length")?;
    let length = usize::try_from(u64::from_le_bytes(length_bytes)).map_err(|e| e.to_string())?;
    let header = bytes.get(8..8 + length).ok_or("a header past the end")?;
    let mut value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    value.sort_all_objects();
    let mut sorted = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    // The data section starts 8-byte aligned, as safetensors pads it (with spaces).
    while sorted.len() % 8 != 0 {
        sorted.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + sorted.len() + bytes.len() - 8 - length);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    out.extend_from_slice(&sorted);
    out.extend_from_slice(&bytes[8 + length..]);
    Ok(out)
}

/// Reads a safetensors file onto `device`, checking its tensors against the checksum it
/// records; a file whose tensors differ from it is refused, naming the file.
pub fn read_tensor_file(path: &Path, device: &Device) -> Result<TensorFile> {
    let err = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(err("file not found".into()));
    }
    let bytes = std::fs::read(path).at(path)?;
    let unreadable =
        |e: safetensors::SafeTensorError| err(format!("not a readable safetensors file: {e}"));
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(unreadable)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(unreadable)?;
    let verified = match metadata.get(TENSORS_MD5_KEY) {
        None => false,
        Some(recorded) => {
            let actual = tensors_md5(file.tensors().iter().map(|(k, v)| (k.as_str(), v)));
            if &actual != recorded {
                return Err(err(format!(
                    "the tensors' md5 is {actual} but the file records {recorded}: it was \
                     changed after it was written (a damaged disk or copy?); restore it from a \
                     copy (a run whose checkpoint it is starts over once its checkpoint folder \
                     is deleted)"
                )));
            }
            true
        }
    };
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| err(format!("not a readable safetensors file: {e}")))?;
    Ok(TensorFile {
        tensors: tensors.into_iter().collect(),
        metadata,
        verified,
    })
}

/// Reads every tensor of a safetensors file onto `device` (checked against its checksum when
/// it has one).
pub fn load_tensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    Ok(read_tensor_file(path, device)?.tensors)
}

/// Current values of every variable of a `VarMap`, by name.
pub fn weights_of(varmap: &candle_nn::VarMap) -> Result<BTreeMap<String, Tensor>> {
    Ok(named_vars(varmap)?
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect())
}

/// Saves the variables of a `VarMap` (PyTorch-style names such as `conv1.weight`), with what
/// network they are for in the metadata when `info` is given.
pub fn save_weights(
    path: &Path,
    varmap: &candle_nn::VarMap,
    info: Option<&WeightsInfo>,
) -> Result<()> {
    let metadata = info.map(WeightsInfo::to_metadata).unwrap_or_default();
    save_tensors_with(path, &weights_of(varmap)?, &metadata)
}

/// Loads weights into a `VarMap`: the file must hold exactly the map's names, each with the
/// variable's shape (so weights of another model are refused with the first mismatch named).
/// Returns the file's metadata and whether its checksum was verified.
pub fn load_weights(path: &Path, varmap: &candle_nn::VarMap) -> Result<TensorFile> {
    let vars = named_vars(varmap)?;
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    let file = read_tensor_file(path, &device)?;
    let tensors = &file.tensors;
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
    Ok(file)
}

/// Writes the optimizer's velocity buffers as safetensors, keyed by parameter name.
pub fn save_momentum(path: &Path, sgd: &Sgd) -> Result<()> {
    save_tensors(path, &sgd.momentum_buffers())
}

/// Reads velocity buffers written by [`save_momentum`] into the optimizer; a mismatch names the
/// file and the parameter. Returns whether the file's checksum was verified.
pub fn load_momentum(path: &Path, sgd: &mut Sgd) -> Result<bool> {
    let file = read_tensor_file(path, &sgd.device())?;
    sgd.set_momentum_buffers(&file.tensors)
        .map_err(|e| match e {
            TrainError::Checkpoint { reason, .. } => TrainError::Checkpoint {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })?;
    Ok(file.verified)
}
