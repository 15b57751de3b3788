//! End to end: `allconv reproduce` on a tiny config with synthetic data (2 models x 2 learning
//! rates x 3 epochs, one learning rate so large that it must diverge), interrupted like Ctrl-C in
//! the middle of a run and started again; then the report must hold every grid point with the
//! numbers of its metrics.csv. And `--emit-slurm`: the script passes `bash -n`, and running it by
//! hand for one index trains exactly that grid point.

#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{freeze_trainer_after_first_checkpoint, text};

const BIN: &str = env!("CARGO_BIN_EXE_allconv");

/// A learning rate that must diverge: with weight decay 0.001 every SGD step multiplies the
/// weights by about (1 - 1e10 * 0.001) = -1e7, so activations overflow f32 within a few steps.
const HUGE_LR: &str = "10000000000";

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    runs: PathBuf,
}

/// Synthetic CIFAR-10 layout (100 training, 40 test images) and a tiny experiment: scale
/// preprocessing, 20 validation images, batch 16, 3 epochs, no LR drop.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let data = root.join("data");
    allconv_cifar::write_synthetic_dir(&data, 20, 40, 11).unwrap();
    let runs = root.join("runs");
    let config = root.join("tiny.yaml");
    fs::write(
        &config,
        format!(
            "data:\n  dir: {data}\n  preprocessing: scale\n  validation: 20\n\
             schedule:\n  epochs: 3\n  milestones: []\n\
             training:\n  batch_size: 16\n  device: cpu\n  stuck_epochs: 0\n\
             grid:\n  models: [strided-cnn-a, model-a]\n  lrs: [0.01, {HUGE_LR}.0]\n  seeds: [0]\n\
             out:\n  runs: {runs}\n",
            data = data.display(),
            runs = runs.display()
        ),
    )
    .unwrap();
    Fixture {
        _tmp: tmp,
        root,
        config,
        runs,
    }
}

fn run_dir(runs: &Path, model: &str, lr: &str) -> PathBuf {
    runs.join(model).join(format!("lr-{lr}")).join("seed-0")
}

fn reproduce(f: &Fixture) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("reproduce")
        .arg("--config")
        .arg(&f.config)
        .arg("--jobs")
        .arg("1");
    command
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().modified().unwrap()
}

