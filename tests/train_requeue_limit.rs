//! `allconv train` in a requeued Slurm task (`SLURM_RESTART_COUNT` > 0) refuses a run that was
//! stopped `slurm.max_stalled_requeues` times in a row without training a step, saying why; a
//! first start (no restart count) trains it (docs/cluster.md, "Cluster (Slurm)").

use std::path::Path;
use std::process::{Command, Output};

use allconv_train::{ExperimentConfig, RunConfig, RunOptions, StopHandle, TrainError};

/// 2 epochs of Strided-CNN-A on 50 synthetic images, the stall cap at 2.
fn experiment(dir: &Path) -> (std::path::PathBuf, ExperimentConfig) {
    let data = dir.join("data");
    allconv_cifar::write_synthetic_dir(&data, 10, 20, 3).unwrap();
    let yaml = format!(
        "data:\n  dir: {data:?}\n  preprocessing: scale\n\
         schedule:\n  epochs: 2\n  milestones: []\n\
         training:\n  batch_size: 25\n  device: cpu\n  stuck_epochs: 0\n\
         grid:\n  models: [strided-cnn-a]\n  lrs: [0.01]\n\
         out:\n  runs: {:?}\n\
         slurm:\n  max_stalled_requeues: 2\n",
        dir.join("runs")
    );
    let path = dir.join("exp.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = ExperimentConfig::load(&path).unwrap();
    (path, config)
}

fn train(config: &Path, restart_count: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_allconv"));
    command.args(["train", "--quiet", "--config"]).arg(config);
    command.env_remove("SLURM_RESTART_COUNT");
    if let Some(count) = restart_count {
        command.env("SLURM_RESTART_COUNT", count);
    }
    command.output().unwrap()
}

#[test]
fn a_requeue_after_too_many_stalled_stops_fails_saying_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, config) = experiment(tmp.path());
    // Two requeued processes stopped before their first step, as a time limit shorter than the
    // data loading gives: the stop is raised before the run starts.
    let point = RunConfig::new(config, "strided-cnn-a", 0.01, 0).unwrap();
    let raised = StopHandle::new();
    raised.stop();
    let at_once = RunOptions {
        stop: raised,
        max_stalled_stops: Some(2),
        ..Default::default()
    };
    for _ in 0..2 {
        assert!(matches!(
            allconv_train::run(&point, &at_once),
            Err(TrainError::Stopped { .. })
        ));
    }

    let requeued = train(&path, Some("2"));
    let stderr = String::from_utf8_lossy(&requeued.stderr);
    assert!(!requeued.status.success(), "{stderr}");
    assert!(stderr.contains("stopped 2 times in a row"), "{stderr}");
    assert!(stderr.contains("slurm.time"), "{stderr}");
    assert!(!point.run_dir().join("result.json").exists());

    // A fresh submission (no restart count) clears the count and trains the run.
    let fresh = train(&path, None);
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    assert!(point.run_dir().join("result.json").exists());
}
