//! What a run folder's `config.yaml` records: the resolved run configuration and where it came
//! from (versions, git revision, device, data checksums).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Device, ExperimentConfig};
use crate::error::Result;

/// Where a run's configuration came from: written next to it in `config.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Version of the allconv crates.
    pub allconv_version: String,
    /// `git rev-parse HEAD` of the working directory, or "unknown".
    pub git_revision: String,
    /// Device the run was (last) started on, e.g. "cpu" or "cuda:0"; on CUDA with the
    /// `CUDA_VISIBLE_DEVICES` it saw, when set ("cuda:0 (CUDA_VISIBLE_DEVICES=2)": the GPU
    /// `allconv reproduce --gpus` or Slurm gave it).
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
    /// Whether `data_md5` are the official CIFAR-10 sums ([`allconv_cifar::OFFICIAL_MD5`]):
    /// only such runs compare with the paper. False in folders written before this was
    /// recorded; [`Provenance::files_not_official`] judges those from their sums.
    #[serde(default)]
    pub official: bool,
}

impl Provenance {
    /// Collects versions, git revision and the md5 of every binary file of `dataset` in
    /// `data_dir`. Only CIFAR-10 has a published table of per-file md5 sums, so a CIFAR-100 run
    /// is never marked `official` (its tarball's md5 is checked when it is fetched).
    pub fn collect(
        data_dir: &Path,
        dataset: allconv_cifar::DatasetKind,
        device: Device,
    ) -> Result<Self> {
        let data_md5 = allconv_cifar::dataset_checksums(dataset, data_dir)?;
        Ok(Provenance {
            official: dataset == allconv_cifar::DatasetKind::Cifar10
                && files_not_official(&data_md5).is_empty(),
            allconv_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision(),
            device: device_description(
                device,
                std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
            ),
            data_dir: data_dir.to_path_buf(),
            data_md5,
            cpu: allconv_models::ops::cpu_model(),
            cpu_kernels: allconv_models::ops::cpu_kernels()?.name().to_string(),
        })
    }
}

impl Provenance {
    /// The data files whose recorded md5 is not the official one (or that are not recorded):
    /// empty exactly when the run read the official CIFAR-10 files.
    pub fn files_not_official(&self) -> Vec<String> {
        files_not_official(&self.data_md5)
    }

    /// The warning to print at the start of a run on data that is not the official CIFAR-10
    /// (naming the folder and the differing files), or `None` on the official data.
    pub fn data_warning(&self) -> Option<String> {
        if self
            .data_md5
            .contains_key(allconv_cifar::CIFAR100_TRAIN_FILE)
        {
            return Some(format!(
                "note: CIFAR-100 in {} has no published per-file md5 to compare with (only its \
                 tarball's, checked when fetched); the report marks the run as not official",
                self.data_dir.display()
            ));
        }
        let files = self.files_not_official();
        (!files.is_empty()).then(|| {
            format!(
                "warning: the data in {} is not the official CIFAR-10 (md5 differs for {}); \
                 this run does not compare with the paper",
                self.data_dir.display(),
                files.join(", ")
            )
        })
    }
}

/// The official data files whose md5 in `sums` is absent or different.
fn files_not_official(sums: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    allconv_cifar::OFFICIAL_MD5
        .iter()
        .filter(|(file, md5)| {
            !sums
                .get(*file)
                .is_some_and(|recorded| recorded.eq_ignore_ascii_case(md5))
        })
        .map(|(file, _)| file.to_string())
        .collect()
}

/// `device` as the provenance records it: a CUDA device with the process's
/// `CUDA_VISIBLE_DEVICES` (`visible`) when that is set, as `cuda:0` then names the GPU it lists
/// first.
fn device_description(device: Device, visible: Option<&str>) -> String {
    match (device, visible.map(str::trim)) {
        (Device::Cuda(_), Some(list)) if !list.is_empty() => {
            format!("{device} (CUDA_VISIBLE_DEVICES={list})")
        }
        _ => device.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance(sums: &[(&str, &str)]) -> Provenance {
        Provenance {
            allconv_version: "0".into(),
            git_revision: "unknown".into(),
            device: "cpu".into(),
            data_dir: PathBuf::from("data/x"),
            data_md5: sums
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
            cpu: String::new(),
            cpu_kernels: String::new(),
            official: false,
        }
    }

    #[test]
    fn the_official_sums_pass_and_one_changed_file_is_named() {
        // The table the data crate publishes, verbatim: nothing differs.
        let official = provenance(&allconv_cifar::OFFICIAL_MD5);
        assert!(official.files_not_official().is_empty());
        assert_eq!(official.data_warning(), None);
        // One pixel byte flipped in data_batch_3.bin changes only that file's sum.
        let mut sums = allconv_cifar::OFFICIAL_MD5;
        sums[2].1 = "00000000000000000000000000000000";
        assert_eq!(sums[2].0, "data_batch_3.bin");
        let changed = provenance(&sums);
        assert_eq!(changed.files_not_official(), vec!["data_batch_3.bin"]);
        let warning = changed.data_warning().unwrap();
        assert!(warning.contains("data/x"), "{warning}");
        assert!(warning.contains("data_batch_3.bin"), "{warning}");
        assert!(!warning.contains("data_batch_1.bin"), "{warning}");
    }

    #[test]
    fn a_gpu_is_recorded_with_the_visible_devices_that_numbered_it() {
        assert_eq!(
            device_description(Device::Cuda(0), Some("2")),
            "cuda:0 (CUDA_VISIBLE_DEVICES=2)"
        );
        assert_eq!(device_description(Device::Cuda(1), None), "cuda:1");
        assert_eq!(device_description(Device::Cuda(0), Some(" ")), "cuda:0");
        assert_eq!(device_description(Device::Cpu, Some("2")), "cpu");
    }

    #[test]
    fn a_config_yaml_written_before_the_flag_still_reads() {
        let yaml = "allconv_version: '0.1.0'\ngit_revision: unknown\ndevice: cpu\n\
                    data_dir: data\ndata_md5: {}\n";
        let read: Provenance = super::super::from_yaml_str(yaml).unwrap();
        assert!(!read.official);
    }
}
