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
mod yaml;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
pub use allconv_runs::run_dir;
pub use provenance::{Provenance, SavedRunConfig};
pub use settings::Setting;
pub use slurm::SlurmConfig;
pub use yaml::{from_yaml_str, load_yaml, save_yaml, to_yaml_string};

/// The training-set normalisation, as named in YAML (`scale`, `standardize`, `gcn_zca`).
pub use allconv_cifar::Preprocessing;

/// `data.dataset`: which data set, in its official binary layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetName {
    /// CIFAR-10 (`cifar-10-batches-bin`), 10 classes.
    #[default]
    Cifar10,
    /// CIFAR-100 (`cifar-100-binary`), 100 fine or 20 coarse classes (`data.labels`).
    Cifar100,
}

/// `data.labels`: which CIFAR-100 labels are the classes (ignored for CIFAR-10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelSet {
    /// The 100 fine classes (the paper's CIFAR-100 result).
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

/// `data:` where the images come from and how they are normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub dataset: DatasetName,
    /// CIFAR-100's label set (fine: 100 classes, coarse: 20).
    pub labels: LabelSet,
    /// Folder with the binary files; `null` means `$ALLCONV_DATA` or
    /// `data/cifar-10-batches-bin` (CIFAR-10), `data/cifar-100-binary` (CIFAR-100).
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
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetName::Cifar10,
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
        }
    }
}

impl DataConfig {
    /// The data folder: `dir` if set, else allconv-cifar's default (for CIFAR-100,
    /// `data/cifar-100-binary` unless `$ALLCONV_DATA` is set).
    pub fn resolved_dir(&self) -> PathBuf {
        match (&self.dir, self.dataset) {
            (Some(dir), _) => dir.clone(),
            (None, DatasetName::Cifar10) => allconv_cifar::default_data_dir(),
            (None, DatasetName::Cifar100) => match std::env::var_os("ALLCONV_DATA") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir),
                _ => PathBuf::from("data").join("cifar-100-binary"),
            },
        }
    }

    /// The data set and label set as allconv-cifar names them.
    pub fn kind(&self) -> allconv_cifar::DatasetKind {
        match (self.dataset, self.labels) {
            (DatasetName::Cifar10, _) => allconv_cifar::DatasetKind::Cifar10,
            (DatasetName::Cifar100, LabelSet::Fine) => allconv_cifar::DatasetKind::Cifar100Fine,
            (DatasetName::Cifar100, LabelSet::Coarse) => allconv_cifar::DatasetKind::Cifar100Coarse,
        }
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

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs the `cuda` feature).
    Cuda,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        })
    }
}

impl std::str::FromStr for DeviceKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda),
            // No aliases: what was asked is what the run records (`gpu` used to become `cuda`).
            other => Err(format!(
                "unknown device `{other}`, expected `cpu` or `cuda` (CUDA GPUs are `cuda`)"
            )),
        }
    }
}

impl DeviceKind {
    /// Opens the device.
    pub fn open(self) -> Result<candle_core::Device> {
        Ok(match self {
            DeviceKind::Cpu => candle_core::Device::Cpu,
            DeviceKind::Cuda => candle_core::Device::new_cuda(0).map_err(|e| {
                TrainError::Config(format!(
                    "training.device is `cuda` but no CUDA device could be opened ({e}); \
                     build with `--features cuda` on a machine with a GPU, or pass `--device cpu`"
                ))
            })?,
        })
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
    /// Where to train.
    pub device: DeviceKind,
    /// Evaluate on validation and test every N epochs (the last epoch is always evaluated).
    pub eval_every: usize,
    /// Stop as `diverged` ("stuck") after this many consecutive epochs with the training loss
    /// within 1e-3 of ln(10) and training accuracy within 1 point of 10%; 0 disables the check.
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
    /// Allow TF32 tensor-core math in CUDA convolutions and matrix products (cuDNN, cuBLAS):
    /// faster, with 10-bit mantissa products. Off = exact fp32. No effect on the CPU. Recorded
    /// with the run and stated in the report.
    pub tf32: bool,
    /// On CUDA, train without first running (or finding a remembered pass of) the device check
    /// (`allconv check`; docs/protocol.md, Device check). Recorded with the run and stated in
    /// the report. No effect on the CPU.
    pub skip_device_check: bool,
    /// The convolution engine: `own` (im2col + GEMM on the CPU, cuDNN on CUDA), `candle`
    /// (candle's conv2d and autograd, no cuDNN), or `auto`: on CUDA ours if it passes the device
    /// check, else candle's if that passes; ours on the CPU.
    pub conv_engine: allconv_models::ops::ConvEngineChoice,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            batch_size: 128,
            keep_last_batch: true,
            shuffle: true,
            dropout: true,
            device: DeviceKind::Cpu,
            eval_every: 1,
            stuck_epochs: 10,
            deterministic: true,
            init_from: None,
            loss_read_every: 50,
            tf32: false,
            skip_device_check: false,
            conv_engine: allconv_models::ops::ConvEngineChoice::Auto,
        }
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
    pub fn load(path: &Path) -> Result<Self> {
        let config: ExperimentConfig = load_yaml(path)?;
        config
            .validate()
            .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: ExperimentConfig = from_yaml_str(text).map_err(|message| TrainError::Yaml {
            path: PathBuf::from("<yaml text>"),
            message,
        })?;
        config.validate().map_err(TrainError::Config)?;
        Ok(config)
    }

