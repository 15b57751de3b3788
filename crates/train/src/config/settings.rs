//! `--set key=value`: one generic override of any configuration key.
//!
//! The configuration is turned into its tree of sections, the value (parsed as YAML: a number,
//! `true`, a string, a list such as `[200, 250, 300]`, `null`) replaces the key, and the tree is
//! read back with every section's `deny_unknown_fields`, so a misspelt key is named with the
//! valid ones and a value of the wrong type is refused.

use serde_json::Value;

use super::{ConfigError, ExperimentConfig};
use crate::error::{Result, TrainError};

/// One override: a dotted key (`optim.momentum`, `schedule.milestones`) and its new value.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Dotted key, `section.key`.
    pub key: String,
    /// The value.
    pub value: Value,
    /// How the user wrote it (`--set optim.momentum=.95`, `--epochs 1`), for error messages.
    written: String,
}

impl Setting {
    /// An override with a value already typed (e.g. a path, which must not be read as YAML).
    pub fn new(key: impl Into<String>, value: impl Into<Value>) -> Self {
        let (key, value) = (key.into(), value.into());
        Setting {
            written: format!("--set {key}={}", shown(&value)),
            key,
            value,
        }
    }

    /// The override a command-line flag stands for (`--epochs 1` is `schedule.epochs`): errors
    /// about it name the flag as the user wrote it.
    pub fn from_flag(flag: &str, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let value = value.into();
        Setting {
            key: key.into(),
            written: format!("{flag} {}", shown(&value)),
            value,
        }
    }

    /// The override a flag stands for whose text is not the key's value (`--precision tf32` is
    /// `training.tf32: true`): errors about it quote `written`.
    pub fn from_flag_as_written(
        written: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        Setting {
            key: key.into(),
            value: value.into(),
            written: written.into(),
        }
    }

    /// The override as the user wrote it on the command line.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The error of a `problem` this override caused, naming it as the user wrote it.
    fn refused(&self, problem: ConfigError) -> TrainError {
        TrainError::InvalidConfig {
            origin: Some(self.written.clone()),
            problem,
        }
    }
}

/// A value as a command line writes it: text without quotes, a list comma-separated.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(","),
        other => other.to_string(),
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
        // Refused here, while the text is at hand: JSON, which carries the value from here on,
        // has no NaN or infinity and would turn it into `null`.
        if super::yaml::has_non_finite_number(value) {
            return Err(format!(
                "`{text}`: `{value}` is not a finite number, and no key takes NaN or infinity"
            ));
        }
        let parsed: Value = super::from_yaml_str(value)
            .map_err(|e| format!("`{text}`: the value is not YAML: {e}"))?;
        Ok(Setting {
            key: key.to_string(),
            value: parsed,
            written: format!("--set {text}"),
        })
    }
}

impl ExperimentConfig {
    /// Applies overrides in order, then validates; an error names the override and the key, and
    /// leaves the configuration unchanged.
    pub fn apply(&mut self, settings: &[Setting]) -> Result<()> {
        // On a copy: a refused override leaves the configuration as it was.
        let mut next = self.clone();
        for setting in settings {
            let mut tree =
                serde_json::to_value(&next).map_err(|e| TrainError::Unrepresentable {
                    what: "the configuration",
                    reason: e.to_string(),
                })?;
            set_key(&mut tree, setting)?;
            next = serde_json::from_value(tree).map_err(|e| {
                setting.refused(ConfigError::NotRead {
                    key: setting.key.clone(),
                    message: e.to_string(),
                })
            })?;
        }
        next.validate().map_err(|problem| {
            // Blame the last override of a key the check names, as the user wrote it; a value
            // that came from the file (or the defaults) is named by its key alone.
            let message = problem.to_string();
            match settings.iter().rev().find(|s| message.contains(&s.key)) {
                Some(culprit) => culprit.refused(problem),
                None => TrainError::invalid(problem),
            }
        })?;
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
            let key = parts[..depth].join(".");
            return Err(setting.refused(ConfigError::NotRead {
                message: format!("`{key}` is a value, not a section"),
                key,
            }));
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
