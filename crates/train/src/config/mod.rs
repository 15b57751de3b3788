//! Experiment configuration: the YAML files under `configs/`, their defaults, `--set key=value`
//! overrides ([`Setting`]), and the one resolved [`RunConfig`] per grid point.
//!
//! This module is the only place in the project that reads or writes YAML ([`load_yaml`],
//! [`save_yaml`], [`to_yaml_string`]); every section denies unknown keys so a typo is an error
//! naming the key instead of a silently ignored setting. The keys are listed in
//! `docs/configuration.md` (a test keeps that list equal to [`ExperimentConfig::keys`]).

mod provenance;
mod settings;
mod slurm;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use allconv_runs::IoContext;

pub use crate::config_error::ConfigError;
use crate::error::{Result, TrainError};
pub use allconv_runs::run_dir;
pub use provenance::{DataChange, Provenance, SavedRunConfig, Segment, SourceRevision};
pub use settings::Setting;
pub use slurm::SlurmConfig;
pub use validate::MAX_EPOCHS;
pub use yaml::{from_yaml_str, load_yaml, save_yaml, to_yaml_string};

/// The training-set normalisation, as named in YAML (`scale`, `standardize`, `gcn_zca`).
pub use allconv_cifar::Preprocessing;

/// The words the configuration shares with every crate and the command line (one type each,
/// parsed once): `data.dataset`, `data.labels`, the two together, `training.device`, the
/// precision `training.tf32` selects.
pub use allconv_vocab::{Dataset, DatasetKind, Device, LabelSet, Precision};

/// `data:` where the images come from and how they are normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub dataset: Dataset,
    /// CIFAR-100's label set (fine: 100 classes, coarse: 20).
    pub labels: LabelSet,
    /// Folder with the binary files; `null` means the data set's folder in the data root
    /// (`$ALLCONV_DATA`, else `data`): `cifar-10-batches-bin` or `cifar-100-binary`.
    pub dir: Option<PathBuf>,
    /// Normalisation fitted on the training part only.
    pub preprocessing: Preprocessing,
    /// GCN scale (pylearn2: 55).
    pub gcn_scale: f64,
    /// Added to the eigenvalues before ZCA whitening (pylearn2: 0.1).
    pub zca_epsilon: f64,
    /// Number of training images (the last ones, after `train_subset`) held out as the validation
    /// split; 0 for none.
    pub validation: usize,
    /// Use only the first N training images; the validation split is then taken from their end.
    pub train_subset: Option<usize>,
    /// Use only the first N test images.
    pub test_subset: Option<usize>,
    /// Where the prepared (normalised) splits are cached; `null` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Augment the training images (never validation or test): per image and epoch a random
    /// horizontal flip (p = 1/2) and a translation of -5..=5 pixels in x and y, zero-filled,
    /// after the normalisation (see `allconv_cifar::EpochAugmentation`).
    pub augment: bool,
    /// `dir` is a subset of the full data set, made when `dir` lacks the data set's files (by
    /// `allconv reproduce`, however the experiment was named: preset, config file, flags):
    /// `null`, `dir` is read as it is and fetched when missing.
    pub derive_subset: Option<DerivedSubset>,
}

/// `data.derive_subset`: the subset `data.dir` holds, made as `allconv data subset` makes it
/// from the data set's default folder in the data root (fetched first when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedSubset {
    /// The first N images of each of the five training files.
    pub per_file: usize,
    /// The first M images of the test file.
    pub test: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: Dataset::Cifar10,
            labels: LabelSet::Fine,
            dir: None,
            preprocessing: Preprocessing::GcnZca,
            gcn_scale: 55.0,
            zca_epsilon: 0.1,
            validation: 0,
            train_subset: None,
            test_subset: None,
            cache_dir: None,
            augment: false,
            derive_subset: None,
        }
    }
}

impl DataConfig {
    /// The data folder: `dir` if set, else the data set's default folder
    /// ([`allconv_cifar::default_data_dir`]).
    pub fn resolved_dir(&self) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.clone(),
            None => allconv_cifar::default_data_dir(self.dataset),
        }
    }

    /// The data set with the label set that gives the classes.
    pub fn kind(&self) -> DatasetKind {
        DatasetKind::new(self.dataset, self.labels)
    }

    /// Why `data.derive_subset` cannot be made, naming the keys: only CIFAR-10 subsets are
    /// written, into a folder of their own, of at least one and at most all images per file.
    fn validate_derived_subset(&self, subset: &DerivedSubset) -> Result<(), ConfigError> {
        if self.dataset != Dataset::Cifar10 {
            return Err(ConfigError::inconsistent(
                "data.derive_subset",
                format!(
                    "data.derive_subset makes CIFAR-10 subsets only, but data.dataset is {}",
                    self.dataset
                ),
            ));
        }
        if self.dir.is_none() {
            return Err(ConfigError::inconsistent(
                "data.derive_subset",
                "data.derive_subset needs data.dir: the folder the subset is written to (the \
                 full data set's folder is the default one)",
            ));
        }
        for (key, n, most) in [
            ("per_file", subset.per_file, allconv_cifar::RECORDS_PER_FILE),
            ("test", subset.test, allconv_cifar::RECORDS_PER_FILE),
        ] {
            if n == 0 || n > most {
                return Err(ConfigError::out_of_range(
                    format!("data.derive_subset.{key}"),
                    format!("1 to {most} images"),
                    n,
                ));
            }
        }
        Ok(())
    }

    /// The options allconv-cifar's `prepare` takes.
    pub fn prepare_options(&self) -> allconv_cifar::PrepareOptions {
        allconv_cifar::PrepareOptions {
            preprocessing: self.preprocessing,
            validation: self.validation,
            gcn_scale: self.gcn_scale,
            zca_epsilon: self.zca_epsilon,
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            dataset: self.kind(),
        }
    }
}

