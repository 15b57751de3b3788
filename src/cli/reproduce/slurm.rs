//! `allconv reproduce --emit-slurm DIR`: the grid file, a Slurm array script (one task per grid
//! point), a report job and `submit.sh`, instead of training.
//!
//! The resources come from the experiment's `slurm:` section, overridden by the flags
//! ([`SlurmFlags`]); only what is set or needed is requested (no GPU for a `cpu` grid), so the
//! script runs as emitted. Every path is quoted for bash (and double-quoted in `#SBATCH` lines,
//! which sbatch reads with its own quoting).

use allconv_runs::{errln, outln};
use std::path::Path;

use allconv_runs::{RunsRoot, SlurmFolder};
use allconv_train::config::{ExperimentConfig, SlurmConfig};
use allconv_train::{GridFile, Setting};
use anyhow::{bail, Context};

/// Resource flags of `allconv reproduce --emit-slurm` (each overrides its `slurm.*` key).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SlurmFlags {
    /// slurm.partition: `#SBATCH --partition`.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub partition: Option<String>,
    /// slurm.account: `#SBATCH --account`.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub account: Option<String>,
    /// slurm.qos: `#SBATCH --qos`.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub qos: Option<String>,
    /// slurm.time: time limit of each task (e.g. 24:00:00).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub time: Option<String>,
    /// slurm.gpus_per_task: GPUs per task (`--gres=gpu:N`; a cuda grid's default is 1).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub gpus_per_task: Option<u32>,
    /// slurm.cpus_per_task: CPUs per task, also the trainer's thread count.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub cpus_per_task: Option<u32>,
    /// slurm.mem: memory per task (e.g. 16G).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub mem: Option<String>,
    /// slurm.array_parallelism: at most N tasks at once (`--array=...%N`).
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub array_parallelism: Option<u32>,
    /// slurm.max_stalled_requeues: a task fails after N stops in a row without progress.
    #[arg(long, help_heading = "Slurm (with --emit-slurm)")]
    pub max_stalled_requeues: Option<usize>,
    /// slurm.extra: one more `#SBATCH` option, e.g. `--sbatch=--constraint=a100` (repeatable).
    #[arg(
        long = "sbatch",
        value_name = "OPTION",
        help_heading = "Slurm (with --emit-slurm)"
    )]
    pub extra: Vec<String>,
    /// The allconv the tasks run (default: this one); a cuda grid needs one built with CUDA,
    /// which its `--version` says.
    #[arg(long, value_name = "PATH", help_heading = "Slurm (with --emit-slurm)")]
    pub slurm_binary: Option<std::path::PathBuf>,
}

impl SlurmFlags {
    /// The flags given, as spelled on the command line: they only shape the emitted Slurm jobs.
    pub fn given(&self) -> Vec<String> {
        let mut flags: Vec<String> = self
            .settings()
            .iter()
            .map(|s| match s.key.trim_start_matches("slurm.") {
                "extra" => "--sbatch".to_string(),
                key => format!("--{}", key.replace('_', "-")),
            })
            .collect();
        if self.slurm_binary.is_some() {
            flags.push("--slurm-binary".to_string());
        }
        flags
    }

    /// The overrides these flags make.
    pub fn settings(&self) -> Vec<Setting> {
        let mut settings = Vec::new();
        let text = [
            ("slurm.partition", &self.partition),
            ("slurm.account", &self.account),
            ("slurm.qos", &self.qos),
            ("slurm.time", &self.time),
            ("slurm.mem", &self.mem),
        ];
        for (key, value) in text {
            if let Some(v) = value {
                settings.push(Setting::from_flag(&flag_of(key), key, v.clone()));
            }
        }
        let counts = [
            ("slurm.gpus_per_task", self.gpus_per_task),
            ("slurm.cpus_per_task", self.cpus_per_task),
            ("slurm.array_parallelism", self.array_parallelism),
        ];
        for (key, value) in counts {
            if let Some(v) = value {
                settings.push(Setting::from_flag(&flag_of(key), key, v));
            }
        }
        if let Some(v) = self.max_stalled_requeues {
            settings.push(Setting::from_flag(
                "--max-stalled-requeues",
                "slurm.max_stalled_requeues",
                v,
            ));
        }
        if !self.extra.is_empty() {
            settings.push(Setting::from_flag(
                "--sbatch",
                "slurm.extra",
                self.extra.clone(),
            ));
        }
        settings
    }
}

/// The flag of a `slurm.` key: `slurm.cpus_per_task` is `--cpus-per-task`.
fn flag_of(key: &str) -> String {
    format!("--{}", key.trim_start_matches("slurm.").replace('_', "-"))
}

/// Everything the scripts name: where the binary, the working folder and the files are.
struct Paths<'a> {
    exe: &'a Path,
    workdir: &'a Path,
    folder: &'a SlurmFolder,
    runs: &'a Path,
}

