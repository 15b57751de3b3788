//! A run stopped part-way through an epoch (what a stop signal does: `RunOptions::stop`, here
//! raised by a step observer after a known number of steps) resumes at that step and ends bit
//! for bit where an uninterrupted run ends; stops without progress are counted and capped
//! (docs/protocol.md, "Training": interruptions change nothing).

mod common;

use std::path::Path;

use allconv_train::{run, RunConfig, RunDir, RunOptions, StopHandle, TrainError};

/// 60 synthetic training images in batches of 16: 4 steps per epoch (16, 16, 16, 12); 3 epochs,
/// dropout and shuffling on, the rate lowered after epoch 2, losses read every 3 steps.
fn point(tmp: &Path, runs: &str) -> RunConfig {
    let data = tmp.join("data");
    if !data.exists() {
        common::synthetic_data(&data, 12, 20);
    }
    let mut config = common::small_config(&data, &tmp.join(runs), 3);
    config.schedule.milestones = vec![2];
    config.training.batch_size = 16;
    config.training.loss_read_every = 3;
    common::run_config(&config, "strided-cnn-a", 0.01)
}

#[test]
fn a_run_stopped_mid_epoch_resumes_at_its_step_with_identical_weights_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = point(tmp.path(), "straight");
    run(&straight, &RunOptions::default()).unwrap();

    let stopped = point(tmp.path(), "stopped");
    let dir = RunDir::new(stopped.run_dir());
    // 5 steps: epoch 1 (4 steps) and step 1 of epoch 2.
    common::assert_stopped_at(run(&stopped, &common::stop_after_steps(5)), 1, 1);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.checkpoint().state_path()).unwrap())
            .unwrap();
    assert_eq!(
        (state["epoch"].as_u64(), state["step"].as_u64()),
        (Some(1), Some(1))
    );
    // The partial sums cover the one step of epoch 2 done: 16 images.
    assert_eq!(state["partial"]["seen"].as_u64(), Some(16));
    assert!(dir
        .checkpoint()
        .file("weights-0001-step-000001.safetensors")
        .exists());
    // Two more steps (steps 2 and 3 of epoch 2; not its last, 4), then to the end.
    common::assert_stopped_at(run(&stopped, &common::stop_after_steps(2)), 1, 3);
    let result = run(&stopped, &RunOptions::default()).unwrap();
    assert_eq!(result.epochs_run, 3);

    common::assert_same_weights(
        &straight.run_dir(),
        &stopped.run_dir(),
        "after a mid-epoch resume",
    );
    assert_eq!(
        dir.read_metrics()
            .unwrap()
            .iter()
            .map(|r| r.epoch)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The resumed epoch's training loss and accuracy include the steps of the stopped process:
    // the same sums in the same order as uninterrupted.
    common::assert_same_metrics(&straight.run_dir(), &stopped.run_dir());
}

#[test]
fn a_stop_raised_before_the_run_starts_checkpoints_where_it_stands() {
    // What a signal during the data loading does: the handle is raised when the first step is
    // due.
    let tmp = tempfile::tempdir().unwrap();
    let stopped = point(tmp.path(), "runs");
    let raised = StopHandle::new();
    raised.stop();
    let flagged = RunOptions {
        stop: raised,
        ..Default::default()
    };
    common::assert_stopped_at(run(&stopped, &flagged), 0, 0);
    // The next process, not asked to stop, trains the run to its end.
    assert_eq!(run(&stopped, &RunOptions::default()).unwrap().epochs_run, 3);
}

#[test]
fn stops_without_progress_are_capped_for_requeues_and_cleared_by_a_fresh_start() {
    let tmp = tempfile::tempdir().unwrap();
    let stopped = point(tmp.path(), "runs");
    let state_path = RunDir::new(stopped.run_dir()).checkpoint().state_path();
    let stalled = || {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        state["stalled_stops"].as_u64()
    };
    // A requeue with a cap of 3 that stops before its first step, three times.
    let requeue_stopping_at_once = RunOptions {
        max_stalled_stops: Some(3),
        ..common::stop_after_steps(0)
    };
    for expected in 1..=3 {
        common::assert_stopped_at(run(&stopped, &requeue_stopping_at_once), 0, 0);
        assert_eq!(stalled(), Some(expected));
    }
    // The fourth requeue is refused, saying why.
    let requeue = RunOptions {
        max_stalled_stops: Some(3),
        ..Default::default()
    };
    let err = run(&stopped, &requeue).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NoProgress {
                stops: 3,
                epoch: 1,
                step: 0
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("stopped 3 times in a row"),
        "{err}"
    );
    // A stop after progress (2 steps) resets the count; a fresh start (no cap) clears it.
    let fresh_two_steps = common::stop_after_steps(2);
    common::assert_stopped_at(run(&stopped, &fresh_two_steps), 0, 2);
    assert_eq!(stalled(), Some(0));
    assert_eq!(run(&stopped, &requeue).unwrap().epochs_run, 3);
}

#[test]
fn a_checkpoint_without_the_step_fields_of_earlier_versions_still_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = point(tmp.path(), "straight");
    run(&straight, &RunOptions::default()).unwrap();
    let older = point(tmp.path(), "older");
    // 4 steps = exactly epoch 1: an epoch-end checkpoint, as earlier versions wrote them.
    common::assert_stopped_at(run(&older, &common::stop_after_epochs(1)), 1, 0);
    let state_path = RunDir::new(older.run_dir()).checkpoint().state_path();
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let fields = state.as_object_mut().unwrap();
    for key in ["step", "partial", "stalled_stops"] {
        assert!(fields.remove(key).is_some(), "state.json has no `{key}`");
    }
    std::fs::write(&state_path, state.to_string()).unwrap();
    assert_eq!(run(&older, &RunOptions::default()).unwrap().epochs_run, 3);
    common::assert_same_weights(
        &straight.run_dir(),
        &older.run_dir(),
        "after a mid-epoch resume",
    );
}