/// Data rows of a metrics.csv.
fn rows(run: &Path) -> Vec<String> {
    fs::read_to_string(run.join("metrics.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Final test and validation error (%) from the last row of a metrics.csv, as report.md prints
/// them: 100 * (1 - accuracy), two decimals.
fn final_errors(run: &Path) -> (String, String) {
    let last = rows(run).pop().expect("a finished epoch");
    let cells: Vec<&str> = last.split(',').collect();
    let error = |cell: &str| format!("{:.2}", 100.0 * (1.0 - cell.parse::<f64>().unwrap()));
    (error(cells[7]), error(cells[5]))
}

#[test]
fn reproduce_survives_an_interruption_and_reports_every_grid_point() {
    let f = fixture();
    let a_small = run_dir(&f.runs, "model-a", "0.01");
    interrupt_while_training(&f, &a_small);

    // What the first pass left: two finished strided-cnn-a runs (one diverged), one partial
    // model-a run, one not started.
    let s_small = run_dir(&f.runs, "strided-cnn-a", "0.01");
    let s_huge = run_dir(&f.runs, "strided-cnn-a", HUGE_LR);
    let a_huge = run_dir(&f.runs, "model-a", HUGE_LR);
    let before: Vec<(PathBuf, SystemTime, String)> = [&s_small, &s_huge]
        .iter()
        .map(|dir| {
            (
                dir.to_path_buf(),
                mtime(&dir.join("result.json")),
                fs::read_to_string(dir.join("metrics.csv")).unwrap(),
            )
        })
        .collect();
    // Epochs checkpointed before the interruption (rows after them are retrained on resume).
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a_small.join("checkpoint/state.json")).unwrap())
            .unwrap();
    let checkpointed = state["epoch"].as_u64().expect("state.json has the epoch") as usize;
    let partial_rows = rows(&a_small);
    assert_eq!(checkpointed, 1, "{state}");
    assert!(partial_rows.len() >= checkpointed);
    assert!(!a_huge.join("result.json").exists());

    // Second pass: finishes the grid without retraining anything that was done.
    let second = reproduce(&f).output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    for (dir, result_mtime, metrics) in &before {
        assert_eq!(
            mtime(&dir.join("result.json")),
            *result_mtime,
            "{} retrained",
            dir.display()
        );
        assert_eq!(
            fs::read_to_string(dir.join("metrics.csv")).unwrap(),
            *metrics
        );
    }
    let resumed_rows = rows(&a_small);
    assert_eq!(resumed_rows.len(), 3, "model-a lr 0.01 trains all 3 epochs");
    assert_eq!(
        resumed_rows[..checkpointed],
        partial_rows[..checkpointed],
        "epochs finished before the interruption are kept, not retrained"
    );

    // Statuses: the huge learning rate diverged for both models; lr 0.01 finished.
    for (dir, status) in [
        (&s_small, "done"),
        (&a_small, "done"),
        (&s_huge, "diverged"),
        (&a_huge, "diverged"),
    ] {
        let result: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
        assert_eq!(result["status"], status, "{}: {result}", dir.display());
        assert!(dir.join("train.log").exists(), "{}", dir.display());
    }

    // The report: its path printed last.
    let report_path = PathBuf::from(
        String::from_utf8_lossy(&second.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    assert_report_holds_every_grid_point(&f, &report_path, &s_small, &a_small);
}

/// The first pass of the grid, interrupted like Ctrl-C (SIGINT to the whole process group)
/// once the run `a_small` (the third grid point) has checkpointed its first epoch
/// (`checkpoint/state.json` is written last). That trainer is held there (SIGSTOP) until the
/// signal is sent, so the interruption lands mid-run however fast the machine is. Returns once
/// every process of the grid has ended.
fn interrupt_while_training(f: &Fixture, a_small: &Path) {
    let mut first = reproduce(f)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // The first two grid points train before it: the grid must still be running meanwhile.
    while !a_small.join("lock").exists() {
        if let Some(status) = first.try_wait().unwrap() {
            panic!(
                "reproduce ended ({status}) before model-a lr 0.01 started:\n{}",
                text(&first.wait_with_output().unwrap())
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no progress in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = freeze_trainer_after_first_checkpoint(a_small, Duration::from_secs(600));
    let killed = Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{}", first.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    // SIGINT is pending for the held trainer too (it is in the group): it handles it first.
    held.thaw();
    let group = first.id();
    let first_output = first.wait_with_output().unwrap();
    assert!(!first_output.status.success(), "{}", text(&first_output));
    // The trainer child dies with its parent; wait until the kernel has removed it (and
    // released its lock on the run folder) before starting again.
    while Command::new("kill")
        .args(["-0", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the trainer survived SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !a_small.join("result.json").exists(),
        "model-a lr 0.01 finished before the interruption; the test needs slower epochs"
    );
}

/// The report at `report_path` (the path the second pass printed): every grid point with the
/// numbers of its metrics.csv, lr 0.01 (`s_small`, `a_small`) chosen for both models.
fn assert_report_holds_every_grid_point(
    f: &Fixture,
    report_path: &Path,
    s_small: &Path,
    a_small: &Path,
) {
    assert_eq!(report_path, f.runs.join("report/report.md"));
    let md = fs::read_to_string(report_path).unwrap();
    assert!(md
        .lines()
        .find(|l| l.starts_with("## "))
        .unwrap()
        .contains("Table 3"));
    // Paper errors from Table 3: Strided-CNN-A 13.46, Model A 12.47; both have 839,242
    // parameters.
    for (model, name, paper, dir) in [
        ("Strided-CNN-A", "strided-cnn-a", "13.46", s_small),
        ("Model A", "model-a", "12.47", a_small),
    ] {
        let (test, val) = final_errors(dir);
        assert!(
            md.contains(&format!("| {model} | 0.01 | 0 | done | 3/3 | {test} |")),
            "{model}: final test error {test} missing from\n{md}"
        );
        // Only lr 0.01 finished, so both choices of LR pick it and give its final test error.
        // The synthetic data is not the official CIFAR-10: the row is marked.
        let table3 = md
            .lines()
            .find(|l| l.starts_with(&format!("| {model} † | 839,242 | {paper} | {test} |")))
            .unwrap_or_else(|| panic!("no Table 3 line for {model} with {test}:\n{md}"));
        assert!(table3.contains(&format!("| 0.01 | {test} |")), "{table3}");
        assert!(
            table3.ends_with("| 0.01 | 1 done, 1 diverged |"),
            "{table3}"
        );
        // The model x LR tables (test, then validation; LRs largest first): the huge lr
        // diverged, lr 0.01 chosen (bold).
        let grid_rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with(&format!("| {model} | diverged after ")))
            .collect();
        assert_eq!(grid_rows.len(), 2, "{md}");
        assert!(
            grid_rows[0].ends_with(&format!("| **{test}** |")),
            "{}",
            grid_rows[0]
        );
        assert!(
            grid_rows[1].ends_with(&format!("| **{val}** |")),
            "{}",
            grid_rows[1]
        );
        assert!(
            md.contains(&format!("| {model} | {HUGE_LR} | 0 | diverged after ")),
            "{model} lr {HUGE_LR} is not shown as diverged:\n{md}"
        );
        assert!(f.runs.join(format!("report/figures/{name}.svg")).exists());
    }
    let csv = fs::read_to_string(f.runs.join("report/report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    assert!(f.root.join("runs/grid.json").exists());
}

#[test]
fn the_slurm_script_trains_exactly_the_grid_point_of_its_index() {
    let f = fixture();
    let slurm = f.root.join("slurm");
    let out = f.root.join("slurm-runs");
    let emitted = Command::new(BIN)
        .arg("reproduce")
        .arg("--config")
        .arg(&f.config)
        .args([
            "--models",
            "strided-cnn-a",
            "--lrs",
            "0.05,0.01",
            "--device",
            "cpu",
        ])
        .arg("--runs")
        .arg(&out)
        .arg("--emit-slurm")
        .arg(&slurm)
        .output()
        .unwrap();
    assert!(emitted.status.success(), "{}", text(&emitted));
    let script = slurm.join("grid.sbatch");
    // 2 points: indices 0 and 1.
    assert!(fs::read_to_string(&script)
        .unwrap()
        .contains("#SBATCH --array=0-1\n"));
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", text(&syntax));
    // Emitting trains nothing: the runs root holds the grid file (for the report) and no run.
    let mut entries: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["grid.json", "reproduce.lock"],
        "emitting trains nothing"
    );
    let grid: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("grid.json")).unwrap()).unwrap();
    assert_eq!(grid["points"].as_array().map(Vec::len), Some(2));

    // The task of index 1 (strided-cnn-a, lr 0.01), run by hand as Slurm would run it.
    let task = Command::new("bash")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_JOB_ID", "42")
        .env("ALLCONV", BIN)
        .output()
        .unwrap();
    assert!(task.status.success(), "{}", text(&task));
    let trained = run_dir(&out, "strided-cnn-a", "0.01");
    let result: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(trained.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["model"], "strided-cnn-a");
    assert_eq!(result["lr"], 0.01);
    assert_eq!(result["seed"], 0);
    assert_eq!(result["epochs_run"], 3);
    assert!(
        !run_dir(&out, "strided-cnn-a", "0.05").exists(),
        "index 0 must not be trained"
    );
}

#[test]
fn slurm_flags_without_emit_slurm_are_refused_naming_them() {
    // They would only be saved into the runs' config and change nothing: refused before any run
    // starts, naming the flags as typed.
    let f = fixture();
    let out = reproduce(&f)
        .args([
            "--partition",
            "gpu",
            "--sbatch=--constraint=a100",
            "--max-stalled-requeues",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--partition, --max-stalled-requeues, --sbatch")
            && err.contains("--emit-slurm"),
        "{err}"
    );
    assert!(!f.runs.exists(), "no run may start");
}