/// Writes `grid.json` into the Slurm folder and into the runs root (the report reads it from
/// there to show every planned point), `grid.sbatch`, `report.sbatch` and `submit.sh`.
pub(super) fn emit(
    dir: &Path,
    grid: &GridFile,
    experiment: &ExperimentConfig,
    binary: Option<&Path>,
) -> anyhow::Result<()> {
    let cuda = experiment.training.device.is_cuda();
    let exe = match binary {
        Some(path) => std::path::absolute(path)
            .with_context(|| format!("resolving --slurm-binary {}", path.display()))?,
        None => std::env::current_exe().context("locating the allconv binary")?,
    };
    if cuda && !has_cuda(&exe, binary.is_none())? {
        bail!(
            "the grid trains on cuda (training.device), but the allconv its tasks would run ({}) \
             was built without CUDA, so every task would fail on the cluster: build one with \
             `cargo build --release --features cuda` and emit with it (or name it with \
             --slurm-binary), or emit a cpu grid with --device cpu",
            exe.display()
        );
    }
    let logs = SlurmFolder::new(dir).logs_path();
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let folder = SlurmFolder::new(
        std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?,
    );
    let grid_path = folder.grid_path();
    grid.save(&grid_path)
        .with_context(|| format!("writing {}", grid_path.display()))?;

    let runs_dir = std::path::absolute(&experiment.out.runs)
        .with_context(|| format!("resolving {}", experiment.out.runs.display()))?;
    std::fs::create_dir_all(&runs_dir)
        .with_context(|| format!("creating {}", runs_dir.display()))?;
    let runs = RunsRoot::new(&runs_dir);
    {
        // Not while a local `allconv reproduce` runs this root's grid from its grid.json.
        let _grid_lock = runs.lock_grid()?;
        grid.save(&runs.grid_path())
            .with_context(|| format!("writing {}", runs.grid_path().display()))?;
    }

    let workdir = std::env::current_dir().context("reading the current folder")?;
    let paths = Paths {
        exe: &exe,
        workdir: &workdir,
        folder: &folder,
        runs: &runs_dir,
    };
    let scripts = [
        (
            folder.script_path(),
            array_script(&paths, &experiment.slurm, cuda, grid.points.len()),
        ),
        (
            folder.report_script_path(),
            report_script(&paths, &experiment.slurm),
        ),
        (folder.submit_path(), submit_script(&paths)),
    ];
    for (path, text) in scripts {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        make_executable(&path)?;
    }
    errln!(
        "{} grid points ({} epochs on {}); the data must be in {} on the cluster (`allconv data \
         fetch`).",
        grid.points.len(),
        experiment.schedule.epochs,
        experiment.training.device,
        experiment.data.resolved_dir().display()
    );
    errln!(
        "submit with: {} (the array, then the report into {})",
        shell_quote(&folder.submit_path()),
        runs.report_dir().display()
    );
    outln!("{}", folder.submit_path().display());
    Ok(())
}

