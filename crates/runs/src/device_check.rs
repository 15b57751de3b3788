//! `device-check/<key>.json` under a runs root: the outcomes of `allconv check` for one
//! (binary, device, driver, cuDNN), per setting checked (precision, cuDNN algorithm set,
//! convolution engine), so that a grid checks its device once, not per run, and a run whose
//! setting no check covered is checked first.

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::RunsRoot;

/// The remembered device checks of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCheckRecord {
    /// Everything the result depends on besides the settings, in words (binary, GPU, driver,
    /// cuDNN).
    pub identity: String,
    /// The latest outcome of each setting checked.
    pub settings: Vec<CheckedSetting>,
}

/// The outcome of the device check in one setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedSetting {
    /// `fp32` or `tf32`.
    pub precision: String,
    /// Whether cuDNN was restricted to deterministic algorithms.
    pub deterministic: bool,
    /// The convolution engine (`own` or `candle`).
    pub conv_engine: String,
    /// How many cases counted for this setting.
    pub cases: usize,
    /// The ops of its failing cases (empty: it passed).
    pub failed_ops: Vec<String>,
}

impl CheckedSetting {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.failed_ops.is_empty()
    }

    /// Whether this is the outcome of `(precision, deterministic, conv_engine)`.
    pub fn is(&self, precision: &str, deterministic: bool, conv_engine: &str) -> bool {
        self.precision == precision
            && self.deterministic == deterministic
            && self.conv_engine == conv_engine
    }
}

impl DeviceCheckRecord {
    /// An identity with nothing checked yet.
    pub fn new(identity: &str) -> Self {
        Self {
            identity: identity.to_string(),
            settings: Vec::new(),
        }
    }

    /// The remembered outcome of one setting, if it was checked.
    pub fn find(
        &self,
        precision: &str,
        deterministic: bool,
        conv_engine: &str,
    ) -> Option<&CheckedSetting> {
        self.settings
            .iter()
            .find(|s| s.is(precision, deterministic, conv_engine))
    }

    /// Adds `outcomes`, each replacing an earlier outcome of the same setting.
    pub fn merge(&mut self, outcomes: impl IntoIterator<Item = CheckedSetting>) {
        for outcome in outcomes {
            self.settings.retain(|s| {
                !s.is(
                    &outcome.precision,
                    outcome.deterministic,
                    &outcome.conv_engine,
                )
            });
            self.settings.push(outcome);
        }
    }

    /// The file name stem for this identity: 16 hex digits of its FNV-1a hash, a stable and
    /// file-system-safe name (the identity holds spaces and slashes). Written by hand: the
    /// standard hasher is not stable across Rust versions and the hash is five lines.
    pub fn key(identity: &str) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in identity.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

impl RunsRoot {
    /// Reads the remembered check of `identity`, if there is one.
    pub fn device_check(&self, identity: &str) -> Result<Option<DeviceCheckRecord>> {
        let path = self.device_check_path(&DeviceCheckRecord::key(identity));
        if !path.exists() {
            return Ok(None);
        }
        crate::files::read_json(&path).map(Some)
    }

    /// Writes (atomically) the check of `record.identity`, creating `device-check/`.
    pub fn write_device_check(&self, record: &DeviceCheckRecord) -> Result<()> {
        let path = self.device_check_path(&DeviceCheckRecord::key(&record.identity));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        crate::files::write_json(&path, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_fnv1a_and_a_record_round_trips() {
        // FNV-1a 64 of "" is the offset basis; of "a" it is 0xaf63dc4c8601ec8c (the published
        // test vector).
        assert_eq!(DeviceCheckRecord::key(""), "cbf29ce484222325");
        assert_eq!(DeviceCheckRecord::key("a"), "af63dc4c8601ec8c");
        let dir = tempfile::tempdir().unwrap();
        let root = RunsRoot::new(dir.path());
        assert_eq!(root.device_check("gpu x").unwrap(), None);
        let setting = |precision: &str, failed: &[&str]| CheckedSetting {
            precision: precision.into(),
            deterministic: true,
            conv_engine: "own".into(),
            cases: 3,
            failed_ops: failed.iter().map(|s| s.to_string()).collect(),
        };
        let mut record = DeviceCheckRecord::new("gpu x");
        record.merge([setting("fp32", &["pool_bwd"]), setting("tf32", &[])]);
        root.write_device_check(&record).unwrap();
        assert_eq!(root.device_check("gpu x").unwrap(), Some(record.clone()));
        assert_eq!(root.device_check("gpu y").unwrap(), None);
        // A later outcome of the same setting replaces the earlier one; others stay.
        assert!(!record.find("fp32", true, "own").unwrap().passed());
        record.merge([setting("fp32", &[])]);
        assert_eq!(record.settings.len(), 2);
        assert!(record.find("fp32", true, "own").unwrap().passed());
        assert!(record.find("tf32", true, "own").unwrap().passed());
        assert_eq!(record.find("fp32", false, "own"), None);
        assert_eq!(record.find("fp32", true, "candle"), None);
    }
}
