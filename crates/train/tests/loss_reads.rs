//! Reading the loss from the device only every N steps (`training.loss_read_every`) changes no
//! number: the per-epoch metrics equal those of reading every step, and a non-finite loss is
//! still reported at its own step.

mod common;

use allconv_train::{run, RunDir, RunOptions, RunStatus};

#[test]
fn the_read_interval_changes_no_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 10, 20);
    let mut metrics = Vec::new();
    // 50 training images, batch 25 -> 2 steps per epoch: intervals 1 (every step), 3 (crosses
    // the epoch end, where a read is forced) and 1000 (only the forced reads).
    for every in [1, 3, 1000] {
        let mut config = common::small_config(&data, &tmp.path().join(format!("runs-{every}")), 3);
        config.training.loss_read_every = every;
        let rc = common::run_config(&config, "strided-cnn-a", 0.01);
        let result = run(&rc, &RunOptions::default()).unwrap();
        assert_eq!(result.status, RunStatus::Done);
        let rows = RunDir::new(rc.run_dir()).read_metrics().unwrap();
        assert_eq!(rows.len(), 3);
        metrics.push(
            rows.iter()
                .map(|r| (r.train_loss, r.train_acc, r.test_loss, r.test_acc))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(metrics[0], metrics[1]);
    assert_eq!(metrics[0], metrics[2]);
}

#[test]
fn a_non_finite_loss_is_reported_at_its_step_whatever_the_read_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 10, 10);
    let mut reasons = Vec::new();
    for every in [1, 1000] {
        let mut config = common::small_config(&data, &tmp.path().join(format!("runs-{every}")), 3);
        config.training.batch_size = 5;
        config.training.stuck_epochs = 0;
        config.training.loss_read_every = every;
        // With weight decay 0.001 each step multiplies the weights by about 1 - 1e10 * 0.001:
        // the loss overflows within a few steps of the first epoch.
        let rc = common::run_config(&config, "strided-cnn-a", 1e10);
        let result = run(&rc, &RunOptions::default()).unwrap();
        assert_eq!(result.status, RunStatus::Diverged, "{result:?}");
        let reason = result.reason.unwrap();
        assert!(reason.starts_with("non-finite training loss"), "{reason}");
        reasons.push(reason);
    }
    assert_eq!(reasons[0], reasons[1]);
}
