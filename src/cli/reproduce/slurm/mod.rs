//! `allconv reproduce --emit-slurm DIR`: the grid file, a Slurm array script (one task per grid
//! point), a report job and `submit.sh`, instead of training.
//!
//! The resources come from the experiment's `slurm:` section, overridden by the flags
//! ([`SlurmFlags`]); only what is set or needed is requested (no GPU for a `cpu` grid), so the
//! script runs as emitted. Every path is quoted for bash (and double-quoted in `#SBATCH` lines,
//! which sbatch reads with its own quoting).

mod flags;
mod scripts;

use allconv_runs::{errln, outln};
use std::path::Path;

use allconv_runs::{RunsRoot, SlurmFolder};
use allconv_train::config::ExperimentConfig;
use allconv_train::GridFile;
use anyhow::{bail, Context};

pub use flags::SlurmFlags;
use scripts::{array_script, report_script, shell_quote, submit_script, Paths};

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

#[cfg(test)]
mod tests;
