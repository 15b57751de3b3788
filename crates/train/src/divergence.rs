//! Recognising a run that has failed: a non-finite loss, or a network stuck at chance level.
//!
//! Chance level follows the number of classes K (docs/protocol.md, Training: "Failure is a result"): a network that
//! predicts the same scores for every image has the cross-entropy ln(K) of a uniform prediction
//! and the accuracy 1/K of one class on balanced labels (CIFAR-10: ln 10 and 10%; CIFAR-100:
//! ln 100 and 1%, or ln 20 and 5% with the coarse labels).

/// Tolerance on the loss for "stuck at chance": a network whose K outputs are (nearly) equal.
pub const STUCK_LOSS_TOLERANCE: f64 = 1e-3;

/// Tolerance on the training accuracy (a fraction) for "stuck at chance": 1 point around 1/K.
pub const STUCK_ACC_TOLERANCE: f64 = 0.01;

/// ln(K): the cross-entropy of a uniform prediction over `classes` classes.
pub fn chance_loss(classes: usize) -> f64 {
    (classes as f64).ln()
}

/// 1/K: the accuracy of always predicting one class when the `classes` classes are balanced.
pub fn chance_accuracy(classes: usize) -> f64 {
    1.0 / classes as f64
}

/// The reason for stopping when a training step's loss is NaN or infinite, else `None`.
pub fn non_finite_loss(loss: f64, epoch: usize, step: usize) -> Option<String> {
    (!loss.is_finite())
        .then(|| format!("non-finite training loss ({loss}) at epoch {epoch}, step {step}"))
}

/// Whether an epoch's training loss and accuracy over `classes` classes look like a network
/// predicting a constant (loss within 1e-3 of ln(K), accuracy within 1 point of 1/K) - the
/// paper's known trap with a ReLU on the class scores, where training can never recover.
pub fn at_chance(classes: usize, train_loss: f64, train_acc: f64) -> bool {
    (train_loss - chance_loss(classes)).abs() <= STUCK_LOSS_TOLERANCE
        && (train_acc - chance_accuracy(classes)).abs() <= STUCK_ACC_TOLERANCE
}

/// Counts consecutive epochs at chance level; its count is part of the checkpoint so a resumed run
/// stops at the same epoch as an uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckDetector {
    /// Consecutive epochs needed to declare the run stuck; 0 disables the check.
    pub limit: usize,
    /// Consecutive epochs at chance so far.
    pub count: usize,
    /// Number of classes K, which sets the chance level.
    pub classes: usize,
}

impl StuckDetector {
    /// Records an epoch; returns the reason to stop when the limit is reached.
    pub fn end_epoch(&mut self, epoch: usize, train_loss: f64, train_acc: f64) -> Option<String> {
        if at_chance(self.classes, train_loss, train_acc) {
            self.count += 1;
        } else {
            self.count = 0;
        }
        self.stopped().map(|what| {
            format!(
                "{what} (last: epoch {epoch}, loss {train_loss:.5}, accuracy {:.2}%)",
                100.0 * train_acc
            )
        })
    }

    /// The start of the reason to stop when the count has reached the limit (a run resumed
    /// after it stopped as stuck stops again), else `None`.
    pub fn stopped(&self) -> Option<String> {
        (self.limit > 0 && self.count >= self.limit).then(|| {
            format!(
                "stuck: training loss within {STUCK_LOSS_TOLERANCE} of ln({k}) and accuracy \
                 within 1 point of {chance}% for {} consecutive epochs",
                self.count,
                k = self.classes,
                chance = 100.0 / self.classes as f64,
            )
        })
    }
}
