//! One training run the way an outside project would start it: an experiment configuration in
//! code (the defaults are the paper's protocol), a few keys overridden, one run folder trained
//! and its result printed.
//!
//! `cargo run -p allconv-train --example train_one -- DATA_DIR RUNS_DIR [MODEL] [EPOCHS]`
//! (DATA_DIR: a CIFAR-10 binary folder, e.g. one written by
//! `cargo run -p allconv-cifar --example prepare_stats -- DIR --write-synthetic`). Running it
//! again resumes or skips the finished run, as `allconv train` does.

use allconv_train::config::{Device, Preprocessing};
use allconv_train::{run, ExperimentConfig, Progress, RunConfig, RunOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, runs, rest @ ..] = args.as_slice() else {
        return Err("usage: train_one DATA_DIR RUNS_DIR [MODEL] [EPOCHS]".into());
    };
    let model = rest.first().map_or("all-cnn-c", String::as_str);
    let epochs: usize = rest.get(1).map_or(Ok(2), |e| e.parse())?;

    let mut config = ExperimentConfig::default();
    config.data.dir = Some(data.into());
    // Per-channel standardisation: fitting GCN + ZCA (the paper's) takes ~20 s on real data.
    config.data.preprocessing = Preprocessing::Standardize;
    config.schedule.epochs = epochs;
    config.schedule.milestones = vec![];
    config.training.device = Device::Cpu;
    config.training.batch_size = 25;
    config.out.runs = runs.into();

    let result = run(
        &RunConfig::new(config, model, 0.01, 0)?,
        &RunOptions {
            progress: Progress::Lines,
            ..RunOptions::default()
        },
    )?;
    println!("{}", result.summary());
    Ok(())
}
