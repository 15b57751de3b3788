//! What a run folder's `config.yaml` records: the resolved run configuration and where it came
//! from (versions, git revision, device, data checksums).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DeviceKind, ExperimentConfig};
use crate::error::Result;

/// Where a run's configuration came from: written next to it in `config.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Version of the allconv crates.
    pub allconv_version: String,
    /// `git rev-parse HEAD` of the working directory, or "unknown".
    pub git_revision: String,
    /// Device the run was (last) started on, e.g. "cpu" or "cuda".
    pub device: String,
    /// The data folder that was read.
    pub data_dir: PathBuf,
    /// md5 of every data file, by file name.
    pub data_md5: std::collections::BTreeMap<String, String>,
    /// The CPU the run was (last) started on, as the operating system names it (empty in
    /// folders written before this was recorded).
    #[serde(default)]
    pub cpu: String,
    /// The CPU kernel path (`avx512`, `avx2`, `portable`): each rounds differently, so a run's
    /// numbers repeat bit for bit only on the same path and thread count.
    #[serde(default)]
    pub cpu_kernels: String,
}

impl Provenance {
    /// Collects versions, git revision and the md5 of every file in `data_dir`.
    pub fn collect(data_dir: &Path, device: DeviceKind) -> Result<Self> {
        Ok(Provenance {
            allconv_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision(),
            device: device.to_string(),
            data_dir: data_dir.to_path_buf(),
            data_md5: allconv_cifar::checksums(data_dir)?,
            cpu: allconv_models::ops::cpu_model(),
            cpu_kernels: allconv_models::ops::cpu_kernels()?.name().to_string(),
        })
    }
}

fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The content of a run folder's `config.yaml`: the resolved run configuration and its provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedRunConfig {
    /// Model name (canonical).
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// The full resolved experiment configuration.
    pub config: ExperimentConfig,
    /// Versions, data checksums, device.
    pub provenance: Provenance,
}
