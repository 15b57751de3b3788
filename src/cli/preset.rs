//! The named experiments: one preset per file under `configs/` (a test keeps the two in step), so
//! `--preset NAME` and `--config configs/NAME.yaml` are the same experiment.

use std::path::PathBuf;

/// A shipped experiment, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// configs/quick.yaml: All-CNN-C on a CIFAR-10 subset, on the CPU in minutes.
    Quick,
    /// configs/paper.yaml: the paper's Table 3 grid and schedule (12 networks, 4 learning rates).
    Paper,
    /// configs/paper-val.yaml: the paper's grid with a validation split to choose the rate on.
    PaperVal,
    /// configs/paper-aug.yaml: All-CNN-C on CIFAR-10 with data augmentation (the paper's 7.25%).
    PaperAug,
    /// configs/paper-cifar100.yaml: All-CNN-C on CIFAR-100 (the paper's 33.71%).
    PaperCifar100,
    /// configs/gpu-smoke.yaml: 2 networks, 4 epochs, a 5,000-image subset, on CUDA.
    GpuSmoke,
}

impl Preset {
    /// The experiment file of the preset, relative to the repository root:
    /// `configs/<name>.yaml`.
    pub fn config_path(self) -> PathBuf {
        let name = clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        PathBuf::from(format!("configs/{name}.yaml"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_experiment_has_its_preset_and_every_preset_its_file() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut shipped: Vec<PathBuf> = std::fs::read_dir(root.join("configs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        shipped.sort();
        let mut presets: Vec<PathBuf> = <Preset as clap::ValueEnum>::value_variants()
            .iter()
            .map(|p| p.config_path())
            .collect();
        presets.sort();
        assert_eq!(presets, shipped);
        // The names users type, by hand.
        assert_eq!(
            Preset::PaperCifar100.config_path(),
            PathBuf::from("configs/paper-cifar100.yaml")
        );
        assert_eq!(
            Preset::PaperAug.config_path(),
            PathBuf::from("configs/paper-aug.yaml")
        );
    }
}
