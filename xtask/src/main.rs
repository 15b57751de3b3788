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
  cargo xtask reproduce [--cuda] [--config FILE | --preset quick|paper|paper-val|gpu-smoke] [--jobs N]
                        [--models A,B] [--lrs X,Y] [--seeds S,T] [--out DIR] [--device cpu|cuda]
                        [--data-dir DIR] [--tf32] [--emit-slurm DIR]
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

fn main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = plan(&args)?;
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
    fn unknown_commands_are_refused_with_the_usage() {
        let message = plan(&strings(&["train"])).unwrap_err().to_string();
        assert!(message.contains("unknown command `train`"), "{message}");
        assert!(message.contains("cargo xtask reproduce"), "{message}");
        assert!(plan(&[]).is_err());
    }
}
