//! A reader that goes away (`allconv models | head -5`) ends the command quietly with success.
//!
//! Rust ignores SIGPIPE, so a write into a pipe without reader fails with EPIPE, and `println!`
//! turns that into a panic ("failed printing to stdout: Broken pipe", exit 101). Standard Unix
//! tools are ended by SIGPIPE instead; nobody is left to read the rest, so that is not a
//! failure. Catching that one panic covers every command and every `println!` without
//! threading a write error through each of them. Any other stdout error (a full disk behind
//! `> file`) is a failure: reported as one line on stderr, exit status 1, no panic message.
//! Every other panic keeps its message and status.

/// Installs the panic hook that turns a closed stdout into a quiet exit with status 0, and any
/// other failed write to stdout into an error line and status 1.
pub fn end_quietly_when_stdout_closes() {
    #[cfg(unix)]
    {
        // The exact message std's print macros panic with on EPIPE, built the way std builds
        // it, so the comparison holds in any locale.
        const PREFIX: &str = "failed printing to stdout: ";
        let closed = format!("{PREFIX}{}", std::io::Error::from_raw_os_error(libc::EPIPE));
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if message == Some(closed.as_str()) {
                // Exit at once: unwinding would only print the panic and return 101.
                std::process::exit(0);
            }
            if let Some(reason) = message.and_then(|m| m.strip_prefix(PREFIX)) {
                eprintln!("Error: writing to standard output failed: {reason}");
                std::process::exit(1);
            }
            default_hook(info)
        }));
    }
}