    /// Checks values that parse but make no sense; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let classes = self.data.kind().num_classes();
        if self.model.num_classes != classes {
            return Err(format!(
                "model.num_classes is {} but data.dataset {} has {classes} classes{}: set \
                 model.num_classes: {classes}",
                self.model.num_classes,
                self.data.kind().name(),
                match self.data.dataset {
                    DatasetName::Cifar10 => "",
                    DatasetName::Cifar100 => " (data.labels)",
                }
            ));
        }
        if self.training.batch_size == 0 {
            return Err("training.batch_size must be at least 1".into());
        }
        if self.training.eval_every == 0 {
            return Err("training.eval_every must be at least 1".into());
        }
        if self.training.loss_read_every == 0 {
            return Err("training.loss_read_every must be at least 1".into());
        }
        if !(self.optim.momentum >= 0.0 && self.optim.momentum < 1.0) {
            return Err(format!(
                "optim.momentum must be in [0, 1), got {}",
                self.optim.momentum
            ));
        }
        if !(self.optim.weight_decay >= 0.0 && self.optim.weight_decay.is_finite()) {
            return Err(format!(
                "optim.weight_decay must be a finite number >= 0, got {}",
                self.optim.weight_decay
            ));
        }
        if !(self.schedule.gamma > 0.0 && self.schedule.gamma.is_finite()) {
            return Err(format!(
                "schedule.gamma must be a finite number > 0, got {}",
                self.schedule.gamma
            ));
        }
        if self.schedule.epochs == 0 {
            return Err("schedule.epochs must be at least 1".into());
        }
        // A milestone m lowers the rate from the (m+1)-th epoch on: 0 would lower it from the
        // start (that is a smaller base rate), a repeat would apply gamma twice at once.
        if self.schedule.milestones.contains(&0)
            || self.schedule.milestones.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(format!(
                "schedule.milestones must be strictly increasing epochs of at least 1, got {:?}",
                self.schedule.milestones
            ));
        }
        for (key, subset) in [
            ("data.train_subset", self.data.train_subset),
            ("data.test_subset", self.data.test_subset),
        ] {
            if subset == Some(0) {
                return Err(format!(
                    "{key} must be at least 1 (leave it out for all images), got 0"
                ));
            }
        }
        for lr in &self.grid.lrs {
            check_lr(*lr).map_err(|e| format!("grid.lrs: {e}"))?;
        }
        for name in &self.grid.models {
            allconv_models::spec(name, &self.model).map_err(|e| format!("grid.models: {e}"))?;
        }
        self.slurm.validate()
    }

    /// Settings that are valid but probably not what was meant, one sentence each (the trainer
    /// prints them when a run starts): milestones at or after the last epoch never change the rate.
    pub fn warnings(&self) -> Vec<String> {
        let epochs = self.schedule.epochs;
        let late: Vec<usize> = (self.schedule.milestones.iter())
            .copied()
            .filter(|&m| m >= epochs)
            .collect();
        if late.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "schedule.milestones {late:?} lie at or after the last of the {epochs} epochs: the \
             learning rate is never lowered there"
        )]
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

fn check_lr(lr: f64) -> std::result::Result<(), String> {
    if lr > 0.0 && lr.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "learning rate must be a finite number > 0, got {lr}"
        ))
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
        check_lr(lr).map_err(|e| TrainError::Config(format!("lr: {e}")))?;
        let spec = allconv_models::spec(model, &config.model)?;
        config.validate().map_err(TrainError::Config)?;
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
