//! `allconv reproduce --emit-slurm DIR`: the grid file and a Slurm array script, one task per
//! grid point, instead of training.

use std::path::Path;

use allconv_runs::SlurmFolder;
use allconv_train::config::ExperimentConfig;
use allconv_train::GridFile;
use anyhow::Context;

/// Writes `grid.json` (the experiment embedded, one point per index) and `grid.sbatch` (a
/// Slurm array, one task per point, requeued with its checkpoint when the time limit nears).
pub(super) fn emit(
    dir: &Path,
    grid: &GridFile,
    experiment: &ExperimentConfig,
) -> anyhow::Result<()> {
    let logs = SlurmFolder::new(dir).logs_path();
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let folder = SlurmFolder::new(
        std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?,
    );
    let grid_path = folder.grid_path();
    grid.save(&grid_path)
        .with_context(|| format!("writing {}", grid_path.display()))?;
    let exe = std::env::current_exe().context("locating the allconv binary")?;
    let workdir = std::env::current_dir().context("reading the current folder")?;
    let script = slurm_script(&exe, &workdir, &folder, grid.points.len());
    let script_path = folder.script_path();
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
fn slurm_script(exe: &Path, workdir: &Path, folder: &SlurmFolder, points: usize) -> String {
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
        script = shell_quote(&folder.script_path()),
        last = points.saturating_sub(1),
        logs = folder.logs_path().display(),
        exe = exe.display(),
        grid = shell_quote(&folder.grid_path()),
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
            &SlurmFolder::new("/tmp/slurm"),
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
