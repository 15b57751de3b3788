//! Divergence is a result: a forced huge learning rate ends the run with status `diverged`.

mod common;

use allconv_train::divergence::{at_chance, non_finite_loss, StuckDetector};
use allconv_train::{run, RunDir, RunOptions, RunStatus};

#[test]
fn huge_learning_rate_ends_as_diverged_not_as_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 10, 10);
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 6);
    config.training.stuck_epochs = 2;
    config.training.batch_size = 10;
    let rc = common::run_config(&config, "strided-cnn-a", 1e4);
    let result = run(&rc, &RunOptions::default()).unwrap();
    eprintln!("{result:?}");
    assert_eq!(result.status, RunStatus::Diverged);
    assert!(result.epochs_run < 6, "{result:?}");
    let reason = result.reason.clone().unwrap();
    assert!(
        reason.contains("non-finite") || reason.contains("stuck"),
        "{reason}"
    );
    let dir = RunDir::new(rc.run_dir());
    let json = std::fs::read_to_string(dir.result_path()).unwrap();
    assert!(json.contains("\"status\": \"diverged\""), "{json}");
    assert_eq!(dir.read_metrics().unwrap().len(), result.epochs_run);
}

#[test]
fn a_dead_network_is_stopped_as_stuck_after_the_configured_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 10, 10);
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 6);
    config.training.stuck_epochs = 2;
    config.training.batch_size = 25;
    // Biases of -100 silence every ReLU: all class scores are 0, so the loss is exactly ln(10),
    // the arg-max is always class 0 (10% of the balanced synthetic labels) and no gradient flows:
    // the paper's "dead final ReLU" trap, made certain.
    config.model.bias_init = -100.0;
    let rc = common::run_config(&config, "strided-cnn-a", 0.01);
    let result = run(&rc, &RunOptions::default()).unwrap();
    assert_eq!(result.status, RunStatus::Diverged);
    assert_eq!(result.epochs_run, 2, "{result:?}");
    assert!(
        result.reason.as_deref().unwrap().starts_with("stuck"),
        "{result:?}"
    );
    let rows = RunDir::new(rc.run_dir()).read_metrics().unwrap();
    assert_eq!(rows.len(), 2);
    assert!((rows[1].train_loss - std::f64::consts::LN_10).abs() < 1e-6);
    assert!((rows[1].train_acc - 0.1).abs() < 1e-12);

    // Killed after the last checkpoint but before result.json: the resumed process stops at the
    // same epoch instead of training on.
    std::fs::remove_file(RunDir::new(rc.run_dir()).result_path()).unwrap();
    let again = run(&rc, &RunOptions::default()).unwrap();
    assert_eq!(
        (again.status.clone(), again.epochs_run),
        (RunStatus::Diverged, 2)
    );
    assert!(
        again.reason.as_deref().unwrap().starts_with("stuck"),
        "{again:?}"
    );
}

#[test]
fn non_finite_losses_are_recognised() {
    assert!(non_finite_loss(f64::NAN, 1, 1).is_some());
    assert!(non_finite_loss(f64::INFINITY, 1, 1).is_some());
    assert!(non_finite_loss(1e30, 1, 1).is_none());
    let reason = non_finite_loss(f64::NAN, 3, 17).unwrap();
    assert!(
        reason.contains("epoch 3") && reason.contains("step 17"),
        "{reason}"
    );
}

#[test]
fn stuck_needs_chance_loss_and_chance_accuracy_for_consecutive_epochs() {
    // A stuck run's loss: ln(10) = 2.302585 up to float noise.
    const STUCK_LOSS: f64 = std::f64::consts::LN_10 + 1.5e-5;
    // ln(10) = 2.302585...: the loss of ten equal class scores.
    assert!(at_chance(10, STUCK_LOSS, 0.1));
    assert!(at_chance(10, 2.3020, 0.109));
    assert!(!at_chance(10, 2.2990, 0.1), "loss 3.6e-3 below ln(10)");
    assert!(
        !at_chance(10, STUCK_LOSS, 0.12),
        "accuracy 2 points above chance"
    );

    let mut d = StuckDetector {
        limit: 3,
        count: 0,
        classes: 10,
    };
    assert!(d.end_epoch(1, STUCK_LOSS, 0.1).is_none());
    assert!(d.end_epoch(2, STUCK_LOSS, 0.1).is_none());
    assert!(
        d.end_epoch(3, 1.9, 0.3).is_none(),
        "a good epoch resets the count"
    );
    assert_eq!(d.count, 0);
    assert!(d.end_epoch(4, STUCK_LOSS, 0.1).is_none());
    assert!(d.end_epoch(5, STUCK_LOSS, 0.1).is_none());
    let reason = d.end_epoch(6, STUCK_LOSS, 0.1).unwrap();
    assert!(
        reason.starts_with("stuck") && reason.contains("3 consecutive"),
        "{reason}"
    );

    let mut off = StuckDetector {
        limit: 0,
        count: 0,
        classes: 10,
    };
    for e in 1..=20 {
        assert!(
            off.end_epoch(e, STUCK_LOSS, 0.1).is_none(),
            "limit 0 disables the check"
        );
    }
}

