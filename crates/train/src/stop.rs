//! [`StopHandle`]: one request to stop, shared by the trainer and whoever may ask it to stop.
//!
//! The binary's SIGTERM / SIGINT handler raises it (a cluster's time limit or pre-emption, a
//! Ctrl-C); a grid raises its own to stop starting runs; a program or a test that drives the
//! trainer raises it from an observer ([`crate::RunOptions::on_step`],
//! [`crate::RunOptions::on_epoch_end`]). The trainer only reads it: after every SGD step and
//! before every epoch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A request to stop, shared by every clone: [`StopHandle::stop`] on one is seen by all.
///
/// A run given a raised handle ([`crate::RunOptions::stop`]) writes a checkpoint where it stands
/// (after the SGD step under way, or at the epoch's end) and returns
/// [`crate::TrainError::Stopped`]; the same run started again continues from that very step.
/// A handle stays raised: a new run wants a new handle.
#[derive(Debug, Clone, Default)]
pub struct StopHandle {
    raised: Arc<AtomicBool>,
}

impl StopHandle {
    /// A handle not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of this handle to stop. One atomic store (no lock, no allocation), so a
    /// signal handler may call it.
    pub fn stop(&self) {
        self.raised.store(true, Ordering::SeqCst);
    }

    /// Whether [`StopHandle::stop`] was called on this handle or a clone of it.
    pub fn is_stopped(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::StopHandle;

    #[test]
    fn a_stop_is_seen_by_every_clone_and_by_no_other_handle() {
        let handle = StopHandle::new();
        let clone = handle.clone();
        let other = StopHandle::new();
        assert!(!handle.is_stopped() && !clone.is_stopped());
        clone.stop();
        assert!(handle.is_stopped() && clone.is_stopped());
        assert!(!other.is_stopped());
    }
}
