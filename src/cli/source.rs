//! Where `allconv evaluate` and `allconv visualize` get a network from: a run folder (its
//! `config.yaml` and `weights.safetensors`) or any weights file with our (PyTorch) tensor names
//! plus a model name; and the data prepared the way that network was trained.

use std::path::PathBuf;

use allconv_cifar::{Prepared, RawDataset};
use allconv_models::Network;
use allconv_runs::RunDir;
use allconv_train::config::{load_yaml, SavedRunConfig};
use allconv_train::{ExperimentConfig, Setting};
use anyhow::{bail, Context};
use candle_core::Device;
use candle_nn::VarMap;

/// Flags choosing the weights, the model and the data.
#[derive(clap::Args, Debug, Clone)]
pub struct SourceArgs {
    /// A run folder: model, data and preprocessing from its config.yaml, weights from its
    /// weights.safetensors.
    #[arg(long, conflicts_with_all = ["weights", "model", "config"])]
    pub run: Option<PathBuf>,
    /// A safetensors file with tensors conv1.weight [out, in, kh, kw], conv1.bias [out], ...
    #[arg(long, requires = "model")]
    pub weights: Option<PathBuf>,
    /// The network the weights are for (see `allconv models`; any letter case).
    #[arg(long, requires = "weights", value_parser = super::choices::model())]
    pub model: Option<String>,
    /// With --weights: experiment YAML for the model options and the data (default: the
    /// built-in defaults, i.e. the paper's GCN + ZCA).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// data.dir: the data set's folder [default: its folder in the data root $ALLCONV_DATA
    /// (else data): cifar-10-batches-bin or cifar-100-binary].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// data.preprocessing (must be what the weights were trained with).
    #[arg(long, value_parser = super::choices::preprocessing())]
    pub preprocessing: Option<allconv_cifar::Preprocessing>,
    /// training.device
    #[arg(long)]
    pub device: Option<allconv_vocab::Device>,
    /// training.cpu_kernels: the CPU kernel path (over the run's record and
    /// ALLCONV_CPU_KERNELS).
    #[arg(long, value_name = "PATH", value_parser = super::choices::cpu_kernels())]
    pub cpu_kernels: Option<allconv_models::ops::CpuKernelsChoice>,
    /// Set any configuration key (see docs/configuration.md), e.g. `--set data.cache_dir=...`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Setting>,
}

/// A network with its weights loaded, and the configuration describing its data.
pub struct Loaded {
    /// The network, evaluation-ready.
    pub net: Network,
    /// The network's description (its canonical name is `spec.name`).
    pub spec: allconv_models::ModelSpec,
    /// The weights file read.
    pub weights: PathBuf,
    /// Data and model settings (from the run folder or the flags).
    pub experiment: ExperimentConfig,
    /// Where the network lives.
    pub device: Device,
    /// The class names of its data set, one per output ([`class_names`]).
    pub class_names: Vec<String>,
}

impl SourceArgs {
    /// Reads the configuration, builds the network and loads its weights; a missing or
    /// misshapen tensor is an error naming the tensor and the shape the model expects.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let (model, weights, mut experiment) = match (&self.run, &self.weights, &self.model) {
            (Some(run), _, _) => {
                let dir = RunDir::new(run.clone());
                let config_path = dir.config_path();
                if !config_path.exists() {
                    bail!(
                        "{} has no config.yaml: not a run folder written by `allconv train`",
                        run.display()
                    );
                }
                let saved: SavedRunConfig = load_yaml(&config_path)
                    .with_context(|| format!("reading {}", config_path.display()))?;
                let weights = dir.final_weights_path();
                if !weights.exists() {
                    bail!(
                        "{} does not exist (the run has not finished); pass a checkpoint with \
                         --weights {}/weights-*.safetensors --model {}",
                        weights.display(),
                        dir.checkpoint_path().display(),
                        saved.model
                    );
                }
                (saved.model, weights, saved.config)
            }
            (None, Some(weights), Some(model)) => {
                let experiment = match &self.config {
                    Some(path) => ExperimentConfig::load(path)?,
                    None => ExperimentConfig::default(),
                };
                (model.clone(), weights.clone(), experiment)
            }
            _ => bail!("say which network: --run RUN_DIR, or --weights FILE --model NAME"),
        };
        experiment.apply(&self.settings())?;

        let spec = allconv_models::spec(&model, &experiment.model)?;
        check_recorded_network(&weights, &spec.name, &experiment)?;
        let device = experiment.training.open_device()?;
        super::cpu_kernels::choose(self.cpu_kernels, Some(experiment.training.cpu_kernels))?;
        allconv_train::apply_device_settings(&experiment.training)?;
        let varmap = VarMap::new();
        let net = Network::new(&spec, &varmap, &device, 0)?;
        allconv_train::checkpoint::load_weights(&weights, &varmap)
            .with_context(|| format!("loading {} as {} weights", weights.display(), spec.name))?;
        Ok(Loaded {
            net,
            spec,
            weights,
            class_names: class_names(&experiment),
            experiment,
            device,
        })
    }

    /// The flags' settings, in the order they apply (each named as the user wrote it), then
    /// `--set`'s: they override the record or the configuration file.
    fn settings(&self) -> Vec<Setting> {
        let mut settings = Vec::new();
        if let Some(dir) = &self.data_dir {
            settings.push(Setting::from_flag(
                "--data-dir",
                "data.dir",
                dir.display().to_string(),
            ));
        }
        if let Some(p) = self.preprocessing {
            settings.push(Setting::from_flag(
                "--preprocessing",
                "data.preprocessing",
                p.name(),
            ));
        }
        if let Some(d) = self.device {
            settings.push(Setting::from_flag(
                "--device",
                "training.device",
                d.to_string(),
            ));
        }
        if let Some(k) = self.cpu_kernels {
            settings.push(Setting::from_flag(
                "--cpu-kernels",
                "training.cpu_kernels",
                k.name(),
            ));
        }
        settings.extend(self.set.iter().cloned());
        settings
    }
}

