//! Two `allconv reproduce` on one runs folder: the second is refused at once, naming the
//! process that holds the folder, and writes nothing there.

mod common;

use std::process::Command;

#[test]
fn a_second_grid_on_one_runs_folder_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = common::tiny_grid(tmp.path(), 1);
    let reproduce = || {
        Command::new(env!("CARGO_BIN_EXE_allconv"))
            .args(["reproduce", "--jobs", "1", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };

    // This test holds the folder's grid lock as a running `allconv reproduce` does.
    let held = allconv_runs::RunsRoot::new(&runs).lock_grid().unwrap();
    let out = reproduce();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another `allconv reproduce` (pid {})",
            std::process::id()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing of the grid was written: no grid.json, no run folder, no report.
    let mut left: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["reproduce.lock"], "{stderr}");

    // Released, the same command runs the grid.
    drop(held);
    let out = reproduce();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(runs
        .join("strided-cnn-a/lr-0.01/seed-0/result.json")
        .exists());
}
