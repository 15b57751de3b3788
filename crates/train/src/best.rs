//! Best and last evaluation results of a run, carried in its checkpoint and reported in
//! `result.json`.

use serde::{Deserialize, Serialize};

/// Best and last evaluation results so far (errors in percent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BestMetrics {
    /// Test error of the last evaluated epoch.
    pub last_test_error: Option<f64>,
    /// Lowest test error.
    pub best_test_error: Option<f64>,
    /// 1-based epoch of the lowest test error.
    pub best_test_epoch: Option<usize>,
    /// Validation error of the last evaluated epoch.
    pub last_val_error: Option<f64>,
    /// Lowest validation error.
    pub best_val_error: Option<f64>,
    /// 1-based epoch of the lowest validation error.
    pub best_val_epoch: Option<usize>,
    /// Test error in the epoch of the lowest validation error.
    pub test_error_at_best_val: Option<f64>,
}

impl BestMetrics {
    /// Records one evaluated epoch (1-based) with its validation and test errors in percent.
    pub fn record(&mut self, epoch: usize, val_error: Option<f64>, test_error: Option<f64>) {
        if let Some(t) = test_error {
            self.last_test_error = Some(t);
            if self.best_test_error.is_none_or(|b| t < b) {
                self.best_test_error = Some(t);
                self.best_test_epoch = Some(epoch);
            }
        }
        if let Some(v) = val_error {
            self.last_val_error = Some(v);
            if self.best_val_error.is_none_or(|b| v < b) {
                self.best_val_error = Some(v);
                self.best_val_epoch = Some(epoch);
                self.test_error_at_best_val = test_error;
            }
        }
    }
}
