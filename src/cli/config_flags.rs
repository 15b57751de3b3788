//! The configuration flags `allconv train`, `allconv reproduce` and `allconv config` share:
//! `--set key=value` for any key (docs/configuration.md lists them) and short flags for the most
//! common ones.

use std::path::PathBuf;

use allconv_train::Setting;
use allconv_vocab::{Device, Precision};

/// Configuration overrides on the command line.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigFlags {
    /// Set any configuration key, e.g. `--set optim.momentum=0.95`, `--set
    /// schedule.milestones=[100,150]`, `--set data.validation=5000` (the value is YAML; repeat
    /// for several keys; docs/configuration.md lists them). Applied after the short flags.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Setting>,
    /// schedule.epochs
    #[arg(long)]
    pub epochs: Option<usize>,
    /// out.runs: root of the run folders (`<runs>/<model>/lr-<lr>/seed-<seed>/`).
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
    // `--out` until the release that named the runs root `--runs` everywhere
    // (`super::deprecated`).
    #[arg(long = "out", value_name = "DIR", hide = true, conflicts_with = "runs")]
    pub deprecated_out: Option<PathBuf>,
    /// training.device
    #[arg(long)]
    pub device: Option<Device>,
    /// data.dir: the data set's folder [default: its folder in the data root $ALLCONV_DATA
    /// (else data): cifar-10-batches-bin or cifar-100-binary].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// training.tf32: the arithmetic of CUDA convolutions and matrix products (recorded in each
    /// run's config and stated in the report).
    #[arg(long)]
    pub precision: Option<Precision>,
    // `--tf32`, the previous spelling of `--precision tf32` (`super::deprecated`).
    #[arg(long = "tf32", hide = true, conflicts_with = "precision")]
    pub deprecated_tf32: bool,
    /// training.skip_device_check=true: on CUDA, train without the device check (`allconv
    /// check`); recorded in each run's config and stated in the report.
    #[arg(long)]
    pub skip_check: bool,
    /// training.cpu_kernels: the CPU kernel path (over ALLCONV_CPU_KERNELS; recorded in each
    /// run's provenance).
    #[arg(long, value_name = "PATH", value_parser = super::choices::cpu_kernels())]
    pub cpu_kernels: Option<allconv_models::ops::CpuKernelsChoice>,
}

impl ConfigFlags {
    /// The overrides, short flags first, in the order they apply.
    pub fn settings(&self) -> Vec<Setting> {
        let path = |p: &PathBuf| p.display().to_string();
        let mut settings = Vec::new();
        if let Some(v) = self.epochs {
            settings.push(Setting::from_flag("--epochs", "schedule.epochs", v));
        }
        if let Some(v) = &self.runs {
            settings.push(Setting::from_flag("--runs", "out.runs", path(v)));
        }
        if let Some(v) = &self.deprecated_out {
            settings.push(Setting::from_flag("--out", "out.runs", path(v)));
        }
        if let Some(v) = self.device {
            settings.push(Setting::from_flag(
                "--device",
                "training.device",
                v.to_string(),
            ));
        }
        if let Some(v) = &self.data_dir {
            settings.push(Setting::from_flag("--data-dir", "data.dir", path(v)));
        }
        if let Some(p) = self.precision {
            settings.push(Setting::from_flag_as_written(
                format!("--precision {p}"),
                "training.tf32",
                p.is_tf32(),
            ));
        }
        if self.deprecated_tf32 {
            settings.push(Setting::from_flag("--tf32", "training.tf32", true));
        }
        if self.skip_check {
            settings.push(Setting::from_flag(
                "--skip-check",
                "training.skip_device_check",
                true,
            ));
        }
        if let Some(v) = self.cpu_kernels {
            settings.push(Setting::from_flag(
                "--cpu-kernels",
                "training.cpu_kernels",
                v.name(),
            ));
        }
        settings.extend(self.set.iter().cloned());
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_check_sets_the_recorded_key() {
        let flags = ConfigFlags {
            skip_check: true,
            ..ConfigFlags::default()
        };
        let mut experiment = allconv_train::ExperimentConfig::default();
        assert!(!experiment.training.skip_device_check, "off by default");
        experiment.apply(&flags.settings()).unwrap();
        assert!(experiment.training.skip_device_check);
    }

    #[test]
    fn cpu_kernels_sets_the_recorded_key() {
        use allconv_models::ops::CpuKernelsChoice;
        let mut experiment = allconv_train::ExperimentConfig::default();
        assert_eq!(experiment.training.cpu_kernels, CpuKernelsChoice::Auto);
        let flags = ConfigFlags {
            cpu_kernels: Some(CpuKernelsChoice::Portable),
            ..ConfigFlags::default()
        };
        assert_eq!(flags.settings()[0].written(), "--cpu-kernels portable");
        experiment.apply(&flags.settings()).unwrap();
        assert_eq!(experiment.training.cpu_kernels, CpuKernelsChoice::Portable);
    }

    #[test]
    fn precision_sets_the_recorded_tf32_key_both_ways() {
        let mut experiment = allconv_train::ExperimentConfig::default();
        let tf32 = ConfigFlags {
            precision: Some(Precision::Tf32),
            ..ConfigFlags::default()
        };
        assert_eq!(tf32.settings()[0].written(), "--precision tf32");
        experiment.apply(&tf32.settings()).unwrap();
        assert_eq!(experiment.training.precision, Precision::Tf32);
        let fp32 = ConfigFlags {
            precision: Some(Precision::Fp32),
            ..ConfigFlags::default()
        };
        experiment.apply(&fp32.settings()).unwrap();
        assert_eq!(experiment.training.precision, Precision::Fp32);
    }
}
