//! SIGTERM and SIGINT to `allconv train`: recorded in a flag the trainer checks after every
//! step, so that the run writes a checkpoint at that step and ends, instead of dying between
//! checkpoints and losing the epoch under way (what a cluster's pre-emption or time limit would
//! otherwise cost). SIGTERM may come more than once (Slurm signals every process of a task, and
//! the task's script passes it on too): each is recorded and the checkpoint is finished; a second
//! SIGINT (Ctrl-C twice) ends the process at once, as by default.
//!
//! Written with `libc::signal` because the handler does nothing but store into an atomic.

use std::sync::atomic::{AtomicBool, Ordering};

/// Raised by the first SIGTERM or SIGINT after [`install`].
static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn record(signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    if signal == libc::SIGINT {
        // SAFETY: signal(2) is async-signal-safe; the next SIGINT ends the process.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }
}

/// Starts recording SIGTERM and SIGINT; returns the flag they raise.
pub fn install() -> &'static AtomicBool {
    #[cfg(unix)]
    // SAFETY: `record` only stores into an atomic and may reset SIGINT's disposition.
    unsafe {
        let handler = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    &STOP
}
