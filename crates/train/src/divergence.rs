//! Recognising a run that has failed: a non-finite loss, or a network stuck at chance level.

/// ln(10): the cross-entropy of a uniform prediction over 10 classes.
pub const CHANCE_LOSS: f64 = std::f64::consts::LN_10;

/// Tolerance on the loss for "stuck at chance": a network whose 10 outputs are (nearly) equal.
pub const STUCK_LOSS_TOLERANCE: f64 = 1e-3;

/// Tolerance on the training accuracy (a fraction) for "stuck at chance": 1 point around 10%.
pub const STUCK_ACC_TOLERANCE: f64 = 0.01;

/// The reason for stopping when a training step's loss is NaN or infinite, else `None`.
pub fn non_finite_loss(loss: f64, epoch: usize, step: usize) -> Option<String> {
    (!loss.is_finite())
        .then(|| format!("non-finite training loss ({loss}) at epoch {epoch}, step {step}"))
}

/// Whether an epoch's training loss and accuracy look like a network predicting a constant
/// (loss within 1e-3 of ln(10), accuracy within 1 point of 10%) - the paper's known trap with a
/// ReLU on the class scores, where training can never recover.
pub fn at_chance(train_loss: f64, train_acc: f64) -> bool {
    (train_loss - CHANCE_LOSS).abs() <= STUCK_LOSS_TOLERANCE
        && (train_acc - 0.1).abs() <= STUCK_ACC_TOLERANCE
}

/// Counts consecutive epochs at chance level; its count is part of the checkpoint so a resumed run
/// stops at the same epoch as an uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckDetector {
    /// Consecutive epochs needed to declare the run stuck; 0 disables the check.
    pub limit: usize,
    /// Consecutive epochs at chance so far.
    pub count: usize,
}

impl StuckDetector {
    /// Records an epoch; returns the reason to stop when the limit is reached.
    pub fn end_epoch(&mut self, epoch: usize, train_loss: f64, train_acc: f64) -> Option<String> {
        if at_chance(train_loss, train_acc) {
            self.count += 1;
        } else {
            self.count = 0;
        }
        (self.limit > 0 && self.count >= self.limit).then(|| {
            format!(
                "stuck: training loss within {STUCK_LOSS_TOLERANCE} of ln(10) and accuracy within 1 point \
                 of 10% for {} consecutive epochs (last: epoch {epoch}, loss {train_loss:.5}, \
                 accuracy {:.2}%)",
                self.count,
                100.0 * train_acc
            )
        })
    }
}