/// Whether `exe` has CUDA: this build's own feature, or what another build's `--version` says
/// (see `VERSION` in main.rs).
fn has_cuda(exe: &Path, is_this_binary: bool) -> anyhow::Result<bool> {
    if is_this_binary {
        return Ok(cfg!(feature = "cuda"));
    }
    let output = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version (--slurm-binary)", exe.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !version.starts_with("allconv ") {
        bail!(
            "--slurm-binary {}: not an allconv binary (`--version` printed {:?})",
            exe.display(),
            version.trim()
        );
    }
    Ok(version.contains("(cuda)"))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Quotes a path for bash (single quotes; a single quote inside is closed, escaped, reopened).
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Quotes a path for an `#SBATCH` line: sbatch splits those at blanks outside double quotes and
/// has no escape for a double quote inside, so such a path is written as is (and sbatch names
/// it when it refuses it).
fn sbatch_quote(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// The `#SBATCH` lines every job of the folder shares: partition, account, qos, extras.
fn shared_lines(slurm: &SlurmConfig) -> String {
    let mut lines = String::new();
    for (option, value) in [
        ("partition", &slurm.partition),
        ("account", &slurm.account),
        ("qos", &slurm.qos),
    ] {
        if let Some(v) = value {
            lines.push_str(&format!("#SBATCH --{option}={v}\n"));
        }
    }
    lines
}

/// The `sbatch --array` script: task `I` runs `allconv train --grid grid.json --index I`.
/// Slurm sends USR1 to the batch shell `signal_lead` seconds before the time limit; the trap
/// passes SIGTERM to the trainer, which writes a checkpoint at its current step and ends, and
/// requeues the task, which resumes from that step. SIGTERM itself (pre-emption, scancel,
/// `scontrol requeue`) is passed on the same way; Slurm then requeues or ends the task itself.
fn array_script(paths: &Paths<'_>, slurm: &SlurmConfig, cuda: bool, points: usize) -> String {
    let mut resources = shared_lines(slurm);
    resources.push_str(&format!("#SBATCH --time={}\n", slurm.time));
    if cuda {
        let gpus = slurm.gpus_per_task.unwrap_or(1);
        resources.push_str(&format!("#SBATCH --gres=gpu:{gpus}\n"));
    }
    if let Some(cpus) = slurm.cpus_per_task {
        resources.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    }
    if let Some(mem) = &slurm.mem {
        resources.push_str(&format!("#SBATCH --mem={mem}\n"));
    }
    let throttle = slurm
        .array_parallelism
        .map(|n| format!("%{n}"))
        .unwrap_or_default();
    let mut extra = String::new();
    for line in &slurm.extra {
        extra.push_str(&format!("#SBATCH {line}\n"));
    }
    format!(
        r#"#!/usr/bin/env bash
# One allconv grid point per array task; written by `allconv reproduce --emit-slurm`.
# The resources below come from the experiment's `slurm:` section and the reproduce flags;
# submit the array and its report job with: {submit}
#SBATCH --job-name=allconv
#SBATCH --array=0-{last}{throttle}
{resources}#SBATCH --signal=B:USR1@{lead}
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={output}
{extra}set -euo pipefail

if [ -z "${{ALLCONV:-}}" ]; then ALLCONV={exe}; fi
GRID={grid}
cd {workdir}
task="${{SLURM_ARRAY_TASK_ID:?submit this script with sbatch}}"
# Bit-identical resumes need the same thread count in every process of a run.
export RAYON_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-1}}"
echo "allconv: task $task of job ${{SLURM_ARRAY_JOB_ID:-?}} on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}} (a requeue fails after {stalled} stops in a row without progress), $RAYON_NUM_THREADS threads" >&2

child=""
stop_trainer() {{
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; fi
}}
on_usr1() {{
  echo "allconv: USR1: the time limit is {lead} s away: task $task writes a checkpoint at its current step and is requeued" >&2
  stop_trainer
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{task}}"
  exit 0
}}
on_term() {{
  echo "allconv: SIGTERM (pre-empted, requeued or cancelled): task $task writes a checkpoint at its current step and ends" >&2
  stop_trainer
  exit 143
}}
trap on_usr1 USR1
trap on_term TERM

# In the background so that a trap runs as soon as its signal arrives; a requeued task resumes
# the run from its checkpoint, and a finished run is skipped.
"$ALLCONV" train --lines --grid "$GRID" --index "$task" &
child=$!
wait "$child"
"#,
        submit = shell_quote(&paths.folder.submit_path()),
        last = points.saturating_sub(1),
        lead = slurm.signal_lead,
        output = sbatch_quote(&paths.folder.logs_path().join("%A_%a.out")),
        exe = shell_quote(paths.exe),
        grid = shell_quote(&paths.folder.grid_path()),
        workdir = shell_quote(paths.workdir),
        stalled = slurm.max_stalled_requeues,
    )
}

/// The report job: `allconv report --runs <runs>` once the array has ended (in any state).
fn report_script(paths: &Paths<'_>, slurm: &SlurmConfig) -> String {
    format!(
        r#"#!/usr/bin/env bash
# The report of the allconv array job, submitted by submit.sh to start when the array has ended.
#SBATCH --job-name=allconv-report
{shared}#SBATCH --time=00:30:00
#SBATCH --output={output}
set -euo pipefail

if [ -z "${{ALLCONV:-}}" ]; then ALLCONV={exe}; fi
cd {workdir}
"$ALLCONV" report --runs {runs}
"#,
        shared = shared_lines(slurm),
        output = sbatch_quote(&paths.folder.logs_path().join("report-%j.out")),
        exe = shell_quote(paths.exe),
        workdir = shell_quote(paths.workdir),
        runs = shell_quote(paths.runs),
    )
}