/// `optim:` SGD with momentum and L2 weight decay (PyTorch/Caffe semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Momentum `m` in `v = m*v + g + wd*w`.
    pub momentum: f64,
    /// L2 weight decay `wd` (added to the gradient of the mean cross-entropy).
    pub weight_decay: f64,
    /// Whether biases are decayed too (Caffe does; the paper leaves it open).
    pub weight_decay_bias: bool,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            momentum: 0.9,
            weight_decay: 0.001,
            weight_decay_bias: true,
        }
    }
}

/// `schedule:` number of epochs and the step learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Epochs to train.
    pub epochs: usize,
    /// Epoch counts after which the learning rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// Factor applied at each milestone.
    pub gamma: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            epochs: 350,
            milestones: vec![200, 250, 300],
            gamma: 0.1,
        }
    }
}

/// `training:` batching, regularisation switches, device, evaluation and divergence settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Images per SGD step.
    pub batch_size: usize,
    /// Train on the last, smaller batch of an epoch too.
    pub keep_last_batch: bool,
    /// Shuffle the training set every epoch (seeded by run seed and epoch).
    pub shuffle: bool,
    /// Apply the models' dropout layers while training (never at evaluation).
    pub dropout: bool,
    /// Where to train: `cpu`, `cuda` (GPU 0) or `cuda:N` (GPU N as this process sees it).
    pub device: Device,
    /// Evaluate on validation and test every N epochs (the last epoch is always evaluated).
    pub eval_every: usize,
    /// Stop as `diverged` ("stuck") after this many consecutive epochs at chance level over the
    /// K classes: training loss within 1e-3 of ln(K) and training accuracy within 1 point of
    /// 1/K; 0 disables the check.
    pub stuck_epochs: usize,
    /// Ask for bit-reproducible training (all randomness comes from the seed in any case; on CUDA
    /// a warning is printed because GPU reductions may not be bit-reproducible).
    pub deterministic: bool,
    /// Start from these weights (safetensors with the model's parameter names) instead of a
    /// fresh initialisation.
    pub init_from: Option<PathBuf>,
    /// Read the training loss and accuracy from the device every N steps (and at the end of
    /// every epoch). A read waits for the device to finish the queued work, so reading every step
    /// leaves a GPU idle between steps; a non-finite loss is still reported with its exact step,
    /// but noticed up to N-1 steps later. Makes no difference to the numbers.
    pub loss_read_every: usize,
    /// The key `tf32` (a boolean): allow TF32 tensor-core math in CUDA convolutions and matrix
    /// products (cuDNN, cuBLAS): faster, with 10-bit mantissa products. Off = exact fp32. No
    /// effect on the CPU. Recorded with the run and stated in the report.
    #[serde(rename = "tf32", with = "tf32_key")]
    pub precision: Precision,
    /// On CUDA, train without first running (or finding a remembered pass of) the device check
    /// (`allconv check`; docs/protocol.md, Device check). Recorded with the run and stated in
    /// the report. No effect on the CPU.
    pub skip_device_check: bool,
    /// The convolution engine: `own` (im2col + GEMM on the CPU, cuDNN on CUDA), `candle`
    /// (candle's conv2d and autograd, no cuDNN), or `auto`: on CUDA ours if it passes the device
    /// check, else candle's if that passes; ours on the CPU.
    pub conv_engine: allconv_models::ops::ConvEngineChoice,
    /// The CPU kernel path: `avx512`, `avx2`, `portable`, or `auto`, which leaves the choice to
    /// the caller (the `allconv` binary: `ALLCONV_CPU_KERNELS`, else the widest path this CPU
    /// runs). A path the CPU lacks is refused. Not compared on resume (like the device): the
    /// path each part of a run used is in its provenance.
    pub cpu_kernels: allconv_models::ops::CpuKernelsChoice,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            batch_size: 128,
            keep_last_batch: true,
            shuffle: true,
            dropout: true,
            device: Device::Cpu,
            eval_every: 1,
            stuck_epochs: 10,
            deterministic: true,
            init_from: None,
            loss_read_every: 50,
            precision: Precision::Fp32,
            skip_device_check: false,
            conv_engine: allconv_models::ops::ConvEngineChoice::Auto,
            cpu_kernels: allconv_models::ops::CpuKernelsChoice::Auto,
        }
    }
}

