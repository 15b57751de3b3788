//! SIGTERM and SIGINT while a grid runs: recorded here instead of ending the grid process at
//! once, so that the grid passes the signal on to its trainers and waits for them.
//!
//! Why: Slurm, systemd and `timeout` send SIGTERM to the grid process alone; ending there left
//! its trainers running as orphans, still holding their run folders, and a rerun reported them
//! as failed. Every trainer stops safely at any moment (checkpoints are written to a temporary
//! name and renamed, state last), so the trainers get SIGTERM and simply end; the same command
//! later resumes each from its last checkpoint. Written with `libc::signal` because the one
//! thing the handler does is store the signal number in an atomic.

use std::sync::atomic::{AtomicI32, Ordering};

/// Makes the trainer that `command` starts receive SIGTERM when this grid process dies, by
/// whatever means: `kill -9` runs none of our code, so only the kernel can tell the trainers
/// (Linux: PR_SET_PDEATHSIG, sent when the thread that spawned the child ends; the grid spawns
/// from its main thread). SIGTERM, not SIGKILL: each trainer then writes a checkpoint at its
/// step and ends, as on Ctrl-C, and the same command resumes it. Elsewhere nothing is set up.
#[cfg(target_os = "linux")]
pub(super) fn end_with_grid(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-
    // safe system calls (the parent's pid is taken before the fork).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The grid may have died between fork and prctl: then no signal would come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the grid process already exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn end_with_grid(_command: &mut std::process::Command) {}

/// The signal received while the grid ran, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn record(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// While alive, SIGTERM and SIGINT are recorded (see [`Guard::received`]) instead of ending the
/// process; dropped, both end it again as by default.
pub(super) struct Guard;

impl Guard {
    /// Starts recording SIGTERM and SIGINT.
    pub(super) fn install() -> Guard {
        RECEIVED.store(0, Ordering::SeqCst);
        #[cfg(unix)]
        // SAFETY: `record` only stores into an atomic, which is async-signal-safe.
        unsafe {
            let handler = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::signal(libc::SIGTERM, handler);
            libc::signal(libc::SIGINT, handler);
        }
        Guard
    }

    /// The name of the signal received since [`Guard::install`], if any.
    pub(super) fn received(&self) -> Option<&'static str> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            #[cfg(unix)]
            libc::SIGINT => Some("SIGINT"),
            _ => Some("SIGTERM"),
        }
    }

    /// Passes SIGTERM on to a trainer (no-op where there are no signals).
    pub(super) fn forward(&self, child: &std::process::Child) {
        #[cfg(unix)]
        // SAFETY: kill(2) with the pid of a child this process started and has not reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        #[cfg(not(unix))]
        let _ = child;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: restores the default dispositions.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }
}
