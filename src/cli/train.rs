//! `allconv train`: train one grid point (one model, one learning rate, one seed) into its run
//! folder, resuming from its checkpoint, or skipping it when `result.json` exists.
//!
//! The point comes from `--config` plus `--model/--lr/--seed`, or from a grid file written by
//! `allconv reproduce` (`--grid grid.json --index I`). Every other flag overrides one YAML key.

use std::path::PathBuf;

use allconv_train::config::{DeviceKind, Preprocessing};
use allconv_train::{ExperimentConfig, GridFile, Overrides, Progress, RunConfig, RunOptions};
use anyhow::{bail, Context};

/// Flags of `allconv train`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment YAML (e.g. configs/quick.yaml); without it, the built-in defaults (the paper's
    /// protocol on the CPU).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model name (see `allconv models`); may be left out when the config's grid has one model.
    #[arg(long)]
    model: Option<String>,
    /// Base learning rate; may be left out when the config's grid has one.
    #[arg(long)]
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
    /// schedule.epochs
    #[arg(long)]
    epochs: Option<usize>,
    /// schedule.milestones, comma-separated (e.g. 200,250,300; empty for none).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    milestones: Option<Vec<usize>>,
    /// training.batch_size
    #[arg(long)]
    batch_size: Option<usize>,
    /// out.runs: root of the run folders.
    #[arg(long)]
    out: Option<PathBuf>,
    /// data.dir: the CIFAR-10 binary batches.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// data.preprocessing: scale, standardize or gcn_zca.
    #[arg(long)]
    preprocessing: Option<Preprocessing>,
    /// data.validation: training images held out as a validation split.
    #[arg(long)]
    validation: Option<usize>,
    /// data.train_subset: use only this many training images.
    #[arg(long)]
    train_subset: Option<usize>,
    /// data.test_subset: use only this many test images.
    #[arg(long)]
    test_subset: Option<usize>,
    /// data.cache_dir: where normalised data / ZCA statistics are cached.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// training.device: cpu or cuda.
    #[arg(long)]
    device: Option<DeviceKind>,
    /// training.eval_every: evaluate every N epochs (the last one always).
    #[arg(long)]
    eval_every: Option<usize>,
    /// training.stuck_epochs: epochs at chance level before stopping as diverged (0: never).
    #[arg(long)]
    stuck_epochs: Option<usize>,
    /// training.init_from: start from these weights (safetensors, the model's parameter names).
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// training.dropout: false.
    #[arg(long)]
    no_dropout: bool,
    /// training.shuffle: false.
    #[arg(long)]
    no_shuffle: bool,
    /// training.tf32: true (TF32 tensor-core math in CUDA convolutions and matrix products).
    #[arg(long)]
    tf32: bool,
    /// training.loss_read_every: read the loss from the device every N steps.
    #[arg(long)]
    loss_read_every: Option<usize>,
    /// optim.momentum
    #[arg(long)]
    momentum: Option<f64>,
    /// optim.weight_decay
    #[arg(long)]
    weight_decay: Option<f64>,
    /// model.final_relu: true or false.
    #[arg(long)]
    final_relu: Option<bool>,
    /// Print one line per epoch instead of a progress bar.
    #[arg(long, conflicts_with = "quiet")]
    lines: bool,
    /// Print nothing but the final summary.
    #[arg(long)]
    quiet: bool,
}

impl Args {
    fn overrides(&self) -> Overrides {
        Overrides {
            epochs: self.epochs,
            milestones: self.milestones.clone(),
            batch_size: self.batch_size,
            out: self.out.clone(),
            data_dir: self.data_dir.clone(),
            preprocessing: self.preprocessing,
            validation: self.validation,
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            cache_dir: self.cache_dir.clone(),
            device: self.device,
            eval_every: self.eval_every,
            stuck_epochs: self.stuck_epochs,
            init_from: self.init_from.clone(),
            no_dropout: self.no_dropout,
            no_shuffle: self.no_shuffle,
            tf32: self.tf32,
            loss_read_every: self.loss_read_every,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            final_relu: self.final_relu,
        }
    }

    /// The run this invocation describes.
    fn run_config(&self) -> anyhow::Result<RunConfig> {
        if let (Some(grid_path), Some(index)) = (&self.grid, self.index) {
            let grid = GridFile::load(grid_path)?;
            let mut experiment = grid
                .experiment()
                .with_context(|| format!("the configuration of grid {}", grid_path.display()))?;
            experiment.apply(&self.overrides())?;
            return grid
                .run_config(experiment, index)
                .with_context(|| format!("grid {}", grid_path.display()));
        }
        let mut experiment = match &self.config {
            Some(path) => ExperimentConfig::load(path)?,
            None => ExperimentConfig::default(),
        };
        experiment.apply(&self.overrides())?;
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

/// Test hook for deterministic interruption tests (`tests/reproduce_grid.rs`): with
/// `ALLCONV_TEST_HOLD=<run folder>=<epochs>` in the environment, the run in that folder stops
/// after that many epochs (checkpointed) and waits to be killed. Without it a test that signals a
/// grid mid-run races the trainer, and on a fast machine the grid can finish first.
fn test_hold(dir: &std::path::Path) -> Option<usize> {
    let value = std::env::var("ALLCONV_TEST_HOLD").ok()?;
    let (folder, epochs) = value.rsplit_once('=')?;
    (std::path::Path::new(folder) == dir)
        .then(|| epochs.parse().ok())
        .flatten()
}

/// Runs `allconv train`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.run_config()?;
    let progress = if args.quiet {
        Progress::Silent
    } else if args.lines {
        Progress::Lines
    } else {
        Progress::Auto
    };
    let dir = config.run_dir();
    let result = allconv_train::run(
        &config,
        &RunOptions {
            progress,
            hold_after_epochs: test_hold(&dir),
            ..Default::default()
        },
    )
    .with_context(|| format!("training {}", dir.display()))?;
    let pct = |e: Option<f64>| {
        e.map(|e| format!("{e:.2}%"))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "{} lr {} seed {}: {}{}, {}/{} epochs, final test error {}, best {} (epoch {}), {:.0} s -> {}",
        result.model,
        result.lr,
        result.seed,
        result.status,
        result
            .reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        result.epochs_run,
        result.epochs_planned,
        pct(result.final_test_error),
        pct(result.best_test_error),
        result
            .best_test_epoch
            .map(|e| e.to_string())
            .unwrap_or_else(|| "-".into()),
        result.wall_seconds,
        dir.display()
    );
    Ok(())
}
