//! Kill-and-resume equals an uninterrupted run, bit for bit, on the CPU.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use allconv_train::{
    run, EpochEnd, EpochHook, ExperimentConfig, RunConfig, RunDir, RunOptions, StopHandle,
};

#[test]
fn interrupted_and_resumed_run_ends_with_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 12, 20);
    // Dropout and shuffling on, and a milestone after the interruption: everything a resume must
    // reproduce (masks, batch order, momentum, learning rate).
    let mut config = common::small_config(&data, &tmp.path().join("straight"), 3);
    config.schedule.milestones = vec![2];
    config.training.batch_size = 16;
    let straight = common::run_config(&config, "strided-cnn-a", 0.01);
    run(&straight, &RunOptions::default()).unwrap();

    config.out.runs = tmp.path().join("interrupted");
    let interrupted = common::run_config(&config, "strided-cnn-a", 0.01);
    common::assert_stopped_at(run(&interrupted, &common::stop_after_epochs(1)), 1, 0);
    let dir = RunDir::new(interrupted.run_dir());
    assert!(!dir.result_path().exists());
    // A process killed after appending epoch 2's row but before its checkpoint leaves a row the
    // checkpoint does not cover; the resume must drop it, not duplicate it.
    let mut csv = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.metrics_path())
        .unwrap();
    writeln!(csv, "2,0.01,9,0.5,,,9,0.5,1,1").unwrap();
    drop(csv);

    // Resume one epoch at a time (two more processes), then compare.
    common::assert_stopped_at(run(&interrupted, &common::stop_after_epochs(1)), 2, 0);
    let result = run(&interrupted, &common::stop_after_epochs(1)).unwrap();
    assert_eq!(result.epochs_run, 3);

    common::assert_same_weights(&straight.run_dir(), &interrupted.run_dir(), "after resume");
    assert_eq!(
        dir.read_metrics()
            .unwrap()
            .iter()
            .map(|r| r.epoch)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    common::assert_same_metrics(&straight.run_dir(), &interrupted.run_dir());
    // Only the newest checkpoint's tensor files remain.
    let mut files: Vec<String> = std::fs::read_dir(dir.checkpoint_path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "momentum-0003.safetensors",
            "state.json",
            "weights-0003.safetensors"
        ]
    );
}

/// A 2-epoch Strided-CNN-A run under `tmp` stopped after its first epoch (checkpointed), its
/// configuration, and the options of a process that stops it again after one epoch.
fn stopped_after_one_epoch(tmp: &Path) -> (ExperimentConfig, RunConfig, RunOptions) {
    let data = tmp.join("data");
    common::synthetic_data(&data, 4, 10);
    let mut config = common::small_config(&data, &tmp.join("runs"), 2);
    config.training.batch_size = 10;
    let rc = common::run_config(&config, "strided-cnn-a", 0.01);
    common::assert_stopped_at(run(&rc, &common::stop_after_epochs(1)), 1, 0);
    (config, rc, common::stop_after_epochs(1))
}

#[test]
fn resuming_with_a_different_configuration_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut config, _, stop) = stopped_after_one_epoch(tmp.path());
    config.optim.weight_decay = 0.0005;
    let changed = common::run_config(&config, "strided-cnn-a", 0.01);
    let err = run(&changed, &stop).unwrap_err().to_string();
    assert!(err.contains("config.optim.weight_decay"), "{err}");
    assert!(err.contains("config.yaml"), "{err}");
}

#[test]
fn the_epoch_observer_sees_every_epoch_and_can_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 4, 10);
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 3);
    config.training.batch_size = 10;
    let rc = common::run_config(&config, "strided-cnn-a", 0.01);
    // The observer records every epoch end and raises the run's stop handle at `stop_at`.
    let recording = |stop_at: Option<usize>| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let stop = StopHandle::new();
        let raise = stop.clone();
        let hook: EpochHook = Arc::new(move |end: &EpochEnd<'_>| {
            log.lock()
                .unwrap()
                .push((end.metrics.epoch, end.epochs_this_process, end.finished));
            if Some(end.epochs_this_process) == stop_at {
                raise.stop();
            }
        });
        let options = RunOptions {
            on_epoch_end: Some(hook),
            stop,
            ..Default::default()
        };
        (seen, options)
    };
    let (seen, stop_after_two) = recording(Some(2));
    common::assert_stopped_at(run(&rc, &stop_after_two), 2, 0);
    // (epoch, epochs of this process, finished)
    assert_eq!(*seen.lock().unwrap(), [(1, 1, false), (2, 2, false)]);
    let (seen, carry_on) = recording(None);
    assert_eq!(run(&rc, &carry_on).unwrap().epochs_run, 3);
    assert_eq!(*seen.lock().unwrap(), [(3, 1, true)]);
}

#[test]
fn a_checkpoint_written_for_another_seed_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rc, stop) = stopped_after_one_epoch(tmp.path());
    // The weights in the checkpoint claim another initialisation seed than this run's.
    let state_path = RunDir::new(rc.run_dir()).checkpoint().state_path();
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["seeds"]["init"] = 99.into();
    std::fs::write(&state_path, state.to_string()).unwrap();
    let err = run(&rc, &stop).unwrap_err().to_string();
    assert!(
        err.contains("state.json") && err.contains("initialisation seed 99"),
        "{err}"
    );
}

#[test]
fn resume_removes_tensor_files_newer_than_the_last_checkpoint() {
    // A save that failed between its tensors and state.json (a full disk) leaves complete
    // weights / momentum files of epoch 2 while state.json names epoch 1's: the resume deletes
    // them instead of leaving files no state points to.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 10, 20);
    let config = common::small_config(&data, &tmp.path().join("runs"), 3);
    let point = common::run_config(&config, "strided-cnn-a", 0.01);
    common::assert_stopped_at(run(&point, &common::stop_after_epochs(1)), 1, 0);
    let checkpoint = RunDir::new(point.run_dir())
        .checkpoint()
        .path()
        .to_path_buf();
    let (weights1, momentum1) = (
        checkpoint.join("weights-0001.safetensors"),
        checkpoint.join("momentum-0001.safetensors"),
    );
    assert!(weights1.exists() && momentum1.exists());
    let (weights2, momentum2) = (
        checkpoint.join("weights-0002.safetensors"),
        checkpoint.join("momentum-0002.safetensors"),
    );
    std::fs::copy(&weights1, &weights2).unwrap();
    std::fs::copy(&momentum1, &momentum2).unwrap();

    // Opening the run for the resume restores epoch 1 and clears the orphans at once.
    let options = allconv_train::RunOptions {
        progress: allconv_train::Progress::Silent,
        ..Default::default()
    };
    match allconv_train::Trainer::open(&point, &options).unwrap() {
        allconv_train::Opened::Ready(_) => {}
        allconv_train::Opened::Finished(_) => panic!("the run had not finished"),
    }
    assert!(weights1.exists() && momentum1.exists());
    assert!(!weights2.exists(), "stale weights-0002 left");
    assert!(!momentum2.exists(), "stale momentum-0002 left");
}
