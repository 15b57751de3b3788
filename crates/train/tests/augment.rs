//! `data.augment` in the trainer (docs/protocol.md, "Data augmentation"): a run interrupted and
//! resumed with augmentation on ends bit-identical to an uninterrupted one, augmentation changes
//! what is trained on, and validation and test images are never augmented.

mod common;

use allconv_train::{run, RunDir, RunOptions};

#[test]
fn interrupted_and_resumed_augmented_run_ends_with_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 12, 20);
    let mut config = common::small_config(&data, &tmp.path().join("straight"), 3);
    config.data.augment = true;
    config.training.batch_size = 16;
    let straight = common::run_config(&config, "strided-cnn-a", 0.01);
    run(&straight, &RunOptions::default()).unwrap();

    config.out.runs = tmp.path().join("interrupted");
    let interrupted = common::run_config(&config, "strided-cnn-a", 0.01);
    // Three processes, each stopped after one epoch of its own.
    for done in [1, 2] {
        common::assert_stopped_at(run(&interrupted, &common::stop_after_epochs(1)), done, 0);
    }
    assert_eq!(
        run(&interrupted, &common::stop_after_epochs(1))
            .unwrap()
            .epochs_run,
        3
    );
    common::assert_same_weights(&straight.run_dir(), &interrupted.run_dir(), "after resume");

    // The same run without augmentation trains on other images: other weights.
    config.data.augment = false;
    config.out.runs = tmp.path().join("plain");
    let plain = common::run_config(&config, "strided-cnn-a", 0.01);
    run(&plain, &RunOptions::default()).unwrap();
    assert!(common::weights_differ(
        &straight.run_dir(),
        &plain.run_dir()
    ));
}

#[test]
fn validation_and_test_images_are_not_augmented() {
    // A learning rate of 1e-30 and no weight decay leave the weights (of order 0.01-0.1) as
    // they were initialised, up to biases of order 1e-30: after one epoch, the validation and
    // test losses of an augmented and a plain run are those of the same network on the same
    // images, while the training loss, measured on the augmented images, differs.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 12, 20);
    let mut config = common::small_config(&data, &tmp.path().join("aug"), 1);
    config.data.validation = 12;
    config.optim.weight_decay = 0.0;
    config.data.augment = true;
    let aug = common::run_config(&config, "strided-cnn-a", 1e-30);
    run(&aug, &RunOptions::default()).unwrap();
    config.data.augment = false;
    config.out.runs = tmp.path().join("plain");
    let plain = common::run_config(&config, "strided-cnn-a", 1e-30);
    run(&plain, &RunOptions::default()).unwrap();

    let a = &RunDir::new(aug.run_dir()).read_metrics().unwrap()[0];
    let p = &RunDir::new(plain.run_dir()).read_metrics().unwrap()[0];
    let (va, vp) = (a.val_loss.unwrap(), p.val_loss.unwrap());
    assert!((va - vp).abs() < 1e-6, "validation loss {va} vs {vp}");
    let (ta, tp) = (a.test_loss.unwrap(), p.test_loss.unwrap());
    assert!((ta - tp).abs() < 1e-6, "test loss {ta} vs {tp}");
    assert!(
        (a.train_loss - p.train_loss).abs() > 1e-4,
        "training loss {} vs {}: augmentation changed nothing",
        a.train_loss,
        p.train_loss
    );
}
