//! `device-check/<key>.json` under a runs root: the outcome of `allconv check` for one
//! (binary, device, driver, cuDNN), so that a grid checks its device once, not per run.

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};
use crate::RunsRoot;

/// One remembered device check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCheckRecord {
    /// Everything the result depends on, in words (binary, GPU, driver, cuDNN).
    pub identity: String,
    /// Whether every case passed.
    pub passed: bool,
    /// The ops of the failing cases (empty when it passed).
    pub failed_ops: Vec<String>,
    /// How many cases were compared.
    pub cases: usize,
}

impl DeviceCheckRecord {
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
        let record = DeviceCheckRecord {
            identity: "gpu x".into(),
            passed: false,
            failed_ops: vec!["pool_bwd".into()],
            cases: 3,
        };
        root.write_device_check(&record).unwrap();
        assert_eq!(root.device_check("gpu x").unwrap(), Some(record));
        assert_eq!(root.device_check("gpu y").unwrap(), None);
    }
}
