//! Running the points of a grid as child processes (`allconv train --grid grid.json --index I`),
//! as many at once as [`Slots`] has places (`--jobs`, or `--jobs-per-gpu` on each of `--gpus`),
//! with a progress bar per run read from its `metrics.csv`.

use allconv_runs::errln;
use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allconv_runs::{FolderState, RunDir, RunStatus};
use allconv_train::config::ExperimentConfig;
use allconv_train::{ExperimentGrid, GridFile};
use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::gpus::{child_visible_devices, Slot, Slots};

/// The variable that limits the GPUs a CUDA process sees (and renumbers them from 0).
const VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// How long a grid waits for a run folder's lock held by a trainer that may be exiting.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

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

/// Progress output: bars on a terminal, plain lines otherwise.
struct Display {
    multi: MultiProgress,
    plain: bool,
}

impl Display {
    fn line(&self, text: &str) {
        if self.plain {
            errln!("{text}");
        } else {
            let _ = self.multi.println(text);
        }
    }
}

/// Trains every grid point not finished yet, one child process in each free place of `slots`.
pub(super) fn run_grid(
    grid: &GridFile,
    grid_path: &Path,
    experiment: &ExperimentConfig,
    mut slots: Slots,
    allow_changed_data: bool,
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
        running: Vec::new(),
    };
    let mut queue = VecDeque::new();
    let mut finished = 0usize;
    let mut already = 0u64;
    for point in &grid.points {
        // The folder the trainer will use (its canonical spelling of the model name).
        let run_config = grid.run_config(experiment.clone(), point.index)?;
        let dir = RunDir::new(run_config.run_dir());
        match dir.state() {
            FolderState::Ended(result) => {
                finished += 1;
                outcome.skipped += 1;
                if result.status == RunStatus::Diverged {
                    outcome.diverged += 1;
                }
                already += planned;
            }
            FolderState::Open { epochs_done } => {
                already += (epochs_done as u64).min(planned);
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
    let stop = super::stop::Guard::install();
    loop {
        if let Some(signal) = stop.received() {
            for run in &running {
                stop.forward(&run.child);
            }
            for mut run in running.drain(..) {
                // Each trainer ends where it is; its last checkpoint stays (see `stop`).
                let _ = run.child.wait();
                run.bar.finish_and_clear();
            }
            overall.finish_and_clear();
            anyhow::bail!(
                "{signal} received: the running trainers were stopped at their last checkpoint \
                 and no new run was started; the same command resumes the grid"
            );
        }
        while !queue.is_empty() {
            let Some(slot) = slots.take() else {
                break;
            };
            let Some((index, model, lr, seed, run_dir)) = queue.pop_front() else {
                break;
            };
            std::fs::create_dir_all(run_dir.path())
                .with_context(|| format!("creating {}", run_dir.path().display()))?;
            // A trainer of a grid stopped a moment ago may still be exiting: give it a few
            // seconds to release the run's lock rather than report the run as locked. A live
            // holder keeps it: that run is being trained, not failed, and is left to it.
            if !run_dir.wait_unlocked(LOCK_GRACE) {
                if let Some(holder) = run_dir.trainer_running() {
                    let name = format!("{}{holder}", label(&model, lr, seed));
                    finished += 1;
                    overall.inc(planned - (run_dir.epochs_done() as u64).min(planned));
                    overall.set_message(progress_message(finished));
                    display.line(&format!(
                        "[{finished}/{total_runs}] {name}: being trained by another process; \
                         left to it"
                    ));
                    outcome.running.push(name);
                    slots.release(slot);
                    continue;
                }
            }
            let log_path = run_dir.train_log_path();
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            let mut command = Command::new(&exe);
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
                exe.display(),
                grid_path.display()
            );
            command
                .arg("train")
                .arg("--grid")
                .arg(grid_path)
                .arg("--index")
                .arg(index.to_string());
            if allow_changed_data {
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
                .with_context(|| format!("starting {} train", exe.display()))?;
            let name = label(&model, lr, seed);
            let seen = (run_dir.epochs_done() as u64).min(planned);
            let bar = display.multi.add(ProgressBar::new(planned));
            bar.set_style(run_style.clone());
            bar.set_prefix(name.clone());
            bar.set_position(seen);
            display.line(&format!(
                "[{}/{total_runs}] {name}: started{on}{}",
                finished + running.len() + 1,
                if seen > 0 {
                    format!(" (resuming after epoch {seen})")
                } else {
                    String::new()
                }
            ));
            running.push(Running {
                label: name,
                slot,
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
            let seen = (run.run_dir.epochs_done() as u64).min(planned);
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
            // Whatever the child's status: its place is the next point's.
            slots.release(run.slot);
            finished += 1;
            overall.inc(planned - run.epochs_seen);
            overall.set_message(progress_message(finished));
            run.bar.finish_and_clear();
            display.multi.remove(&run.bar);
            let seconds = run.started.elapsed().as_secs_f64();
            let log_path = run.run_dir.train_log_path();
            let failure = |what: String| {
                format!(
                    "[{finished}/{total_runs}] {}: {what}; end of {}:\n{}",
                    run.label,
                    log_path.display(),
                    log_tail(&log_path, 15)
                )
            };
            if !status.success() {
                if let Some(holder) = run.run_dir.trainer_running() {
                    // Another process took the run's lock first: it trains the run.
                    let name = format!("{}{holder}", run.label);
                    display.line(&format!(
                        "[{finished}/{total_runs}] {name}: being trained by another process; \
                         left to it"
                    ));
                    outcome.running.push(name);
                    continue;
                }
                outcome.failed.push(run.label.clone());
                display.line(&failure(format!("FAILED ({status}) after {seconds:.0} s")));
                continue;
            }
            outcome.trained += 1;
            match run.run_dir.result() {
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
                    let result_file = run.run_dir.result_path();
                    let name = result_file
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy();
                    display.line(&failure(format!("the trainer exited without a {name}")));
                }
            }
        }
        running = still;
    }
    overall.finish_and_clear();
    Ok(outcome)
}
