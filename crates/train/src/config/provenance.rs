//! What a run folder's `config.yaml` records: the resolved run configuration and where it came
//! from (versions, git revision, device, data checksums).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Device, ExperimentConfig};
use crate::error::Result;

/// The source a program was built from: the git revision and whether the checkout had
/// uncommitted changes to the sources. The `allconv` binary embeds it when it is built (its
/// build script asks git), so a binary carried to another machine records the revision it was
/// built from, not that of whatever folder it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRevision {
    /// `git rev-parse HEAD` of the checkout, or "unknown" (a build outside git, or a program
    /// that does not say, such as a test).
    pub revision: String,
    /// Whether the sources differed from that revision; `None` when not known.
    pub dirty: Option<bool>,
}

impl Default for SourceRevision {
    fn default() -> Self {
        SourceRevision {
            revision: "unknown".into(),
            dirty: None,
        }
    }
}

/// Where a run's configuration came from: written next to it in `config.yaml` when the run
/// starts, and never rewritten: later processes only append their [`Segment`] (and, when the
/// data changed under the run and that was allowed, a [`DataChange`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Version of the allconv crates.
    pub allconv_version: String,
    /// The git revision of the sources the program was built from, or "unknown" (folders
    /// written before it was embedded at build time hold the working directory's revision).
    pub git_revision: String,
    /// Whether those sources had uncommitted changes (`null`: not known).
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// Device the run was started on, e.g. "cpu" or "cuda:0"; on CUDA with the
    /// `CUDA_VISIBLE_DEVICES` it saw, when set ("cuda:0 (CUDA_VISIBLE_DEVICES=2)": the GPU
    /// `allconv reproduce --gpus` or Slurm gave it). Each later process: `segments`.
    pub device: String,
    /// The data folder that was read.
    pub data_dir: PathBuf,
    /// md5 of every data file, by file name, when the run started.
    pub data_md5: std::collections::BTreeMap<String, String>,
    /// The CPU the run was started on, as the operating system names it (empty in folders
    /// written before this was recorded).
    #[serde(default)]
    pub cpu: String,
    /// The CPU kernel path (`avx512`, `avx2`, `portable`): each rounds differently, so a run's
    /// numbers repeat bit for bit only on the same path and thread count.
    #[serde(default)]
    pub cpu_kernels: String,
    /// Threads of the CPU ops (0 in folders written before this was recorded): a CPU run
    /// repeats bit for bit only with the same number.
    #[serde(default)]
    pub threads: usize,
    /// md5 of the fitted preprocessing statistics (GCN + ZCA: the whitening; standardize: the
    /// channel means and deviations), empty where not recorded.
    #[serde(default)]
    pub preprocessing_md5: String,
    /// Whether `data_md5` are the official CIFAR-10 sums ([`allconv_cifar::OFFICIAL_MD5`]):
    /// only such runs compare with the paper. False in folders written before this was
    /// recorded; [`Provenance::files_not_official`] judges those from their sums.
    #[serde(default)]
    pub official: bool,
    /// Every process that trained the run, the first one included, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// Changes of the data under the run that a resume was allowed to go on with
    /// (`--allow-changed-data`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_changes: Vec<DataChange>,
}

/// One process's share of a run: where it started and what it computed on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Epochs finished before it started.
    pub epoch: usize,
    /// SGD steps of the next epoch done before it started.
    pub step: usize,
    /// The device.
    pub device: String,
    /// The CPU.
    pub cpu: String,
    /// The CPU kernel path.
    pub cpu_kernels: String,
    /// Threads of the CPU ops.
    pub threads: usize,
    /// The git revision the program was built from.
    pub git_revision: String,
    /// md5 of the preprocessing statistics it trained on.
    pub preprocessing_md5: String,
}

impl Segment {
    /// The arithmetic of this segment in words, for warnings and the report.
    pub fn machine(&self) -> String {
        if self.device == "cpu" {
            format!(
                "{} kernels, {} threads, on {}",
                self.cpu_kernels, self.threads, self.cpu
            )
        } else {
            self.device.clone()
        }
    }
}

