//! Shared helpers of the trainer tests: a synthetic data set and a small, fast configuration.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use allconv_train::config::{Device, Preprocessing};
use allconv_train::{
    final_weights, EpochEnd, EpochMetrics, ExperimentConfig, RunConfig, RunDir, RunOptions,
    RunResult, StepEnd, StopHandle, TrainError,
};

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
    c.training.device = Device::Cpu;
    c.out.runs = runs.to_path_buf();
    c
}

/// The run configuration of `model` at `lr`, seed 0.
pub fn run_config(c: &ExperimentConfig, model: &str, lr: f64) -> RunConfig {
    RunConfig::new(c.clone(), model, lr, 0).unwrap()
}

/// Options of one process that stops (as on a stop signal) once it has trained `epochs` epochs:
/// its epoch-end observer raises the run's stop handle. Each call has a handle of its own, as
/// each process has.
pub fn stop_after_epochs(epochs: usize) -> RunOptions {
    let stop = StopHandle::new();
    let raise = stop.clone();
    RunOptions {
        on_epoch_end: Some(Arc::new(move |end: &EpochEnd<'_>| {
            if end.epochs_this_process == epochs {
                raise.stop();
            }
        })),
        stop,
        ..Default::default()
    }
}

/// Options of one process that stops (as on a stop signal) once it has trained `steps` SGD
/// steps: its step observer raises the run's stop handle; for 0 the handle is raised before
/// the run starts (a signal during the data loading).
pub fn stop_after_steps(steps: usize) -> RunOptions {
    let stop = StopHandle::new();
    if steps == 0 {
        stop.stop();
    }
    let raise = stop.clone();
    RunOptions {
        on_step: Some(Arc::new(move |end: &StepEnd| {
            if end.steps_this_process == steps {
                raise.stop();
            }
        })),
        stop,
        ..Default::default()
    }
}

/// Asserts that a run ended on a stop request after `epochs_done` epochs and `step` steps of
/// the next (step 0: at an epoch's end), with its checkpoint there.
pub fn assert_stopped_at(outcome: Result<RunResult, TrainError>, epochs_done: usize, step: usize) {
    match outcome {
        Err(TrainError::Stopped {
            epochs_done: done,
            step: at,
        }) if (done, at) == (epochs_done, step) => {}
        other => panic!(
            "expected a stop after {epochs_done} epochs and {step} steps of the next, got \
             {other:?}"
        ),
    }
}

/// Asserts that the final weights of the runs in folders `a` and `b` have the same tensors, bit
/// for bit (`what` says which comparison failed).
pub fn assert_same_weights(a: &Path, b: &Path, what: &str) {
    let a = final_weights(a).unwrap();
    let b = final_weights(b).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, ta) in &a {
        let va = ta.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let vb = b[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} differs {what}"
        );
    }
}

/// Asserts that the runs in folders `a` and `b` wrote `metrics.csv` rows of the same epochs
/// with the same numbers, bit for bit (learning rate, training, validation and test loss and
/// accuracy; not the timings).
pub fn assert_same_metrics(a: &Path, b: &Path) {
    let rows_a = RunDir::new(a).read_metrics().unwrap();
    let rows_b = RunDir::new(b).read_metrics().unwrap();
    let epochs = |rows: &[EpochMetrics]| rows.iter().map(|r| r.epoch).collect::<Vec<_>>();
    assert_eq!(epochs(&rows_a), epochs(&rows_b));
    let bits = |v: Option<f64>| v.map(f64::to_bits);
    for (ra, rb) in rows_a.iter().zip(&rows_b) {
        let numbers = |r: &EpochMetrics| {
            (
                r.lr.to_bits(),
                r.train_loss.to_bits(),
                r.train_acc.to_bits(),
                [bits(r.val_loss), bits(r.val_acc)],
                [bits(r.test_loss), bits(r.test_acc)],
            )
        };
        assert_eq!(numbers(ra), numbers(rb), "epoch {}", ra.epoch);
    }
}

/// Whether the final weights of the runs in folders `a` and `b` differ anywhere.
pub fn weights_differ(a: &Path, b: &Path) -> bool {
    let a = final_weights(a).unwrap();
    let b = final_weights(b).unwrap();
    a.iter().any(|(name, ta)| {
        let va = ta.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let vb = b[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        va.iter().zip(&vb).any(|(x, y)| x.to_bits() != y.to_bits())
    })
}