/// Refuses weights whose metadata says they are for another network or input than `model`
/// with `experiment` (the tensors of All-CNN-C would load as ConvPool-CNN-C without a word).
/// Files without the record (other tools, older versions) are not checked.
fn check_recorded_network(
    weights: &std::path::Path,
    model: &str,
    experiment: &ExperimentConfig,
) -> anyhow::Result<()> {
    use allconv_train::checkpoint::{read_tensor_file, WeightsInfo};
    let file = read_tensor_file(weights, &Device::Cpu)?;
    let Some(recorded) = WeightsInfo::from_metadata(&file.metadata) else {
        return Ok(());
    };
    let wanted = WeightsInfo {
        model: model.to_string(),
        num_classes: experiment.model.num_classes,
        final_relu: experiment.model.final_relu,
        preprocessing: experiment.data.preprocessing.to_string(),
        dataset: experiment.data.kind().name().to_string(),
    };
    let differences = recorded.differences(&wanted);
    if !differences.is_empty() {
        bail!(
            "{}: {} (as its metadata records); pass the model, configuration or \
             --preprocessing the weights were trained with",
            weights.display(),
            differences.join("; ")
        );
    }
    Ok(())
}

/// The data set of `experiment` (`data.dataset`, `data.labels`) from its `data.dir`.
pub fn raw_data(experiment: &ExperimentConfig) -> anyhow::Result<RawDataset> {
    let dir = experiment.data.resolved_dir();
    let kind = experiment.data.kind();
    allconv_cifar::load_dataset(kind, &dir)
        .with_context(|| format!("reading {} in {}", kind.name(), dir.display()))
}

/// The class names of `experiment`'s data set, one per network output: CIFAR-10's own; for
/// CIFAR-100 the release's `fine_label_names.txt` / `coarse_label_names.txt` in the data folder
/// when it holds one name per class, else `class K`.
pub fn class_names(experiment: &ExperimentConfig) -> Vec<String> {
    let kind = experiment.data.kind();
    let classes = kind.num_classes();
    if kind == allconv_cifar::DatasetKind::Cifar10 {
        return allconv_cifar::CLASS_NAMES
            .iter()
            .map(|c| c.to_string())
            .collect();
    }
    let file = match kind {
        allconv_cifar::DatasetKind::Cifar100Coarse => allconv_cifar::COARSE_LABEL_NAMES,
        _ => allconv_cifar::FINE_LABEL_NAMES,
    };
    let names: Vec<String> = std::fs::read_to_string(experiment.data.resolved_dir().join(file))
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if names.len() == classes {
        names
    } else {
        (0..classes).map(|k| format!("class {k}")).collect()
    }
}

/// The test split of `data` preprocessed as `experiment` says: statistics fitted on its training
/// part (the ZCA fit read from the cache when the training run left one there); the training
/// and validation splits are not normalised (evaluation and visualisation never read them).
pub fn prepare_test(experiment: &ExperimentConfig, data: &RawDataset) -> anyhow::Result<Prepared> {
    allconv_cifar::prepare_test(
        data,
        &experiment.data.prepare_options(),
        experiment.data.cache_dir.as_deref(),
    )
    .with_context(|| {
        format!(
            "preprocessing ({}) the data in {}",
            experiment.data.preprocessing,
            experiment.data.resolved_dir().display()
        )
    })
}
