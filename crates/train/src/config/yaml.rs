//! YAML in and out: the only module of the project that touches `serde_norway`.

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use allconv_runs::IoContext;

use crate::error::{Result, TrainError};

/// Reads a YAML file into `T`; the error names the file and, for a bad key, the key and line.
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).at(path)?;
    from_yaml_str(&text).map_err(|message| TrainError::Yaml {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses YAML text into `T`; the error message names the offending key and line.
pub fn from_yaml_str<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

/// Serialises `value` to YAML text.
pub fn to_yaml_string<T: Serialize>(value: &T) -> Result<String> {
    serde_norway::to_string(value)
        .map_err(|e| TrainError::Config(format!("cannot serialise to YAML: {e}")))
}

/// Writes `value` as YAML to `path` (through a temporary file and a rename, so a reader never sees
/// half a file).
pub fn save_yaml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    Ok(allconv_runs::files::write_atomic(
        path,
        to_yaml_string(value)?.as_bytes(),
    )?)
}