impl TrainingConfig {
    /// Opens `device`; an error names the key and what was asked.
    pub fn open_device(&self) -> Result<candle_core::Device> {
        allconv_models::open_device(self.device).map_err(|e| {
            TrainError::invalid(ConfigError::inconsistent(
                "training.device",
                format!(
                    "training.device is `{}` but that CUDA device could not be opened ({e}); \
                     build with `--features cuda` on a machine with that GPU, or pass \
                     `--device cpu`",
                    self.device
                ),
            ))
        })
    }
}

/// `training.tf32`, a boolean in the YAML files (kept as it was), read into a [`Precision`].
mod tf32_key {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Precision;

    pub fn serialize<S: Serializer>(precision: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(precision.is_tf32())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        bool::deserialize(d).map(Precision::from_tf32)
    }
}

/// `grid:` the models, learning rates and seeds of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GridConfig {
    /// Model names (see `allconv models`).
    pub models: Vec<String>,
    /// Base learning rates.
    pub lrs: Vec<f64>,
    /// Seeds (initialisation, shuffling and dropout all derive from the seed).
    pub seeds: Vec<u64>,
}

impl Default for GridConfig {
    fn default() -> Self {
        GridConfig {
            models: allconv_models::MODEL_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            lrs: vec![0.25, 0.1, 0.05, 0.01],
            seeds: vec![0],
        }
    }
}

/// `out:` where run folders go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutConfig {
    /// Root of the run folders (`<runs>/<model>/lr-<lr>/seed-<seed>/`).
    pub runs: PathBuf,
}

impl Default for OutConfig {
    fn default() -> Self {
        OutConfig {
            runs: PathBuf::from("runs"),
        }
    }
}

/// A whole experiment: one YAML file such as `configs/paper.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Data source and preprocessing.
    pub data: DataConfig,
    /// Architecture options shared by all models (final ReLU, dropout rates, initialisation).
    pub model: allconv_models::ModelOptions,
    /// Optimizer.
    pub optim: OptimConfig,
    /// Epochs and learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Training loop settings.
    pub training: TrainingConfig,
    /// The grid of runs.
    pub grid: GridConfig,
    /// Output folders.
    pub out: OutConfig,
    /// Resources of the Slurm array job (`allconv reproduce --emit-slurm`); not used in training.
    pub slurm: SlurmConfig,
}

impl ExperimentConfig {
    /// Reads and validates a YAML experiment file; missing keys take their defaults.
    /// A file that sets no key at all (empty, or only comments) is refused: it would train the
    /// full paper protocol, which is seldom what an empty file was meant to ask for.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        if yaml::is_empty_document(&text) {
            return Err(TrainError::EmptyConfig {
                path: path.to_path_buf(),
            });
        }
        let config: ExperimentConfig =
            from_yaml_str(&text).map_err(|message| TrainError::Yaml {
                path: path.to_path_buf(),
                message,
            })?;
        config
            .validate()
            .map_err(|problem| TrainError::InvalidConfig {
                origin: Some(path.display().to_string()),
                problem,
            })?;
        Ok(config)
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: ExperimentConfig = from_yaml_str(text).map_err(|message| TrainError::Yaml {
            path: PathBuf::from("<yaml text>"),
            message,
        })?;
        config.validate().map_err(TrainError::invalid)?;
        Ok(config)
    }

    /// Every (model, lr, seed) of the grid, model-major then lr then seed.
    pub fn grid_points(&self) -> Vec<RunConfig> {
        let mut points = Vec::new();
        for model in &self.grid.models {
            for &lr in &self.grid.lrs {
                for &seed in &self.grid.seeds {
                    points.push(RunConfig {
                        model: model.clone(),
                        lr,
                        seed,
                        config: self.clone(),
                    });
                }
            }
        }
        points
    }
}

/// One training run: the experiment plus one grid point (model, learning rate, seed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Model name as given (case-insensitive; see `allconv models`).
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// The full resolved experiment configuration.
    pub config: ExperimentConfig,
}

impl RunConfig {
    /// Builds and validates a run configuration.
    pub fn new(config: ExperimentConfig, model: &str, lr: f64, seed: u64) -> Result<Self> {
        if !validate::is_learning_rate(lr) {
            return Err(TrainError::invalid(ConfigError::out_of_range(
                "lr",
                "a learning rate: a finite number > 0",
                lr,
            )));
        }
        let spec = allconv_models::spec(model, &config.model)?;
        config.validate().map_err(TrainError::invalid)?;
        Ok(RunConfig {
            model: spec.name.clone(),
            lr,
            seed,
            config,
        })
    }

    /// The run folder `<out>/<model>/lr-<lr>/seed-<seed>/`, with the lr written in its shortest
    /// exact decimal form (0.1 -> `lr-0.1`, 0.05 -> `lr-0.05`).
    pub fn run_dir(&self) -> PathBuf {
        allconv_runs::run_dir(&self.config.out.runs, &self.model, self.lr, self.seed)
    }
}
