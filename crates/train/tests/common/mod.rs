//! Shared helpers of the trainer tests: a synthetic data set and a small, fast configuration.

#![allow(dead_code)]

use std::path::Path;

use allconv_train::config::{DeviceKind, Preprocessing};
use allconv_train::{ExperimentConfig, RunConfig};

/// Writes a synthetic CIFAR-10 folder (5 x `per_file` training images, `test` test images).
pub fn synthetic_data(dir: &Path, per_file: usize, test: usize) {
    allconv_cifar::write_synthetic_dir(dir, per_file, test, 7).unwrap();
}

/// A configuration that trains `model` for `epochs` epochs on the synthetic data in `data`,
/// writing run folders under `runs`.
pub fn small_config(data: &Path, runs: &Path, epochs: usize) -> ExperimentConfig {
    let mut c = ExperimentConfig::default();
    c.data.dir = Some(data.to_path_buf());
    c.data.preprocessing = Preprocessing::Standardize;
    c.schedule.epochs = epochs;
    c.schedule.milestones = vec![2];
    c.training.batch_size = 25;
    c.training.device = DeviceKind::Cpu;
    c.out.runs = runs.to_path_buf();
    c
}

/// The run configuration of `model` at `lr`, seed 0.
pub fn run_config(c: &ExperimentConfig, model: &str, lr: f64) -> RunConfig {
    RunConfig::new(c.clone(), model, lr, 0).unwrap()
}
