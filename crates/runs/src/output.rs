//! Lines for the user on standard output and standard error that never end a training.
//!
//! `println!` and `eprintln!` panic when their stream is gone (a closed pipe: `| head`, a
//! `| tee` that died, a closed terminal), which would stop a week-long grid because nobody reads
//! its progress. Every line the programs of this project print goes through [`line`] instead:
//! a line that cannot be written is dropped, the stream is from then on treated as closed (no
//! more attempts), and this is said once on the other stream while that one is still open.
//! Nothing here panics.
//!
//! A command whose only product is what it prints (`allconv models`, `allconv data stats`)
//! may instead end as standard Unix tools do when nobody reads its output:
//! [`end_process_when_stdout_fails`] makes a closed standard output end the process quietly
//! with status 0, and any other failure to write it (a full disk behind `> file`) end it with
//! one error line and status 1. Training commands leave that off: their product is the run
//! folder, which must be finished whatever became of the terminal.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// One of the two streams the user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: results.
    Out,
    /// Standard error: progress, warnings, errors.
    Err,
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
static END_ON_STDOUT_FAILURE: AtomicBool = AtomicBool::new(false);

fn closed_flag(stream: Stream) -> &'static AtomicBool {
    match stream {
        Stream::Out => &STDOUT_CLOSED,
        Stream::Err => &STDERR_CLOSED,
    }
}

fn name(stream: Stream) -> &'static str {
    match stream {
        Stream::Out => "standard output",
        Stream::Err => "standard error",
    }
}

/// With `true`, a failed write to standard output ends the process (see the module docs):
/// status 0 when the reader went away, 1 with an error line for any other failure.
pub fn end_process_when_stdout_fails(end: bool) {
    END_ON_STDOUT_FAILURE.store(end, Ordering::SeqCst);
}

/// Whether a write to `stream` has failed in this process (further lines are dropped).
pub fn is_closed(stream: Stream) -> bool {
    closed_flag(stream).load(Ordering::SeqCst)
}

/// Writes `args` and a newline to `stream`, or drops them if the stream cannot be written (see
/// the module docs). Never panics.
pub fn line(stream: Stream, args: fmt::Arguments<'_>) {
    if is_closed(stream) {
        return;
    }
    let Err(error) = write_to(stream, args) else {
        return;
    };
    if closed_flag(stream).swap(true, Ordering::SeqCst) {
        return; // Another thread saw it first and said so.
    }
    if stream == Stream::Out && END_ON_STDOUT_FAILURE.load(Ordering::SeqCst) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            // Nobody is left to read the rest: not a failure (as SIGPIPE ends Unix tools).
            std::process::exit(0);
        }
        say_on(
            Stream::Err,
            format_args!("Error: writing to standard output failed: {error}"),
        );
        std::process::exit(1);
    }
    let other = match stream {
        Stream::Out => Stream::Err,
        Stream::Err => Stream::Out,
    };
    say_on(
        other,
        format_args!(
            "note: {} cannot be written ({error}); its further lines are dropped, the work goes on",
            name(stream)
        ),
    );
}

/// Writes one line on `stream` if it is open, marking it closed when that fails (no further
/// note: there is no third stream to say it on).
fn say_on(stream: Stream, args: fmt::Arguments<'_>) {
    if !is_closed(stream) && write_to(stream, args).is_err() {
        closed_flag(stream).store(true, Ordering::SeqCst);
    }
}

fn write_to(stream: Stream, args: fmt::Arguments<'_>) -> std::io::Result<()> {
    match stream {
        Stream::Out => {
            let mut out = std::io::stdout().lock();
            out.write_fmt(args)?;
            out.write_all(b"\n")?;
            out.flush()
        }
        Stream::Err => {
            let mut err = std::io::stderr().lock();
            err.write_fmt(args)?;
            err.write_all(b"\n")
        }
    }
}

/// Writes a line to standard output through [`line`]: `outln!("{} runs", n)`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::line($crate::output::Stream::Out, format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line($crate::output::Stream::Out, format_args!($($arg)*))
    };
}

/// Writes a line to standard error through [`line`]: `errln!("warning: {w}")`.
#[macro_export]
macro_rules! errln {
    () => {
        $crate::output::line($crate::output::Stream::Err, format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line($crate::output::Stream::Err, format_args!($($arg)*))
    };
}
