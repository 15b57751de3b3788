//! `--set key=value`: one generic override of any configuration key.
//!
//! The configuration is turned into its tree of sections, the value (parsed as YAML: a number,
//! `true`, a string, a list such as `[200, 250, 300]`, `null`) replaces the key, and the tree is
//! read back with every section's `deny_unknown_fields`, so a misspelt key is named with the
//! valid ones and a value of the wrong type is refused.

use serde_json::Value;

use super::ExperimentConfig;
use crate::error::{Result, TrainError};

/// One override: a dotted key (`optim.momentum`, `schedule.milestones`) and its new value.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Dotted key, `section.key`.
    pub key: String,
    /// The value.
    pub value: Value,
}

impl Setting {
    /// An override with a value already typed (e.g. a path, which must not be read as YAML).
    pub fn new(key: impl Into<String>, value: impl Into<Value>) -> Self {
        Setting {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The override as it is written on the command line.
    fn display(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

impl std::str::FromStr for Setting {
    type Err = String;

    /// Parses `key=value`; the value is read as YAML.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not key=value (e.g. optim.momentum=0.9)"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!(
                "`{text}`: the key must be dotted names such as optim.momentum"
            ));
        }
        let value: Value = super::from_yaml_str(value)
            .map_err(|e| format!("`{text}`: the value is not YAML: {e}"))?;
        Ok(Setting::new(key, value))
    }
}

impl ExperimentConfig {
    /// Applies overrides in order, then validates; an error names the override and the key, and
    /// leaves the configuration unchanged.
    pub fn apply(&mut self, settings: &[Setting]) -> Result<()> {
        // On a copy: a refused override leaves the configuration as it was.
        let mut next = self.clone();
        for setting in settings {
            let mut tree = serde_json::to_value(&next).map_err(|e| {
                TrainError::Config(format!("cannot represent the configuration: {e}"))
            })?;
            set_key(&mut tree, setting)?;
            next = serde_json::from_value(tree)
                .map_err(|e| TrainError::Config(format!("--set {}: {e}", setting.display())))?;
        }
        next.validate().map_err(TrainError::Config)?;
        *self = next;
        Ok(())
    }

    /// Every key of the configuration, dotted (`data.dir`, `optim.momentum`, ...), sorted.
    pub fn keys() -> Vec<String> {
        let tree = serde_json::to_value(ExperimentConfig::default())
            .expect("the default configuration is plain data");
        let mut keys = Vec::new();
        leaf_keys("", &tree, &mut keys);
        keys.sort();
        keys
    }
}

fn leaf_keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_keys(&name, child, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// Puts the setting's value at its key; sections that do not exist are created, so that reading
/// the tree back names them as unknown.
fn set_key(tree: &mut Value, setting: &Setting) -> Result<()> {
    let parts: Vec<&str> = setting.key.split('.').collect();
    let mut node = tree;
    for (depth, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(TrainError::Config(format!(
                "--set {}: `{}` is a value, not a section",
                setting.display(),
                parts[..depth].join(".")
            )));
        };
        if depth + 1 == parts.len() {
            map.insert(part.to_string(), setting.value.clone());
            return Ok(());
        }
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}
