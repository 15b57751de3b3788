//! `allconv reproduce`: runs every grid point of an experiment as its own `allconv train`
//! process (at most `--jobs` at once, or `--jobs-per-gpu` on each of `--gpus`: [`gpus`]), then
//! writes the report.
//!
//! The grid, with the resolved experiment configuration embedded, is written to
//! `<runs>/grid.json`, and each child ([`pool`]) runs `allconv train --grid <runs>/grid.json
//! --index I`: the same command a Slurm array task runs (`--emit-slurm`, [`slurm`]). Completed
//! runs (`result.json`) are skipped; an interrupted run resumes from its checkpoint (the trainer does it); a diverged run
//! is a result and the grid goes on; a failed child is reported with the end of its log and the
//! grid goes on, and the command fails at the end.
//!
//! Ctrl-C reaches the children too (they share the terminal's process group); each writes a
//! checkpoint at the step under way and stops, and the same command continues from there.

mod gpus;
mod pool;
mod slurm;
mod stop;

use allconv_runs::{errln, outln};
use std::path::{Path, PathBuf};

use allconv_runs::RunsRoot;
use allconv_train::config::ExperimentConfig;
use allconv_train::{ExperimentGrid, GridFile, Setting};
use anyhow::{bail, Context};

use super::config_flags::ConfigFlags;
use super::preset::Preset;

/// Flags of `allconv reproduce`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (YAML); default: the preset's file, else `configs/paper.yaml`.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A shipped experiment, by name (its file is configs/<name>.yaml).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Grid points trained at once (each is its own process; several small runs share a GPU).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Spread the runs over these GPUs of this machine (comma-separated numbers, as `cuda:N`
    /// numbers them), --jobs-per-gpu at a time on each; each run sees only its GPU
    /// (CUDA_VISIBLE_DEVICES), as cuda:0. Needs a CUDA experiment (`--device cuda`).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "jobs")]
    pub gpus: Vec<usize>,
    /// With --gpus: grid points trained at once on each GPU.
    #[arg(long, default_value_t = 1, requires = "gpus",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs_per_gpu: u32,
    /// Only these models (comma-separated), instead of the config's `grid.models`.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = super::choices::model())]
    pub models: Vec<String>,
    /// Only these learning rates (comma-separated), instead of `grid.lrs`.
    #[arg(long, value_delimiter = ',', num_args = 1.., allow_negative_numbers = true)]
    pub lrs: Vec<f64>,
    /// Only these seeds (comma-separated), instead of `grid.seeds`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub seeds: Vec<u64>,
    /// Configuration overrides (a `--data-dir` folder is fetched when its files are missing).
    #[command(flatten)]
    pub overrides: ConfigFlags,
    /// Write `grid.json`, a Slurm array script `grid.sbatch`, a report job `report.sbatch` and
    /// `submit.sh` (submits both) into this folder instead of training; `<runs>/grid.json` too.
    #[arg(long, value_name = "DIR")]
    pub emit_slurm: Option<PathBuf>,
    /// Resources of the Slurm jobs (the `slurm:` keys).
    #[command(flatten)]
    pub slurm: slurm::SlurmFlags,
    /// Where to write the report (default `<runs>/report`).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Resume runs even though their data files or preprocessing statistics differ from what
    /// they recorded (passed to every trainer; see `allconv train --allow-changed-data`).
    #[arg(long)]
    pub allow_changed_data: bool,
}

/// Runs `allconv reproduce`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config_path = args.config_path();
    let experiment = experiment(&args, &config_path)?;
    let grid = GridFile::from_experiment(&experiment)?;
    if grid.points.is_empty() {
        bail!(
            "the grid of {} is empty (models {:?}, lrs {:?}, seeds {:?})",
            config_path.display(),
            experiment.grid.models,
            experiment.grid.lrs,
            experiment.grid.seeds
        );
    }

    gpus::check_gpus(
        &args.gpus,
        experiment.training.device,
        args.emit_slurm.is_some(),
    )
    .map_err(anyhow::Error::msg)?;
    if let Some(dir) = &args.emit_slurm {
        gpus::check_slurm_device(experiment.training.device).map_err(anyhow::Error::msg)?;
        return slurm::emit(dir, &grid, &experiment, args.slurm.slurm_binary.as_deref());
    }
    if experiment.training.device.is_cuda() && !candle_core::utils::cuda_is_available() {
        bail!(
            "{} trains on cuda, but this allconv was built without CUDA: use `cargo xtask \
             reproduce --cuda ...` (or `cargo build --release --features cuda`), or pass \
             --device cpu",
            config_path.display()
        );
    }

    // The children choose the same way (from the grid's configuration and the inherited
    // environment): a path this CPU lacks is refused once, before any of them starts.
    super::cpu_kernels::choose(
        args.overrides.cpu_kernels,
        Some(experiment.training.cpu_kernels),
    )?;
    super::acquire::ensure_data(&experiment.data)?;
    let runs = RunsRoot::new(experiment.out.runs.clone());
    // One grid process per runs root, held until the report is written.
    let _grid_lock = runs.lock_grid()?;
    let grid_path = runs.grid_path();
    grid.save(&grid_path)
        .with_context(|| format!("writing {}", grid_path.display()))?;
    let slots = checked_slots(&args, &experiment)?;
    let outcome = pool::run_grid(
        &grid,
        &grid_path,
        &experiment,
        slots,
        args.allow_changed_data,
    )?;
    let report_dir = args.report.unwrap_or_else(|| runs.report_dir());
    conclude(&runs, &report_dir, grid.points.len(), &outcome)
}

