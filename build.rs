//! Embeds the git revision the `allconv` binary is built from, and whether its sources had
//! uncommitted changes, as `ALLCONV_GIT_REVISION` (a hash, or "unknown" outside a git checkout
//! or without git) and `ALLCONV_GIT_DIRTY` ("true", "false" or "unknown"). Every run records
//! them (`config.yaml`, provenance), so a binary carried to another machine records the
//! revision it was built from, not that of the folder it runs in.
//!
//! Cargo reruns this script when HEAD, the branch it points to, the index, or a source file
//! that goes into the binary changes, and only then: it lives in the binary's package alone,
//! so a commit rebuilds the binary (and this package's tests), not the library crates.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `git -C <root> <args>`'s trimmed output, or `None` when git is absent or fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        // Never write the index (a refresh would change it, and rerun this script forever).
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The sources that go into the binary, relative to the package root: its own, and each
/// library crate's `src`, manifest and build script.
fn sources(root: &Path) -> Vec<String> {
    let mut paths: Vec<String> = ["src", "build.rs", "Cargo.toml", "Cargo.lock"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    if let Ok(entries) = std::fs::read_dir(root.join("crates")) {
        let mut crates: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        crates.sort();
        for name in crates {
            for part in ["src", "Cargo.toml", "build.rs"] {
                paths.push(format!("crates/{name}/{part}"));
            }
        }
    }
    paths
        .into_iter()
        .filter(|p| root.join(p).exists())
        .collect()
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=build.rs");
    // Only this package's own checkout counts: a copy unpacked inside some other repository
    // is "outside a git checkout" too.
    let own_checkout = git(&root, &["rev-parse", "--show-toplevel"])
        .and_then(|top| PathBuf::from(top).canonicalize().ok())
        .zip(root.canonicalize().ok())
        .is_some_and(|(top, root)| top == root);
    let revision = own_checkout
        .then(|| git(&root, &["rev-parse", "HEAD"]))
        .flatten();
    let (revision, dirty) = match revision {
        Some(revision) if !revision.is_empty() => {
            // What moves HEAD or the index: a checkout, a commit, `git add`. Each path is
            // where git keeps it (a worktree keeps HEAD apart from the shared refs).
            let mut watched = vec!["HEAD".to_string(), "index".to_string()];
            watched.push("packed-refs".to_string());
            if let Some(branch) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
                watched.push(branch);
            }
            for name in watched {
                if let Some(path) = git(&root, &["rev-parse", "--git-path", &name]) {
                    let path = root.join(path);
                    // A path that does not exist would make cargo rerun this on every build.
                    if path.exists() {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                }
            }
            let sources = sources(&root);
            for source in &sources {
                println!("cargo:rerun-if-changed={source}");
            }
            let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
            status.extend(sources.iter().map(String::as_str));
            let dirty = match git(&root, &status) {
                Some(changes) => (!changes.is_empty()).to_string(),
                None => "unknown".to_string(),
            };
            (revision, dirty)
        }
        _ => ("unknown".to_string(), "unknown".to_string()),
    };
    println!("cargo:rustc-env=ALLCONV_GIT_REVISION={revision}");
    println!("cargo:rustc-env=ALLCONV_GIT_DIRTY={dirty}");
}
