//! `cargo xtask`: builds the `allconv` binary in release mode and runs it (matklad's xtask
//! pattern). Links only std and anyhow, so it compiles in seconds; everything heavy lives in
//! the `allconv` binary, which can also be carried to a GPU machine without cargo.
//!
//! - `cargo xtask reproduce [--cuda] [allconv reproduce flags...]`: `cargo build --release -p
//!   allconv [--features cuda]`, then `target/release/allconv reproduce <flags>`.
//! - `cargo xtask report [allconv report flags...]`: the same build, then `allconv report`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage:
  cargo xtask reproduce [--cuda] [--config FILE | --preset NAME] [--jobs N | --gpus 0,1,..
                        [--jobs-per-gpu K]] [--models A,B] [--lrs X,Y] [--seeds S,T] [--runs DIR]
                        [--device cpu|cuda|cuda:N] [--data-dir DIR] [--precision fp32|tf32]
                        [--emit-slurm DIR]
      (NAME: quick, paper, paper-val, paper-aug, paper-cifar100, gpu-smoke; `allconv reproduce
      --help` lists every flag)
  cargo xtask report [--runs DIR] [--out DIR]

Builds target/release/allconv (with --features cuda when --cuda is given) and runs
`allconv reproduce` / `allconv report` with the other flags unchanged.";

/// The workspace root: xtask's manifest folder is `<root>/xtask`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the workspace root")
        .to_path_buf()
}

/// What `cargo xtask` was asked to do.
#[derive(Debug, PartialEq)]
struct Plan {
    /// `cargo build` arguments.
    build: Vec<String>,
    /// Arguments of the `allconv` binary.
    run: Vec<String>,
}

