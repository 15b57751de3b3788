//! The step learning-rate schedule of the paper: x0.1 after epochs 200, 250 and 300.

use allconv_train::StepSchedule;

#[test]
fn paper_schedule_at_the_boundaries() {
    let s = StepSchedule {
        base_lr: 0.05,
        milestones: vec![200, 250, 300],
        gamma: 0.1,
    };
    // Epochs are 0-based: epoch 200 is the 201st, the first after 200 finished epochs.
    for (epoch, expected) in [
        (0, 0.05),
        (199, 0.05),
        (200, 0.005),
        (249, 0.005),
        (250, 0.0005),
        (300, 0.00005),
        (349, 0.00005),
    ] {
        let lr = s.lr_at(epoch);
        assert!(
            (lr - expected).abs() <= 1e-12 * expected,
            "epoch {epoch}: lr {lr}, expected {expected}"
        );
    }
}

#[test]
fn no_milestones_keeps_the_base_rate() {
    let s = StepSchedule {
        base_lr: 0.25,
        milestones: vec![],
        gamma: 0.1,
    };
    assert_eq!(s.lr_at(0), 0.25);
    assert_eq!(s.lr_at(10_000), 0.25);
}
