//! Running the points of a grid as child processes (`allconv train --grid grid.json --index I`),
//! as many at once as [`Slots`] has places (`--jobs`, or `--jobs-per-gpu` on each of `--gpus`),
//! with a progress bar per run read from its `metrics.csv`.
//!
//! [`run_grid`] plans (which points have ended already), then loops: start a trainer in every
//! free place, watch the running ones, account for each that ends; a SIGTERM or SIGINT stops
//! every trainer at its checkpoint and ends the grid.

use allconv_runs::errln;
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use allconv_runs::{FolderState, RunDir, RunStatus};
use allconv_train::config::ExperimentConfig;
use allconv_train::{ExperimentGrid, GridFile};
use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::gpus::{child_visible_devices, Slot, Slots};
use crate::cli::stop_signal::StopSignals;

/// The variable that limits the GPUs a CUDA process sees (and renumbers them from 0).
const VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// How long a grid waits for a run folder's lock held by a trainer that may be exiting.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// How often the running trainers are looked at.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// What happened to the grid.
pub(super) struct Outcome {
    /// Runs trained (to their end) by this grid.
    pub trained: usize,
    /// Runs that had ended before.
    pub skipped: usize,
    /// Runs that diverged, now or before.
    pub diverged: usize,
    /// Labels of the runs whose trainer failed.
    pub failed: Vec<String>,
    /// Labels (with the holder's pid) of the runs another process was training: left to it.
    pub running: Vec<String>,
}

/// One grid point still to train.
struct Pending {
    index: usize,
    /// The label of the run (its canonical model name, lr, seed).
    label: String,
    run_dir: RunDir,
}

/// One grid point being trained by a child process.
struct Running {
    label: String,
    slot: Slot,
    run_dir: RunDir,
    child: Child,
    bar: ProgressBar,
    epochs_seen: u64,
    started: Instant,
}

fn label(model: &str, lr: f64, seed: u64) -> String {
    format!("{model} lr {lr} seed {seed}")
}

/// The last `n` lines of a log file.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Progress output: bars on a terminal, plain lines otherwise; the grid's bar counts epochs.
struct Display {
    multi: MultiProgress,
    plain: bool,
    overall: ProgressBar,
    run_style: ProgressStyle,
    total_runs: usize,
}

impl Display {
    /// The display of a grid of `total_runs` runs of `planned` epochs each.
    fn new(total_runs: usize, planned: u64) -> Display {
        let plain = !std::io::stderr().is_terminal();
        let multi = if plain {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        };
        let overall = multi.add(ProgressBar::new(total_runs as u64 * planned));
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
        Display {
            multi,
            plain,
            overall,
            run_style,
            total_runs,
        }
    }

    fn line(&self, text: &str) {
        if self.plain {
            errln!("{text}");
        } else {
            let _ = self.multi.println(text);
        }
    }

    /// The grid's bar after `finished` runs have ended.
    fn finished(&self, finished: usize) {
        self.overall
            .set_message(format!("{finished}/{} runs", self.total_runs));
    }

    /// A bar for the run `name` of `planned` epochs, `seen` of them done.
    fn run_bar(&self, name: &str, planned: u64, seen: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(planned));
        bar.set_style(self.run_style.clone());
        bar.set_prefix(name.to_string());
        bar.set_position(seen);
        bar
    }
}

/// Trains every grid point not finished yet, one child process in each free place of `slots`.
pub(super) fn run_grid(
    grid: &GridFile,
    grid_path: &Path,
    experiment: &ExperimentConfig,
    slots: Slots,
    allow_changed_data: bool,
) -> anyhow::Result<Outcome> {
    let planned = experiment.schedule.epochs as u64;
    let mut pool = Pool {
        exe: std::env::current_exe().context("locating the allconv binary")?,
        grid_path,
        allow_changed_data,
        planned,
        slots,
        display: Display::new(grid.points.len(), planned),
        queue: VecDeque::new(),
        running: Vec::new(),
        finished: 0,
        outcome: Outcome {
            trained: 0,
            skipped: 0,
            diverged: 0,
            failed: Vec::new(),
            running: Vec::new(),
        },
    };
    pool.plan(grid, experiment)?;
    let signals = StopSignals::install();
    loop {
        if let Some(signal) = signals.received() {
            return Err(pool.stop_all(signal));
        }
        pool.start_queued()?;
        if pool.running.is_empty() {
            break;
        }
        std::thread::sleep(WATCH_EVERY);
        pool.watch()?;
    }
    pool.display.overall.finish_and_clear();
    Ok(pool.outcome)
}