#[test]
fn chance_level_follows_the_number_of_classes() {
    // A constant prediction over K classes: loss ln(K), accuracy 1/K on balanced labels.
    // CIFAR-100 fine: ln(100) = 4.60517, 1%; coarse: ln(20) = 2.99573, 5%.
    const LN_100: f64 = 4.605_170_185_988_091;
    const LN_20: f64 = 2.995_732_273_553_991;
    assert!(at_chance(100, LN_100 + 2e-4, 0.011));
    assert!(at_chance(20, LN_20 - 2e-4, 0.05));
    assert!(
        !at_chance(10, LN_100, 0.01),
        "ln(100) is not chance over 10 classes"
    );
    assert!(
        !at_chance(100, std::f64::consts::LN_10, 0.1),
        "ln(10), 10% is not chance over 100 classes"
    );
    assert!(!at_chance(100, LN_100, 0.03), "2 points above 1%");

    let mut d = StuckDetector {
        limit: 2,
        count: 0,
        classes: 100,
    };
    assert!(d.end_epoch(1, LN_100, 0.01).is_none());
    let reason = d.end_epoch(2, LN_100, 0.01).unwrap();
    assert!(
        reason.starts_with("stuck") && reason.contains("ln(100)") && reason.contains("of 1%"),
        "{reason}"
    );
}

/// A dead network on synthetic CIFAR-100 (`labels` fine or coarse) trained for up to 6 epochs
/// with `training.stuck_epochs: 2`: its rows and result.
fn dead_cifar100_run(
    coarse: bool,
) -> (
    allconv_train::RunResult,
    Vec<allconv_train::EpochMetrics>,
    usize,
) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-100-binary");
    // 500 training images: the synthetic labels cycle through all 100 fine classes (5 each,
    // so 25 of each of the 20 coarse classes).
    allconv_cifar::write_synthetic_cifar100_dir(&data, 500, 100, 3).unwrap();
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 6);
    config.data.dataset = allconv_train::config::Dataset::Cifar100;
    let classes = if coarse { 20 } else { 100 };
    if coarse {
        config.data.labels = allconv_train::config::LabelSet::Coarse;
    }
    config.model.num_classes = classes;
    config.training.stuck_epochs = 2;
    config.training.batch_size = 50;
    // As in the CIFAR-10 test above: every ReLU silenced, all class scores 0.
    config.model.bias_init = -100.0;
    let rc = common::run_config(&config, "strided-cnn-a", 0.01);
    let result = run(&rc, &RunOptions::default()).unwrap();
    let rows = RunDir::new(rc.run_dir()).read_metrics().unwrap();
    (result, rows, classes)
}

#[test]
fn a_dead_network_on_cifar100_is_stopped_as_stuck_at_its_own_chance_level() {
    // docs/protocol.md, Training ("Failure is a result"): chance level follows the class
    // count K, a constant
    // prediction's loss is ln(K) (ln 100 = 4.605, ln 20 = 2.996) and its accuracy the share of
    // the predicted class, 1/K on balanced labels (1%, 5%).
    for coarse in [false, true] {
        let (result, rows, classes) = dead_cifar100_run(coarse);
        let k = classes as f64;
        // The loss is summed in f32: ln(100) comes out 2.3e-6 low.
        assert!((rows[0].train_loss - k.ln()).abs() < 1e-5, "{rows:?}");
        assert!((rows[0].train_acc - 1.0 / k).abs() < 1e-12, "{rows:?}");
        assert_eq!(result.status, RunStatus::Diverged, "{classes} classes");
        assert_eq!(result.epochs_run, 2, "{classes} classes: {result:?}");
        let reason = result.reason.as_deref().unwrap();
        assert!(reason.starts_with("stuck"), "{reason}");
        assert!(reason.contains(&format!("ln({classes})")), "{reason}");
    }
}
