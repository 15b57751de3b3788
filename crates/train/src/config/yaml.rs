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
    serde_norway::to_string(value).map_err(|e| TrainError::Unrepresentable {
        what: "a value in YAML",
        reason: e.to_string(),
    })
}

/// Writes `value` as YAML to `path` (through a temporary file and a rename, so a reader never sees
/// half a file).
pub fn save_yaml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    Ok(allconv_runs::files::write_atomic(
        path,
        to_yaml_string(value)?.as_bytes(),
    )?)
}

/// Whether YAML text holds a number that is not finite (`.nan`, `.inf`, anywhere in a list or
/// map); false for text that is not YAML.
pub(crate) fn has_non_finite_number(text: &str) -> bool {
    fn any_non_finite(value: &serde_norway::Value) -> bool {
        use serde_norway::Value;
        match value {
            Value::Number(n) => n.as_f64().is_some_and(|f| !f.is_finite()),
            Value::Sequence(items) => items.iter().any(any_non_finite),
            Value::Mapping(map) => map
                .iter()
                .any(|(k, v)| any_non_finite(k) || any_non_finite(v)),
            Value::Tagged(tagged) => any_non_finite(&tagged.value),
            Value::Null | Value::Bool(_) | Value::String(_) => false,
        }
    }
    serde_norway::from_str::<serde_norway::Value>(text).is_ok_and(|v| any_non_finite(&v))
}

/// Whether YAML text holds no value at all: empty, blank, or only comments.
pub(crate) fn is_empty_document(text: &str) -> bool {
    matches!(
        serde_norway::from_str::<serde_norway::Value>(text),
        Ok(serde_norway::Value::Null)
    ) && !text.lines().any(|l| {
        let l = l.trim();
        // An explicit `null` or `~` is a value the author wrote; only silence is empty.
        !l.is_empty() && !l.starts_with('#') && l != "---"
    })
}
