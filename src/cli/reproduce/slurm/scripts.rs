//! The text of the emitted scripts: the array job, the report job and `submit.sh`, with every
//! path quoted for bash (and double-quoted in `#SBATCH` lines, which sbatch reads with its own
//! quoting).

use std::path::Path;

use allconv_runs::{RunsRoot, SlurmFolder};
use allconv_train::config::SlurmConfig;

/// Everything the scripts name: where the binary, the working folder and the files are.
pub(super) struct Paths<'a> {
    pub(super) exe: &'a Path,
    pub(super) workdir: &'a Path,
    pub(super) folder: &'a SlurmFolder,
    pub(super) runs: &'a Path,
}

/// Quotes a path for bash (single quotes; a single quote inside is closed, escaped, reopened).
pub(super) fn shell_quote(path: &Path) -> String {
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

/// The `#SBATCH` lines of each array task's resources: the shared ones, its time limit, and
/// GPUs (one by default on a cuda grid, none on a cpu grid), CPUs and memory where set.
fn task_resources(slurm: &SlurmConfig, cuda: bool) -> String {
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
    resources
}

/// The `sbatch --array` script: task `I` runs `allconv train --grid grid.json --index I`.
/// Slurm sends USR1 to the batch shell `signal_lead` seconds before the time limit; the trap
/// passes SIGTERM to the trainer, which writes a checkpoint at its current step and ends, and
/// requeues the task, which resumes from that step. SIGTERM itself (pre-emption, scancel,
/// `scontrol requeue`) is passed on the same way; Slurm then requeues or ends the task itself.
pub(super) fn array_script(
    paths: &Paths<'_>,
    slurm: &SlurmConfig,
    cuda: bool,
    points: usize,
) -> String {
    let resources = task_resources(slurm, cuda);
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
pub(super) fn report_script(paths: &Paths<'_>, slurm: &SlurmConfig) -> String {
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
pub(super) fn submit_script(paths: &Paths<'_>) -> String {
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
