//! `allconv`: reproduce "Striving for Simplicity: The All Convolutional Net" on candle.
//!
//! One module per command under `cli/`; each owns its flags (`Args`) and its `run`.

// Every line goes through `allconv_runs::output` (`outln!`, `errln!`), which drops it instead of
// panicking when the stream is closed: no command may end by a panic because a pipe or terminal
// went away, so the standard macros, which panic then, are refused.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use allconv_runs::errln;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// `allconv --version`: the version, whether this build has CUDA (`allconv reproduce
/// --emit-slurm --slurm-binary` reads it to refuse a cuda grid for a build without), and the
/// git revision it was built from (`build.rs`), with whether its sources had uncommitted
/// changes.
const VERSION: &str = if cfg!(feature = "cuda") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (cuda), git ",
        env!("ALLCONV_GIT_REVISION"),
        ", uncommitted changes: ",
        env!("ALLCONV_GIT_DIRTY")
    )
} else {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (cpu only), git ",
        env!("ALLCONV_GIT_REVISION"),
        ", uncommitted changes: ",
        env!("ALLCONV_GIT_DIRTY")
    )
};

#[derive(Parser)]
#[command(
    name = "allconv",
    version = VERSION,
    about = "Reproduce the All Convolutional Net (Springenberg et al. 2014) on CIFAR-10 and CIFAR-100"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Acquire and inspect CIFAR-10 or CIFAR-100, or write a smaller copy.
    Data(cli::data::Args),
    /// Print the 12 networks: parameters, layers, output size after every layer.
    Models(cli::models::Args),
    /// Measure forward and training throughput (images/second) per model.
    Bench(cli::bench::Args),
    /// Train one grid point (one model, one learning rate, one seed) into its run folder.
    // Boxed: its many flags would make every variant as large.
    Train(Box<cli::train::Args>),
    /// Run the whole grid of a config, then write the report.
    // Boxed as `Train`.
    Reproduce(Box<cli::reproduce::Args>),
    /// Print the configuration a file, preset and flags resolve to (as a run records it), or
    /// every key with its default.
    Config(Box<cli::config::Args>),
    /// Write report.md, report.csv and curves from run folders.
    Report(cli::report::Args),
    /// Test error and per-class accuracy of a run's or any weights file's network.
    Evaluate(cli::evaluate::Args),
    /// Guided backpropagation, deconvnet and backprop pictures of what units respond to.
    // Boxed: its many flags would make every variant as large.
    Visualize(Box<cli::visualize::Args>),
    /// Compare every op and one training step of each network on a device with a reference.
    Check(cli::check::Args),
}

fn main() -> anyhow::Result<()> {
    // Before any tensor exists: lets glibc recycle the large activation buffers of a training
    // step instead of mmapping (and page-faulting) them afresh every time.
    allconv_models::tune_allocator();
    let matches = Cli::command().get_matches();
    for warning in cli::deprecated::warnings(&matches) {
        errln!("{warning}");
    }
    let command = Cli::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.exit())
        .command;
    // What `train` and `reproduce` make is their run folders and report: they go on when
    // nobody reads their output. Every other command's product is what it prints, so it ends
    // (quietly, as Unix tools do) once its reader has gone.
    let keeps_going = matches!(command, Command::Train(_) | Command::Reproduce(_));
    allconv_runs::output::end_process_when_stdout_fails(!keeps_going);
    match command {
        Command::Data(a) => cli::data::run(a),
        Command::Models(a) => cli::models::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Train(a) => cli::train::run(*a),
        Command::Reproduce(a) => cli::reproduce::run(*a),
        Command::Config(a) => cli::config::run(*a),
        Command::Report(a) => cli::report::run(a),
        Command::Evaluate(a) => cli::evaluate::run(a),
        Command::Visualize(a) => cli::visualize::run(*a),
        Command::Check(a) => cli::check::run(a),
    }
}
