//! SIGTERM and SIGINT to the commands that train (`allconv train`, and `allconv reproduce`
//! around its trainers): recorded, and passed to the process's [`StopHandle`], instead of
//! ending the process at once.
//!
//! Why: a trainer that dies between checkpoints loses the epoch under way (what a cluster's
//! pre-emption or time limit would otherwise cost); with its handle raised, the trainer writes
//! a checkpoint after the step under way and ends, and the same command resumes at that step.
//! A grid that died at once would leave its trainers training on as orphans; it passes the
//! signal on to them and waits instead. SIGTERM may come more than once (Slurm signals every
//! process of a task, and the task's script passes it on too): each is recorded; a second
//! SIGINT (Ctrl-C twice) ends the process at once, as by default.
//!
//! Written with `libc::signal` because the handler does nothing but atomic stores (the handle
//! is one `AtomicBool`, reached through a `OnceLock` set before the handler is installed).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use allconv_train::StopHandle;

/// The process's stop handle, raised by the first SIGTERM or SIGINT.
static HANDLE: OnceLock<StopHandle> = OnceLock::new();

/// The first signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn record(signal: libc::c_int) {
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if let Some(handle) = HANDLE.get() {
        handle.stop();
    }
    if signal == libc::SIGINT {
        // SAFETY: signal(2) is async-signal-safe; the next SIGINT ends the process.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }
}

/// While alive, SIGTERM and SIGINT raise the process's stop handle instead of ending it;
/// dropped, both end it again as by default.
pub struct StopSignals {
    handle: StopHandle,
}

impl StopSignals {
    /// Starts recording SIGTERM and SIGINT. The process has one stop handle: a signal
    /// received before a second call is still seen through it.
    pub fn install() -> StopSignals {
        let handle = HANDLE.get_or_init(StopHandle::new).clone();
        #[cfg(unix)]
        // SAFETY: `record` only makes atomic stores and may reset SIGINT's disposition.
        unsafe {
            let handler = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGTERM, handler);
            libc::signal(libc::SIGINT, handler);
        }
        StopSignals { handle }
    }

    /// The handle the signals raise (for [`allconv_train::RunOptions::stop`]).
    pub fn handle(&self) -> StopHandle {
        self.handle.clone()
    }

    /// The name of the first signal received, if any.
    pub fn received(&self) -> Option<&'static str> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            #[cfg(unix)]
            libc::SIGINT => Some("SIGINT"),
            _ => Some("SIGTERM"),
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: restores the default dispositions.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }
}
