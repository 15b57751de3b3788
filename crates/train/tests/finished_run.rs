//! A finished run folder asked to train again: skipped under its own configuration, refused
//! (naming the differing keys) under another one.

mod common;

use allconv_train::{run, RunOptions, RunStatus, TrainError};
use common::{run_config, small_config, synthetic_data};

#[test]
fn a_finished_run_is_skipped_only_under_the_configuration_it_finished_with() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, runs) = (tmp.path().join("data"), tmp.path().join("runs"));
    synthetic_data(&data, 10, 20);
    let one_epoch = small_config(&data, &runs, 1);
    let first = run(
        &run_config(&one_epoch, "strided-cnn-a", 0.01),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (first.status.clone(), first.epochs_run),
        (RunStatus::Done, 1)
    );

    // The same configuration again: the finished result, not a second training.
    let again = run(
        &run_config(&one_epoch, "strided-cnn-a", 0.01),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(again.epochs_run, 1);
    assert_eq!(again.final_test_error, first.final_test_error);

    // Two epochs asked of a folder that finished after one: refused, naming the key.
    let two_epochs = small_config(&data, &runs, 2);
    let error = run(
        &run_config(&two_epochs, "strided-cnn-a", 0.01),
        &RunOptions::default(),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, TrainError::RecordDiffers { .. }),
        "{message}"
    );
    assert!(
        message.contains("schedule.epochs: saved 1, now 2"),
        "{message}"
    );
}
