//! `allconv train`: train one grid point (one model, one learning rate, one seed) into its run
//! folder, resuming from its checkpoint, or skipping it when `result.json` exists.
//!
//! The point comes from `--config` plus `--model/--lr/--seed`, or from a grid file written by
//! `allconv reproduce` (`--grid grid.json --index I`). `--set key=value` and the short flags
//! override configuration keys.

use allconv_runs::outln;
use std::path::PathBuf;

use allconv_train::{ExperimentConfig, ExperimentGrid, GridFile, Progress, RunConfig, RunOptions};
use anyhow::{bail, Context};

use super::config_flags::ConfigFlags;

/// Flags of `allconv train`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment YAML (e.g. configs/quick.yaml); without it, the built-in defaults (the paper's
    /// protocol on the CPU).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model name (see `allconv models`; any letter case); may be left out when the config's
    /// grid has one model.
    #[arg(long, value_parser = super::choices::model())]
    model: Option<String>,
    /// Base learning rate; may be left out when the config's grid has one.
    // Negative numbers reach the value check (which names the key) instead of clap's
    // "unexpected argument".
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Seed of initialisation, shuffling and dropout; may be left out when the grid has one.
    #[arg(long)]
    seed: Option<u64>,
    /// Grid file written by `allconv reproduce` ({"config": path or object, "points": [...]});
    /// use with --index instead of --config/--model/--lr/--seed.
    #[arg(long, requires = "index", conflicts_with_all = ["config", "model", "lr", "seed"])]
    grid: Option<PathBuf>,
    /// The `index` of the grid point to train.
    #[arg(long, requires = "grid")]
    index: Option<usize>,
    #[command(flatten)]
    overrides: ConfigFlags,
    /// Print one line per epoch instead of a progress bar.
    #[arg(long, conflicts_with = "quiet")]
    lines: bool,
    /// Print nothing but the final summary.
    #[arg(long)]
    quiet: bool,
    /// Resume even though the data files or the preprocessing statistics differ from what the
    /// run recorded when it started (refused otherwise); both checksums are recorded in its
    /// config.yaml and shown in the report.
    #[arg(long)]
    allow_changed_data: bool,
}

impl Args {
    /// The run this invocation describes.
    fn run_config(&self) -> anyhow::Result<RunConfig> {
        let settings = self.overrides.settings();
        if let (Some(grid_path), Some(index)) = (&self.grid, self.index) {
            let grid = GridFile::load(grid_path)?;
            let mut experiment = grid
                .experiment()
                .with_context(|| format!("the configuration of grid {}", grid_path.display()))?;
            experiment.apply(&settings)?;
            return grid
                .run_config(experiment, index)
                .with_context(|| format!("grid {}", grid_path.display()));
        }
        let mut experiment = match &self.config {
            Some(path) => ExperimentConfig::load(path)?,
            None => ExperimentConfig::default(),
        };
        experiment.apply(&settings)?;
        let from = self
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the default config".into());
        let model = match &self.model {
            Some(m) => m.clone(),
            None => single("--model", &experiment.grid.models, &from)?,
        };
        let lr = match self.lr {
            Some(lr) => lr,
            None => single("--lr", &experiment.grid.lrs, &from)?,
        };
        let seed = match self.seed {
            Some(s) => s,
            None => single("--seed", &experiment.grid.seeds, &from)?,
        };
        Ok(RunConfig::new(experiment, &model, lr, seed)?)
    }
}

/// The only value of a grid axis, or an error asking for the flag.
fn single<T: Clone + std::fmt::Debug>(flag: &str, values: &[T], from: &str) -> anyhow::Result<T> {
    match values {
        [one] => Ok(one.clone()),
        _ => bail!(
            "pass {flag}: the grid of {from} has {} values ({values:?})",
            values.len()
        ),
    }
}

/// In a Slurm task that is a requeue (`SLURM_RESTART_COUNT` > 0), the number of stops without
/// progress after which the run refuses to start (`slurm.max_stalled_requeues`); `None` for a
/// first start, which clears the count.
fn slurm_requeue_limit(config: &RunConfig) -> Option<usize> {
    let restarts: u64 = std::env::var("SLURM_RESTART_COUNT")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (restarts > 0).then_some(config.config.slurm.max_stalled_requeues)
}

/// Runs `allconv train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.run_config()?;
    super::cpu_kernels::choose(
        args.overrides.cpu_kernels,
        Some(config.config.training.cpu_kernels),
    )?;
    super::device_gate::ensure_checked(&config.config)?;
    let progress = if args.quiet {
        Progress::Silent
    } else if args.lines {
        Progress::Lines
    } else {
        Progress::Auto
    };
    let dir = config.run_dir();
    let signals = super::stop_signal::StopSignals::install();
    let result = allconv_train::run(
        &config,
        &RunOptions {
            progress,
            stop: signals.handle(),
            max_stalled_stops: slurm_requeue_limit(&config),
            allow_changed_data: args.allow_changed_data,
            source: super::source_revision(),
            ..Default::default()
        },
    )
    .with_context(|| format!("training {}", dir.display()))?;
    outln!("{} -> {}", result.summary(), dir.display());
    Ok(())
}