/// The grid's trainers: those queued, those running, and what became of those that ended.
struct Pool<'a> {
    exe: PathBuf,
    grid_path: &'a Path,
    allow_changed_data: bool,
    /// Epochs of each run.
    planned: u64,
    slots: Slots,
    display: Display,
    queue: VecDeque<Pending>,
    running: Vec<Running>,
    /// Runs ended (before, now, or left to another process).
    finished: usize,
    outcome: Outcome,
}

impl Pool<'_> {
    /// Queues every grid point whose folder has not ended; counts those that have.
    fn plan(&mut self, grid: &GridFile, experiment: &ExperimentConfig) -> anyhow::Result<()> {
        let mut already = 0u64;
        for point in &grid.points {
            // The folder the trainer will use (its canonical spelling of the model name).
            let run_config = grid.run_config(experiment.clone(), point.index)?;
            let run_dir = RunDir::new(run_config.run_dir());
            match run_dir.state() {
                FolderState::Ended(result) => {
                    self.finished += 1;
                    self.outcome.skipped += 1;
                    if result.status == RunStatus::Diverged {
                        self.outcome.diverged += 1;
                    }
                    already += self.planned;
                }
                FolderState::Open { epochs_done } => {
                    already += (epochs_done as u64).min(self.planned);
                    self.queue.push_back(Pending {
                        index: point.index,
                        label: label(&run_config.model, point.lr, point.seed),
                        run_dir,
                    });
                }
            }
        }
        let display = &self.display;
        display.overall.set_position(already);
        display.overall.reset_eta();
        display.finished(self.finished);
        if self.outcome.skipped > 0 {
            display.line(&format!(
                "{} of {} runs finished before: skipped",
                self.outcome.skipped, display.total_runs
            ));
        }
        Ok(())
    }

    /// Starts a trainer for queued points while there are free places.
    fn start_queued(&mut self) -> anyhow::Result<()> {
        while !self.queue.is_empty() {
            let Some(slot) = self.slots.take() else {
                break;
            };
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            let run_dir = &next.run_dir;
            std::fs::create_dir_all(run_dir.path())
                .with_context(|| format!("creating {}", run_dir.path().display()))?;
            // A trainer of a grid stopped a moment ago may still be exiting: give it a few
            // seconds to release the run's lock rather than report the run as locked. A live
            // holder keeps it: that run is being trained, not failed, and is left to it.
            if !run_dir.wait_unlocked(LOCK_GRACE) {
                if let Some(holder) = run_dir.trainer_running() {
                    let name = format!("{}{holder}", next.label);
                    self.finished += 1;
                    let done = (run_dir.epochs_done() as u64).min(self.planned);
                    self.display.overall.inc(self.planned - done);
                    self.display.finished(self.finished);
                    self.left_to_another_process(name);
                    self.slots.release(slot);
                    continue;
                }
            }
            let started = self.spawn(next, slot)?;
            self.running.push(started);
        }
        Ok(())
    }

    /// Starts the trainer of `next` in `slot`, its output appended to the run's `train.log`.
    fn spawn(&self, next: Pending, slot: Slot) -> anyhow::Result<Running> {
        let Pending {
            index,
            label,
            run_dir,
        } = next;
        let log_path = run_dir.train_log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut command = Command::new(&self.exe);
        let (mut on, mut env) = (String::new(), String::new());
        if let Some(gpu) = slot.gpu {
            let parent = std::env::var(VISIBLE_DEVICES).ok();
            let visible =
                child_visible_devices(parent.as_deref(), gpu).map_err(anyhow::Error::msg)?;
            command.env(VISIBLE_DEVICES, &visible);
            on = format!(" on GPU {gpu}");
            env = format!("{VISIBLE_DEVICES}={visible} ");
        }
        let _ = writeln!(
            log,
            "== allconv reproduce: {env}{} train --grid {} --index {index}",
            self.exe.display(),
            self.grid_path.display()
        );
        command
            .arg("train")
            .arg("--grid")
            .arg(self.grid_path)
            .arg("--index")
            .arg(index.to_string());
        if self.allow_changed_data {
            command.arg("--allow-changed-data");
        }
        super::stop::end_with_grid(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .with_context(|| format!("{}", log_path.display()))?,
            )
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} train", self.exe.display()))?;
        let seen = (run_dir.epochs_done() as u64).min(self.planned);
        let bar = self.display.run_bar(&label, self.planned, seen);
        self.display.line(&format!(
            "[{}/{}] {label}: started{on}{}",
            self.finished + self.running.len() + 1,
            self.display.total_runs,
            if seen > 0 {
                format!(" (resuming after epoch {seen})")
            } else {
                String::new()
            }
        ));
        Ok(Running {
            label,
            slot,
            run_dir,
            child,
            bar,
            epochs_seen: seen,
            started: Instant::now(),
        })
    }

    /// Moves the bars of the running trainers on, and accounts for those that have ended.
    fn watch(&mut self) -> anyhow::Result<()> {
        let mut still = Vec::new();
        for mut run in std::mem::take(&mut self.running) {
            let seen = (run.run_dir.epochs_done() as u64).min(self.planned);
            if seen > run.epochs_seen {
                self.display.overall.inc(seen - run.epochs_seen);
                run.epochs_seen = seen;
                run.bar.set_position(seen);
            }
            match run.child.try_wait() {
                Ok(Some(status)) => self.ended(run, status),
                Ok(None) => still.push(run),
                Err(e) => {
                    return Err(e).with_context(|| format!("waiting for the run {}", run.label))
                }
            }
        }
        self.running = still;
        Ok(())
    }

    /// Accounts for a trainer that exited with `status`: trained, diverged, failed, or left to
    /// another process that took the run's lock first.
    fn ended(&mut self, run: Running, status: ExitStatus) {
        // Whatever the child's status: its place is the next point's.
        self.slots.release(run.slot);
        self.finished += 1;
        let display = &self.display;
        display.overall.inc(self.planned - run.epochs_seen);
        display.finished(self.finished);
        run.bar.finish_and_clear();
        display.multi.remove(&run.bar);
        let seconds = run.started.elapsed().as_secs_f64();
        let done = format!("[{}/{}] {}", self.finished, display.total_runs, run.label);
        let log_path = run.run_dir.train_log_path();
        let failure = |what: String| {
            format!(
                "{done}: {what}; end of {}:\n{}",
                log_path.display(),
                log_tail(&log_path, 15)
            )
        };
        if !status.success() {
            if let Some(holder) = run.run_dir.trainer_running() {
                // Another process took the run's lock first: it trains the run.
                self.left_to_another_process(format!("{}{holder}", run.label));
                return;
            }
            self.outcome.failed.push(run.label.clone());
            display.line(&failure(format!("FAILED ({status}) after {seconds:.0} s")));
            return;
        }
        self.outcome.trained += 1;
        match run.run_dir.result() {
            Ok(Some(result)) if result.status == RunStatus::Diverged => {
                self.outcome.diverged += 1;
                display.line(&format!(
                    "{done}: diverged after {} epochs ({}), {seconds:.0} s",
                    result.epochs_run,
                    result.reason.unwrap_or_default()
                ));
            }
            Ok(Some(result)) => display.line(&format!(
                "{done}: done, final test error {}, {seconds:.0} s",
                result
                    .final_test_error
                    .map(|e| format!("{e:.2}%"))
                    .unwrap_or_else(|| "not evaluated".into())
            )),
            Ok(None) | Err(_) => {
                self.outcome.failed.push(run.label.clone());
                let result_file = run.run_dir.result_path();
                let name = result_file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy();
                display.line(&failure(format!("the trainer exited without a {name}")));
            }
        }
    }

    /// Records a run that another process is training (`name` has the holder's pid).
    fn left_to_another_process(&mut self, name: String) {
        self.display.line(&format!(
            "[{}/{}] {name}: being trained by another process; left to it",
            self.finished, self.display.total_runs
        ));
        self.outcome.running.push(name);
    }

    /// Stops every running trainer at its checkpoint (SIGTERM passed on), waits for them, and
    /// returns the error that ends the grid after `signal`.
    fn stop_all(self, signal: &str) -> anyhow::Error {
        for run in &self.running {
            super::stop::stop_trainer(&run.child);
        }
        for mut run in self.running {
            // Each trainer ends where it is; its last checkpoint stays (see `stop`).
            let _ = run.child.wait();
            run.bar.finish_and_clear();
        }
        self.display.overall.finish_and_clear();
        anyhow::anyhow!(
            "{signal} received: the running trainers were stopped at their last checkpoint and \
             no new run was started; the same command resumes the grid"
        )
    }
}