/// `submit.sh`: the array (`--parsable` gives its id), then the report job after it.
fn submit_script(paths: &Paths<'_>) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Submits the allconv array job and, after it, the report job; prints both job ids.
set -euo pipefail
cd {workdir}
array=$(sbatch --parsable "$@" {array})
array=${{array%%;*}}
report=$(sbatch --parsable --dependency=afterany:"$array" {report})
report=${{report%%;*}}
echo "array job: $array"
echo "report job: $report (after the array; writes the report into {report_dir})"
"#,
        workdir = shell_quote(paths.workdir),
        array = shell_quote(&paths.folder.script_path()),
        report = shell_quote(&paths.folder.report_script_path()),
        report_dir = RunsRoot::new(paths.runs).report_dir().display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_in<'a>(folder: &'a SlurmFolder, workdir: &'a Path) -> Paths<'a> {
        Paths {
            exe: Path::new("/opt/all conv/allconv"),
            workdir,
            folder,
            runs: Path::new("/home/o'brien/runs dir"),
        }
    }

    #[test]
    fn a_cpu_script_requests_no_gpu_and_only_what_is_set() {
        let folder = SlurmFolder::new("/tmp/slurm dir");
        let workdir = Path::new("/home/o'brien/allconv");
        let script = array_script(
            &paths_in(&folder, workdir),
            &SlurmConfig::default(),
            false,
            48,
        );
        // 48 points: indices 0..=47.
        assert!(script.contains("#SBATCH --array=0-47\n"), "{script}");
        assert!(script.contains("#SBATCH --time=24:00:00\n"), "{script}");
        assert!(script.contains("#SBATCH --requeue\n"), "{script}");
        assert!(script.contains("#SBATCH --signal=B:USR1@120\n"), "{script}");
        for absent in [
            "gres",
            "gpus",
            "cpus-per-task",
            "partition",
            "account",
            "qos",
            "mem",
        ] {
            let option = format!("--{absent}");
            assert!(
                !script.contains(&option),
                "`{option}` in a default cpu script:\n{script}"
            );
        }
        assert!(
            script.contains("#SBATCH --output=\"/tmp/slurm dir/logs/%A_%a.out\"\n"),
            "{script}"
        );
        assert!(
            script.contains(r"cd '/home/o'\''brien/allconv'"),
            "{script}"
        );
        assert!(
            script.contains("if [ -z \"${ALLCONV:-}\" ]; then ALLCONV='/opt/all conv/allconv'; fi"),
            "{script}"
        );
        assert!(
            script.contains(r#"export RAYON_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}""#),
            "{script}"
        );
        assert!(
            script.contains(r#""$ALLCONV" train --lines --grid "$GRID" --index "$task" &"#),
            "{script}"
        );
        assert!(
            script.contains("trap on_usr1 USR1\ntrap on_term TERM\n"),
            "{script}"
        );
    }

    #[test]
    fn resources_from_the_slurm_section_are_all_emitted() {
        let folder = SlurmFolder::new("/tmp/slurm");
        let slurm = SlurmConfig {
            partition: Some("gpu".into()),
            account: Some("proj42".into()),
            qos: Some("normal".into()),
            time: "2-00:00:00".into(),
            gpus_per_task: Some(2),
            cpus_per_task: Some(6),
            mem: Some("16G".into()),
            array_parallelism: Some(4),
            signal_lead: 300,
            max_stalled_requeues: 5,
            extra: vec!["--constraint=a100".into()],
        };
        let script = array_script(&paths_in(&folder, Path::new("/w")), &slurm, true, 3);
        for line in [
            "#SBATCH --array=0-2%4\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --account=proj42\n",
            "#SBATCH --qos=normal\n",
            "#SBATCH --time=2-00:00:00\n",
            "#SBATCH --gres=gpu:2\n",
            "#SBATCH --cpus-per-task=6\n",
            "#SBATCH --mem=16G\n",
            "#SBATCH --signal=B:USR1@300\n",
            "#SBATCH --constraint=a100\n",
            "after 5 stops in a row",
        ] {
            assert!(script.contains(line), "no {line:?} in\n{script}");
        }
        // sbatch stops reading options at the first command: every #SBATCH line comes first.
        let first_command = script.find("set -euo").unwrap();
        assert!(script.rfind("#SBATCH").unwrap() < first_command, "{script}");
        // A cuda grid without gpus_per_task asks for one GPU.
        let one = array_script(
            &paths_in(&folder, Path::new("/w")),
            &SlurmConfig::default(),
            true,
            3,
        );
        assert!(one.contains("#SBATCH --gres=gpu:1\n"), "{one}");
    }

    #[test]
    fn submit_chains_the_report_after_the_array_with_quoted_paths() {
        let folder = SlurmFolder::new("/tmp/slurm dir");
        let paths = paths_in(&folder, Path::new("/w"));
        let submit = submit_script(&paths);
        assert!(
            submit.contains("array=$(sbatch --parsable \"$@\" '/tmp/slurm dir/grid.sbatch')"),
            "{submit}"
        );
        assert!(
            submit.contains(
                "sbatch --parsable --dependency=afterany:\"$array\" '/tmp/slurm dir/report.sbatch'"
            ),
            "{submit}"
        );
        let report = report_script(&paths, &SlurmConfig::default());
        assert!(
            report.contains(r#""$ALLCONV" report --runs '/home/o'\''brien/runs dir'"#),
            "{report}"
        );
        assert!(
            report.contains("#SBATCH --output=\"/tmp/slurm dir/logs/report-%j.out\""),
            "{report}"
        );
    }
}