/// Splits the command line into the build and the `allconv` invocation. `--cuda` is xtask's own
/// flag (a build feature); with it, `reproduce` also gets `--device cuda` unless a device is given.
fn plan(args: &[String]) -> Result<Plan> {
    let Some((command, rest)) = args.split_first() else {
        bail!("no command given\n{USAGE}");
    };
    if !matches!(command.as_str(), "reproduce" | "report") {
        if matches!(command.as_str(), "-h" | "--help" | "help") {
            bail!("{USAGE}");
        }
        bail!("unknown command `{command}`, expected `reproduce` or `report`\n{USAGE}");
    }
    let cuda = rest.iter().any(|a| a == "--cuda");
    let mut run = vec![command.clone()];
    run.extend(rest.iter().filter(|a| *a != "--cuda").cloned());
    let device_given = rest
        .iter()
        .any(|a| a == "--device" || a.starts_with("--device="));
    if cuda && command == "reproduce" && !device_given {
        run.extend(["--device".to_string(), "cuda".to_string()]);
    }
    let mut build: Vec<String> = ["build", "--release", "-p", "allconv"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if cuda {
        build.extend(["--features".to_string(), "cuda".to_string()]);
    }
    Ok(Plan { build, run })
}

/// Where the CUDA toolkit's `nvcc` is: on `PATH`, else in `$CUDA_HOME/bin`, `$CUDA_PATH/bin`
/// (the variables cudarc's build script reads) or `/usr/local/cuda/bin`.
fn find_nvcc(
    path: Option<&std::ffi::OsStr>,
    cuda_home: Option<&std::ffi::OsStr>,
    cuda_path: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    let on_path = path.into_iter().flat_map(std::env::split_paths);
    let roots = [cuda_home, cuda_path]
        .into_iter()
        .flatten()
        .map(|root| Path::new(root).join("bin"))
        .chain(std::iter::once(PathBuf::from("/usr/local/cuda/bin")));
    on_path
        .chain(roots)
        .map(|dir| dir.join("nvcc"))
        .find(|nvcc| nvcc.is_file())
}

/// A `--cuda` build fails deep inside cudarc's build script (a page of output) without the CUDA
/// toolkit; say first, in one message, what is missing and how to provide it.
fn check_cuda_toolkit() -> Result<()> {
    let var = std::env::var_os;
    if find_nvcc(
        var("PATH").as_deref(),
        var("CUDA_HOME").as_deref(),
        var("CUDA_PATH").as_deref(),
    )
    .is_some()
    {
        return Ok(());
    }
    bail!(
        "--cuda builds with the CUDA toolkit, and its compiler `nvcc` was found neither on PATH \
         nor in $CUDA_HOME/bin, $CUDA_PATH/bin or /usr/local/cuda/bin. Install NVIDIA's CUDA \
         toolkit (12.x or 13.x, with cuDNN 9) and put its bin folder on PATH, or set CUDA_HOME \
         to the toolkit's folder; on a machine without a GPU, see docs/gpu.md (\"Checking the \
         CUDA path on a GPU machine\") for building the CUDA binary from pip wheels. Without \
         --cuda, xtask builds the CPU binary."
    )
}

fn main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = plan(&args)?;
    if plan.build.iter().any(|a| a == "cuda") {
        check_cuda_toolkit()?;
    }
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    eprintln!("xtask: {cargo} {}", plan.build.join(" "));
    let status = Command::new(&cargo)
        .args(&plan.build)
        .current_dir(&root)
        .status()
        .with_context(|| format!("cannot run `{cargo}`"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", plan.build.join(" "));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target_dir.join("release").join("allconv");
    eprintln!("xtask: {} {}", binary.display(), plan.run.join(" "));
    let status = Command::new(&binary)
        .args(&plan.run)
        .status()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Killed by a signal (Ctrl-C): not a success.
        None => ExitCode::from(130),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cuda_becomes_a_build_feature_and_the_device() {
        let p = plan(&strings(&[
            "reproduce",
            "--cuda",
            "--jobs",
            "4",
            "--preset",
            "paper",
        ]))
        .unwrap();
        assert_eq!(
            p.build,
            strings(&["build", "--release", "-p", "allconv", "--features", "cuda"])
        );
        assert_eq!(
            p.run,
            strings(&[
                "reproduce",
                "--jobs",
                "4",
                "--preset",
                "paper",
                "--device",
                "cuda"
            ])
        );
    }

    #[test]
    fn other_flags_pass_unchanged() {
        let p = plan(&strings(&[
            "reproduce",
            "--preset",
            "quick",
            "--device",
            "cpu",
        ]))
        .unwrap();
        assert_eq!(p.build, strings(&["build", "--release", "-p", "allconv"]));
        assert_eq!(
            p.run,
            strings(&["reproduce", "--preset", "quick", "--device", "cpu"])
        );
        let p = plan(&strings(&["report", "--runs", "runs/"])).unwrap();
        assert_eq!(p.run, strings(&["report", "--runs", "runs/"]));
    }

    #[test]
    fn nvcc_is_found_on_path_or_under_the_toolkit_variables() {
        let tmp = std::env::temp_dir().join(format!("xtask-nvcc-{}", std::process::id()));
        let (bin, home) = (tmp.join("bin-dir"), tmp.join("toolkit"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(home.join("bin")).unwrap();
        let empty = tmp.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let os = |p: &Path| p.as_os_str().to_owned();
        // Nothing anywhere (unless this machine has /usr/local/cuda, which would then be found).
        let system = Path::new("/usr/local/cuda/bin/nvcc").is_file();
        assert_eq!(find_nvcc(Some(&os(&empty)), None, None).is_some(), system);
        // On PATH.
        std::fs::write(bin.join("nvcc"), "").unwrap();
        let path = std::env::join_paths([&empty, &bin]).unwrap();
        assert_eq!(find_nvcc(Some(&path), None, None), Some(bin.join("nvcc")));
        // Under CUDA_HOME or CUDA_PATH, with nothing on PATH.
        std::fs::write(home.join("bin").join("nvcc"), "").unwrap();
        let want = Some(home.join("bin").join("nvcc"));
        assert_eq!(find_nvcc(Some(&os(&empty)), Some(&os(&home)), None), want);
        assert_eq!(find_nvcc(None, None, Some(&os(&home))), want);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn unknown_commands_are_refused_with_the_usage() {
        let message = plan(&strings(&["train"])).unwrap_err().to_string();
        assert!(message.contains("unknown command `train`"), "{message}");
        assert!(message.contains("cargo xtask reproduce"), "{message}");
        assert!(plan(&[]).is_err());
    }
}