/// The data under a run changed between two of its processes, and the later one was allowed
/// to go on (`--allow-changed-data`): both checksums of every file that changed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DataChange {
    /// Epochs finished before the change.
    pub epoch: usize,
    /// SGD steps of the next epoch done before the change.
    pub step: usize,
    /// Per changed file: its md5 before and after (an absent file is "absent").
    pub files: std::collections::BTreeMap<String, [String; 2]>,
    /// md5 of the preprocessing statistics before and after, when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing_md5: Option<[String; 2]>,
}

impl DataChange {
    /// The change in words: `data_batch_1.bin md5 a -> b`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .files
            .iter()
            .map(|(file, [before, after])| format!("{file} md5 {before} -> {after}"))
            .collect();
        if let Some([before, after]) = &self.preprocessing_md5 {
            parts.push(format!("preprocessing statistics md5 {before} -> {after}"));
        }
        format!(
            "after epoch {} step {}: {}",
            self.epoch,
            self.step,
            parts.join(", ")
        )
    }
}

impl Provenance {
    /// Collects versions, the source revision, the machine and the md5 of every binary file of
    /// `dataset` in `data_dir` (`preprocessing_md5` is filled in once the data is prepared).
    /// Only CIFAR-10 has a published table of per-file md5 sums, so a CIFAR-100 run is never
    /// marked `official` (its tarball's md5 is checked when it is fetched).
    pub fn collect(
        data_dir: &Path,
        dataset: allconv_cifar::DatasetKind,
        device: Device,
        source: &SourceRevision,
    ) -> Result<Self> {
        let data_md5 = allconv_cifar::dataset_checksums(dataset, data_dir)?;
        Ok(Provenance {
            official: dataset == allconv_cifar::DatasetKind::Cifar10
                && files_not_official(&data_md5).is_empty(),
            allconv_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: source.revision.clone(),
            git_dirty: source.dirty,
            device: device_description(
                device,
                std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
            ),
            data_dir: data_dir.to_path_buf(),
            data_md5,
            cpu: allconv_models::ops::cpu_model(),
            cpu_kernels: allconv_models::ops::cpu_kernels().name().to_string(),
            threads: allconv_models::ops::cpu_threads(),
            preprocessing_md5: String::new(),
            segments: Vec::new(),
            data_changes: Vec::new(),
        })
    }

    /// This process's [`Segment`], starting at (`epoch`, `step`).
    pub fn segment(&self, epoch: usize, step: usize) -> Segment {
        Segment {
            epoch,
            step,
            device: self.device.clone(),
            cpu: self.cpu.clone(),
            cpu_kernels: self.cpu_kernels.clone(),
            threads: self.threads,
            git_revision: self.git_revision.clone(),
            preprocessing_md5: self.preprocessing_md5.clone(),
        }
    }

    /// The segments of the run; for a record written before segments were kept, the first
    /// one as its top-level fields describe it.
    pub fn all_segments(&self) -> Vec<Segment> {
        if self.segments.is_empty() {
            vec![self.segment(0, 0)]
        } else {
            self.segments.clone()
        }
    }

    /// The md5 of every data file as the run last accepted it: the start's, updated by every
    /// allowed [`DataChange`].
    pub fn current_data_md5(&self) -> std::collections::BTreeMap<String, String> {
        let mut sums = self.data_md5.clone();
        for change in &self.data_changes {
            for (file, [_, after]) in &change.files {
                sums.insert(file.clone(), after.clone());
            }
        }
        sums
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
            git_dirty: None,
            device: "cpu".into(),
            data_dir: PathBuf::from("data/x"),
            data_md5: sums
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
            cpu: String::new(),
            cpu_kernels: String::new(),
            threads: 0,
            preprocessing_md5: String::new(),
            official: false,
            segments: Vec::new(),
            data_changes: Vec::new(),
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
