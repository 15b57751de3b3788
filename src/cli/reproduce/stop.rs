//! How a grid's trainers are stopped with it: SIGTERM passed on to each when the grid is
//! signalled (the grid records SIGTERM and SIGINT through `cli::stop_signal`), and sent by the
//! kernel when the grid dies by other means.
//!
//! Why: Slurm, systemd and `timeout` send SIGTERM to the grid process alone; ending there left
//! its trainers running as orphans, still holding their run folders, and a rerun reported them
//! as failed. Every trainer stops safely at any moment (checkpoints are written to a temporary
//! name and renamed, state last), so the trainers get SIGTERM and simply end; the same command
//! later resumes each from its last checkpoint.

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

/// Passes SIGTERM on to a trainer, which then writes a checkpoint at its step and ends (no-op
/// where there are no signals).
pub(super) fn stop_trainer(child: &std::process::Child) {
    #[cfg(unix)]
    // SAFETY: kill(2) with the pid of a child this process started and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    #[cfg(not(unix))]
    let _ = child;
}
