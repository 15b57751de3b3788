//! When a run is to stop part-way.

use std::sync::atomic::{AtomicBool, Ordering};

/// When the run is to stop part-way: a flag raised from outside, or a step count (test hook).
#[derive(Default)]
pub(super) struct StopRequest {
    pub(super) flag: Option<&'static AtomicBool>,
    pub(super) after_steps: Option<usize>,
    pub(super) steps_this_process: usize,
}

impl StopRequest {
    pub(super) fn requested(&self) -> bool {
        self.flag.is_some_and(|f| f.load(Ordering::SeqCst))
            || self.after_steps == Some(self.steps_this_process)
    }
}