impl Args {
    /// The experiment file: `--config`, else the preset's, else the paper's.
    fn config_path(&self) -> PathBuf {
        match (&self.config, self.preset) {
            (Some(path), _) => path.clone(),
            (None, Some(preset)) => preset.config_path(),
            (None, None) => Preset::Paper.config_path(),
        }
    }

    /// The overrides the flags stand for, in the order they apply: the grid's axes, the Slurm
    /// resources, then the configuration flags.
    fn settings(&self) -> Vec<Setting> {
        let mut settings = Vec::new();
        if !self.models.is_empty() {
            settings.push(Setting::from_flag(
                "--models",
                "grid.models",
                self.models.clone(),
            ));
        }
        if !self.lrs.is_empty() {
            settings.push(Setting::from_flag("--lrs", "grid.lrs", self.lrs.clone()));
        }
        if !self.seeds.is_empty() {
            settings.push(Setting::from_flag(
                "--seeds",
                "grid.seeds",
                self.seeds.clone(),
            ));
        }
        settings.extend(self.slurm.settings());
        settings.extend(self.overrides.settings());
        settings
    }
}

/// The experiment of `config_path` with the command line's flags applied; Slurm flags without
/// `--emit-slurm` are refused, naming them.
fn experiment(args: &Args, config_path: &Path) -> anyhow::Result<ExperimentConfig> {
    let mut experiment = ExperimentConfig::load(config_path).with_context(|| {
        format!(
            "reading the experiment {} (run from the repository root, or pass --config)",
            config_path.display()
        )
    })?;
    let slurm_flags = args.slurm.given();
    if args.emit_slurm.is_none() && !slurm_flags.is_empty() {
        bail!(
            "{} only shape the Slurm jobs of --emit-slurm DIR, which was not given: add it, or \
             drop them (a `slurm:` section in the config is fine either way)",
            slurm_flags.join(", ")
        );
    }
    experiment
        .apply(&args.settings())
        .context("applying the command-line flags to the experiment")?;
    Ok(experiment)
}

/// Where the children run, after the device check of the first GPU (or of the experiment's
/// device) passed or was found remembered: before any child, so that they find the remembered
/// pass instead of each checking (children on another kind of GPU check theirs).
fn checked_slots(args: &Args, experiment: &ExperimentConfig) -> anyhow::Result<gpus::Slots> {
    Ok(match args.gpus.first() {
        None => {
            super::device_gate::ensure_checked(experiment)?;
            gpus::Slots::jobs(args.jobs as usize)
        }
        Some(&first) => {
            let mut on_first = experiment.clone();
            on_first.training.device = allconv_vocab::Device::Cuda(first);
            super::device_gate::ensure_checked(&on_first)?;
            gpus::Slots::gpus(&args.gpus, args.jobs_per_gpu as usize)
        }
    })
}

/// Writes the report of the runs root into `report_dir`, says what the grid did, prints the
/// report's path, and fails when a run failed or is still being trained elsewhere.
fn conclude(
    runs: &RunsRoot,
    report_dir: &Path,
    points: usize,
    outcome: &pool::Outcome,
) -> anyhow::Result<()> {
    let written = super::report::write(runs.path(), report_dir)?;
    errln!(
        "{points} runs: {} trained now, {} finished before, {} diverged, {} failed, {} being \
         trained by another process",
        outcome.trained,
        outcome.skipped,
        outcome.diverged,
        outcome.failed.len(),
        outcome.running.len()
    );
    outln!("{}", written.markdown.display());
    if !outcome.failed.is_empty() {
        bail!(
            "{} run(s) failed (see their train.log): {}",
            outcome.failed.len(),
            outcome.failed.join(", ")
        );
    }
    if !outcome.running.is_empty() {
        bail!(
            "the grid is not finished: {} run(s) are being trained by another process ({}); \
             the report shows them as running. Run the same command again once they have ended",
            outcome.running.len(),
            outcome.running.join(", ")
        );
    }
    Ok(())
}
