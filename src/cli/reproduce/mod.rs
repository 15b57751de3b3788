//! `allconv reproduce`: runs every grid point of an experiment as its own `allconv train`
//! process (at most `--jobs` at once), then writes the report.
//!
//! The grid, with the resolved experiment configuration embedded, is written to
//! `<runs>/grid.json`, and each child runs `allconv train --grid <runs>/grid.json --index I`: the
//! same command a Slurm array task runs (`--emit-slurm`). Completed runs (`result.json`) are
//! skipped; an interrupted run resumes from its checkpoint (the trainer does it); a diverged run
//! is a result and the grid goes on; a failed child is reported with the end of its log and the
//! grid goes on, and the command fails at the end.
//!
//! Ctrl-C reaches the children too (they share the terminal's process group); each stops with
//! its last per-epoch checkpoint intact, and the same command continues where it stopped.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allconv_train::config::{DeviceKind, ExperimentConfig, Overrides};
use allconv_train::{GridFile, RunDir, RunStatus};
use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Named experiment files under `configs/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// `configs/quick.yaml`: a CPU-sized subset that finishes in minutes.
    Quick,
    /// `configs/paper.yaml`: the paper's grid and schedule.
    Paper,
    /// `configs/paper-val.yaml`: the paper's grid with a validation split held out.
    PaperVal,
    /// `configs/gpu-smoke.yaml`: 2 models, 4 epochs, a 5,000-image subset, on CUDA.
    GpuSmoke,
}

impl Preset {
    /// The experiment file of the preset, relative to the repository root.
    pub fn config_path(self) -> PathBuf {
        PathBuf::from(match self {
            Preset::Quick => "configs/quick.yaml",
            Preset::Paper => "configs/paper.yaml",
            Preset::PaperVal => "configs/paper-val.yaml",
            Preset::GpuSmoke => "configs/gpu-smoke.yaml",
        })
    }
}

/// Flags of `allconv reproduce`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment file (YAML); default: the preset's file, else `configs/paper.yaml`.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A named experiment: quick (CPU, minutes), paper, paper-val, gpu-smoke (CUDA, minutes).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Grid points trained at once (each is its own process; several small runs share a GPU).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Only these models (comma-separated), instead of the config's `grid.models`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub models: Vec<String>,
    /// Only these learning rates (comma-separated), instead of `grid.lrs`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub lrs: Vec<f64>,
    /// Only these seeds (comma-separated), instead of `grid.seeds`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub seeds: Vec<u64>,
    /// Root of the run folders, instead of `out.runs`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu or cuda, instead of `training.device` (`--emit-slurm` defaults to cuda).
    #[arg(long)]
    pub device: Option<DeviceKind>,
    /// Allow TF32 tensor-core math on CUDA (`training.tf32: true`); recorded in each run's
    /// config and stated in the report.
    #[arg(long)]
    pub tf32: bool,
    /// CIFAR-10 folder, instead of `data.dir` (fetched when its files are missing).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Write `grid.json` and a Slurm array script `grid.sbatch` into this folder instead of
    /// training.
    #[arg(long, value_name = "DIR")]
    pub emit_slurm: Option<PathBuf>,
    /// Where to write the report (default `<runs>/report`).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs `allconv reproduce`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config_path = match (&args.config, args.preset) {
        (Some(path), _) => path.clone(),
        (None, Some(preset)) => preset.config_path(),
        (None, None) => Preset::Paper.config_path(),
    };
    let mut experiment = ExperimentConfig::load(&config_path).with_context(|| {
        format!(
            "reading the experiment {} (run from the repository root, or pass --config)",
            config_path.display()
        )
    })?;
    let device = match (args.device, &args.emit_slurm) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => Some(DeviceKind::Cuda),
        (None, None) => None,
    };
    if !args.models.is_empty() {
        experiment.grid.models = args.models.clone();
    }
    if !args.lrs.is_empty() {
        experiment.grid.lrs = args.lrs.clone();
    }
    if !args.seeds.is_empty() {
        experiment.grid.seeds = args.seeds.clone();
    }
    experiment
        .apply(&Overrides {
            out: args.out.clone(),
            data_dir: args.data_dir.clone(),
            device,
            tf32: args.tf32,
            ..Overrides::default()
        })
        .context("applying the command-line flags to the experiment")?;
    let grid = GridFile::from_experiment(&experiment);
    if grid.points.is_empty() {
        bail!(
            "the grid of {} is empty (models {:?}, lrs {:?}, seeds {:?})",
            config_path.display(),
            experiment.grid.models,
            experiment.grid.lrs,
            experiment.grid.seeds
        );
    }

    if let Some(dir) = &args.emit_slurm {
        return emit_slurm(dir, &grid, &experiment);
    }
    if experiment.training.device == DeviceKind::Cuda && !candle_core::utils::cuda_is_available() {
        bail!(
            "{} trains on cuda, but this allconv was built without CUDA: use `cargo xtask \
             reproduce --cuda ...` (or `cargo build --release --features cuda`), or pass \
             --device cpu",
            config_path.display()
        );
    }

    let data_dir = experiment.data.resolved_dir();
    if args.preset == Some(Preset::GpuSmoke) && args.data_dir.is_none() {
        ensure_smoke_subset(&data_dir)?;
    } else {
        ensure_data(&data_dir)?;
    }
    let runs = experiment.out.runs.clone();
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    let grid_path = super::report::grid_file_path(&runs);
    grid.save(&grid_path)
        .with_context(|| format!("writing {}", grid_path.display()))?;

    let outcome = run_grid(&grid, &grid_path, &experiment, args.jobs as usize)?;

    let report_dir = args.report.unwrap_or_else(|| runs.join("report"));
    let written = super::report::write(&runs, &report_dir)?;
    eprintln!(
        "{} runs: {} trained now, {} finished before, {} diverged, {} failed",
        grid.points.len(),
        outcome.trained,
        outcome.skipped,
        outcome.diverged,
        outcome.failed.len()
    );
    println!("{}", written.markdown.display());
    if !outcome.failed.is_empty() {
        bail!(
            "{} run(s) failed (see their train.log): {}",
            outcome.failed.len(),
            outcome.failed.join(", ")
        );
    }
    Ok(())
}

/// Fetches CIFAR-10 into `dir` unless all six batch files are there. Existing files are left
/// to the trainer to validate (a test may train on a synthetic set in the same layout).
fn ensure_data(dir: &Path) -> anyhow::Result<()> {
    if has_all_files(dir) {
        return Ok(());
    }
    eprintln!("CIFAR-10 is not in {}: fetching it", dir.display());
    allconv_cifar::fetch(dir, &allconv_cifar::FetchOptions::default())
        .with_context(|| format!("fetching CIFAR-10 into {}", dir.display()))?;
    Ok(())
}

/// How long a grid waits for a run folder's lock held by a trainer that may be exiting.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Images from each training file, and test images, of the `gpu-smoke` preset's subset.
const SMOKE_PER_FILE: usize = 1000;
const SMOKE_TEST: usize = 1000;

/// Makes the `gpu-smoke` subset in `dir` from the full data set (fetched if missing) unless
/// `dir` holds all six files already (e.g. carried to a GPU machine that has no network).
fn ensure_smoke_subset(dir: &Path) -> anyhow::Result<()> {
    if has_all_files(dir) {
        return Ok(());
    }
    let full = allconv_cifar::default_data_dir();
    ensure_data(&full)?;
    eprintln!(
        "making the gpu-smoke subset in {} ({SMOKE_PER_FILE} images from each training file of {}, {SMOKE_TEST} test images)",
        dir.display(),
        full.display()
    );
    let data = allconv_cifar::load_dir(&full)
        .with_context(|| format!("reading CIFAR-10 from {}", full.display()))?;
    let subset = data.subset(SMOKE_PER_FILE, SMOKE_TEST)?;
    allconv_cifar::write_split_dir(dir, &subset)
        .with_context(|| format!("writing the gpu-smoke subset into {}", dir.display()))
}

fn has_all_files(dir: &Path) -> bool {
    allconv_cifar::TRAIN_FILES
        .iter()
        .chain(std::iter::once(&allconv_cifar::TEST_FILE))
        .all(|f| dir.join(f).is_file())
}

/// What happened to the grid.
struct Outcome {
    trained: usize,
    skipped: usize,
    diverged: usize,
    failed: Vec<String>,
}

/// One grid point being trained by a child process.
struct Running {
    label: String,
    run_dir: PathBuf,
    child: Child,
    bar: ProgressBar,
    epochs_seen: u64,
    started: Instant,
}

fn label(model: &str, lr: f64, seed: u64) -> String {
    format!("{model} lr {lr} seed {seed}")
}

/// Finished epochs of a run: data rows of its metrics.csv.
fn epochs_done(run_dir: &Path) -> u64 {
    std::fs::read_to_string(run_dir.join("metrics.csv"))
        .map(|t| t.lines().skip(1).filter(|l| !l.trim().is_empty()).count() as u64)
        .unwrap_or(0)
}

/// The last `n` lines of a log file.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Progress output: bars on a terminal, plain lines otherwise.
struct Display {
    multi: MultiProgress,
    plain: bool,
}

impl Display {
    fn line(&self, text: &str) {
        if self.plain {
            eprintln!("{text}");
        } else {
            let _ = self.multi.println(text);
        }
    }
}

fn run_grid(
    grid: &GridFile,
    grid_path: &Path,
    experiment: &ExperimentConfig,
    jobs: usize,
) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("locating the allconv binary")?;
    let planned = experiment.schedule.epochs as u64;
    let total_runs = grid.points.len();
    let plain = !std::io::stderr().is_terminal();
    let display = Display {
        multi: if plain {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        },
        plain,
    };
    let overall = display
        .multi
        .add(ProgressBar::new(total_runs as u64 * planned));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} [{elapsed_precise}] {wide_bar} {msg}, ETA {eta}",
        )
        .expect("valid template"),
    );
    overall.set_prefix("grid");
    let run_style =
        ProgressStyle::with_template("  {prefix:<34} {bar:30} {pos}/{len} epochs {msg}")
            .expect("valid template");

    let mut outcome = Outcome {
        trained: 0,
        skipped: 0,
        diverged: 0,
        failed: Vec::new(),
    };
    let mut queue = VecDeque::new();
    let mut finished = 0usize;
    let mut already = 0u64;
    for point in &grid.points {
        // The folder the trainer will use (its canonical spelling of the model name).
        let run_config = grid.run_config(experiment.clone(), point.index)?;
        let dir = run_config.run_dir();
        match RunDir::new(&dir).result() {
            Ok(Some(result)) => {
                finished += 1;
                outcome.skipped += 1;
                if result.status == RunStatus::Diverged {
                    outcome.diverged += 1;
                }
                already += planned;
            }
            _ => {
                already += epochs_done(&dir).min(planned);
                queue.push_back((
                    point.index,
                    run_config.model.clone(),
                    point.lr,
                    point.seed,
                    dir,
                ));
            }
        }
    }
    let progress_message = |finished: usize| format!("{finished}/{total_runs} runs");
    overall.set_position(already);
    overall.reset_eta();
    overall.set_message(progress_message(finished));
    if outcome.skipped > 0 {
        display.line(&format!(
            "{} of {total_runs} runs finished before: skipped",
            outcome.skipped
        ));
    }

    let mut running: Vec<Running> = Vec::new();
    loop {
        while running.len() < jobs {
            let Some((index, model, lr, seed, run_dir)) = queue.pop_front() else {
                break;
            };
            std::fs::create_dir_all(&run_dir)
                .with_context(|| format!("creating {}", run_dir.display()))?;
            // A trainer of a grid stopped a moment ago may still be exiting: give it a few
            // seconds to release the run's lock rather than report the run as locked. A live
            // holder keeps it and the child reports that.
            RunDir::new(&run_dir).wait_unlocked(LOCK_GRACE);
            let log_path = run_dir.join("train.log");
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            let _ = writeln!(
                log,
                "== allconv reproduce: {} train --grid {} --index {index}",
                exe.display(),
                grid_path.display()
            );
            let child = Command::new(&exe)
                .arg("train")
                .arg("--grid")
                .arg(grid_path)
                .arg("--index")
                .arg(index.to_string())
                .stdin(Stdio::null())
                .stdout(
                    log.try_clone()
                        .with_context(|| format!("{}", log_path.display()))?,
                )
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {} train", exe.display()))?;
            let name = label(&model, lr, seed);
            let seen = epochs_done(&run_dir).min(planned);
            let bar = display.multi.add(ProgressBar::new(planned));
            bar.set_style(run_style.clone());
            bar.set_prefix(name.clone());
            bar.set_position(seen);
            display.line(&format!(
                "[{}/{total_runs}] {name}: started{}",
                finished + running.len() + 1,
                if seen > 0 {
                    format!(" (resuming after epoch {seen})")
                } else {
                    String::new()
                }
            ));
            running.push(Running {
                label: name,
                run_dir,
                child,
                bar,
                epochs_seen: seen,
                started: Instant::now(),
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        let mut still = Vec::new();
        for mut run in running.drain(..) {
            let seen = epochs_done(&run.run_dir).min(planned);
            if seen > run.epochs_seen {
                overall.inc(seen - run.epochs_seen);
                run.epochs_seen = seen;
                run.bar.set_position(seen);
            }
            let status = match run.child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => {
                    still.push(run);
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("waiting for the run {}", run.label))
                }
            };
            finished += 1;
            overall.inc(planned - run.epochs_seen);
            overall.set_message(progress_message(finished));
            run.bar.finish_and_clear();
            display.multi.remove(&run.bar);
            let seconds = run.started.elapsed().as_secs_f64();
            let log_path = run.run_dir.join("train.log");
            if !status.success() {
                outcome.failed.push(run.label.clone());
                display.line(&format!(
                    "[{finished}/{total_runs}] {}: FAILED ({status}) after {seconds:.0} s; end of {}:\n{}",
                    run.label,
                    log_path.display(),
                    log_tail(&log_path, 15)
                ));
                continue;
            }
            outcome.trained += 1;
            match RunDir::new(&run.run_dir).result() {
                Ok(Some(result)) if result.status == RunStatus::Diverged => {
                    outcome.diverged += 1;
                    display.line(&format!(
                        "[{finished}/{total_runs}] {}: diverged after {} epochs ({}), {seconds:.0} s",
                        run.label,
                        result.epochs_run,
                        result.reason.unwrap_or_default()
                    ));
                }
                Ok(Some(result)) => display.line(&format!(
                    "[{finished}/{total_runs}] {}: done, final test error {}, {seconds:.0} s",
                    run.label,
                    result
                        .final_test_error
                        .map(|e| format!("{e:.2}%"))
                        .unwrap_or_else(|| "not evaluated".into())
                )),
                Ok(None) | Err(_) => {
                    outcome.failed.push(run.label.clone());
                    display.line(&format!(
                        "[{finished}/{total_runs}] {}: the trainer exited without a result.json; end of {}:\n{}",
                        run.label,
                        log_path.display(),
                        log_tail(&log_path, 15)
                    ));
                }
            }
        }
        running = still;
    }
    overall.finish_and_clear();
    Ok(outcome)
}

/// Writes `grid.json` (the experiment embedded, one point per index) and `grid.sbatch` (a
/// Slurm array, one task per point, requeued with its checkpoint when the time limit nears).
fn emit_slurm(dir: &Path, grid: &GridFile, experiment: &ExperimentConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.join("logs").display()))?;
    let dir = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let grid_path = dir.join("grid.json");
    grid.save(&grid_path)
        .with_context(|| format!("writing {}", grid_path.display()))?;
    let exe = std::env::current_exe().context("locating the allconv binary")?;
    let workdir = std::env::current_dir().context("reading the current folder")?;
    let script = slurm_script(
        &exe,
        &workdir,
        &grid_path,
        &dir.join("logs"),
        grid.points.len(),
    );
    let script_path = dir.join("grid.sbatch");
    std::fs::write(&script_path, script)
        .with_context(|| format!("writing {}", script_path.display()))?;
    eprintln!(
        "{} grid points ({} on {}); the data must be in {} on the cluster (`allconv data fetch`).",
        grid.points.len(),
        experiment.schedule.epochs,
        experiment.training.device,
        experiment.data.resolved_dir().display()
    );
    eprintln!("submit with: sbatch {}", script_path.display());
    eprintln!(
        "then: allconv report --runs {}",
        experiment.out.runs.display()
    );
    println!("{}", script_path.display());
    Ok(())
}

/// Quotes a path for bash (single quotes; a single quote inside is closed, escaped, reopened).
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The `sbatch --array` script: task `I` runs `allconv train --grid grid.json --index I`. Slurm
/// sends USR1 to the batch shell 120 s before the time limit; the trap stops the trainer (its
/// per-epoch checkpoint stays) and requeues the task, which resumes from that checkpoint.
fn slurm_script(exe: &Path, workdir: &Path, grid: &Path, logs: &Path, points: usize) -> String {
    format!(
        r#"#!/usr/bin/env bash
# One allconv grid point per array task; written by `allconv reproduce --emit-slurm`.
# Edit the partition, GPU and time lines for your cluster, then: sbatch {script}
#SBATCH --job-name=allconv
#SBATCH --array=0-{last}
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={logs}/%A_%a.out
set -euo pipefail

ALLCONV="${{ALLCONV:-{exe}}}"
GRID={grid}
cd {workdir}

child=""
requeue() {{
  echo "allconv: time limit near: stopping task ${{SLURM_ARRAY_TASK_ID}} and requeueing it" >&2
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; fi
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
  exit 0
}}
trap requeue USR1

# In the background so the trap runs as soon as the signal arrives; a requeued task resumes the
# run from its last per-epoch checkpoint, and a finished run is skipped.
"$ALLCONV" train --grid "$GRID" --index "${{SLURM_ARRAY_TASK_ID}}" &
child=$!
wait "$child"
"#,
        script = shell_quote(&grid.with_file_name("grid.sbatch")),
        last = points.saturating_sub(1),
        logs = logs.display(),
        exe = exe.display(),
        grid = shell_quote(grid),
        workdir = shell_quote(workdir),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_covers_every_index_and_quotes_paths() {
        let script = slurm_script(
            Path::new("/opt/allconv"),
            Path::new("/home/o'brien/allconv"),
            Path::new("/tmp/slurm/grid.json"),
            Path::new("/tmp/slurm/logs"),
            48,
        );
        // 48 points: indices 0..=47.
        assert!(script.contains("#SBATCH --array=0-47\n"), "{script}");
        assert!(script.contains("#SBATCH --requeue\n"), "{script}");
        assert!(script.contains("#SBATCH --signal=B:USR1@120\n"), "{script}");
        assert!(
            script.contains(r"cd '/home/o'\''brien/allconv'"),
            "{script}"
        );
        assert!(
            script
                .contains(r#""$ALLCONV" train --grid "$GRID" --index "${SLURM_ARRAY_TASK_ID}" &"#),
            "{script}"
        );
    }
}
