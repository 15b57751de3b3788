//! The spellings of the previous release still work for this one (README.md, "Renamed
//! flags"): each does what its replacement does and prints one line on standard error saying
//! what to write instead; given beside its replacement it is refused.

mod common;

use std::path::Path;
use std::process::Output;

use common::{allconv, text, tiny_grid};

/// The warning `allconv` prints for `old` on `command`.
fn warning(command: &str, old: &str, new: &str) -> String {
    format!(
        "warning: `allconv {command} {old}` is deprecated and goes away in the next release; \
         write `{new}`"
    )
}

/// Asserts success and that the lines of stderr mentioning a deprecation are exactly `expected`.
fn assert_warned(out: &Output, expected: &[String]) {
    assert!(out.status.success(), "{}", text(out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("deprecated"))
        .collect();
    assert_eq!(lines, expected, "{}", text(out));
}

#[test]
fn a_slurm_task_of_the_previous_release_trains_into_the_runs_root_given_with_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_grid(tmp.path(), 1);
    let slurm = tmp.path().join("slurm");
    // The grid file as `reproduce --emit-slurm` writes it, and its task started the old way.
    let emitted = allconv()
        .args(["reproduce", "--config"])
        .arg(&config)
        .arg("--emit-slurm")
        .arg(&slurm)
        .output()
        .unwrap();
    assert!(emitted.status.success(), "{}", text(&emitted));
    let runs = tmp.path().join("elsewhere");
    let out = allconv()
        .args(["train", "--quiet", "--grid"])
        .arg(slurm.join("grid.json"))
        .args(["--index", "0", "--out"])
        .arg(&runs)
        .output()
        .unwrap();
    assert_warned(&out, &[warning("train", "--out DIR", "--runs DIR")]);
    assert!(runs
        .join("strided-cnn-a/lr-0.01/seed-0/result.json")
        .is_file());
}

#[test]
fn the_old_configuration_flags_set_what_the_new_ones_set() {
    let tmp = tempfile::tempdir().unwrap();
    let old = allconv()
        .args(["config", "--tf32", "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert_warned(
        &old,
        &[
            warning("config", "--out DIR", "--runs DIR"),
            warning("config", "--tf32", "--precision tf32"),
        ],
    );
    let new = allconv()
        .args(["config", "--precision", "tf32", "--runs"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert_warned(&new, &[]);
    assert_eq!(old.stdout, new.stdout);
    let yaml = String::from_utf8(new.stdout).unwrap();
    assert!(yaml.contains("  tf32: true\n"), "{yaml}");
    assert!(
        yaml.contains(&format!("  runs: {}\n", tmp.path().join("r").display())),
        "{yaml}"
    );
}

#[test]
fn the_old_data_folder_flags_read_and_write_the_same_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    allconv_cifar::write_synthetic_dir(&data, 4, 4, 2).unwrap();
    let stats = allconv()
        .args(["data", "stats", "--dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_warned(
        &stats,
        &[warning("data stats", "--dir DIR", "--data-dir DIR")],
    );
    assert!(String::from_utf8_lossy(&stats.stdout).contains("images: 20 training, 4 test"));

    let small = tmp.path().join("small");
    let subset = allconv()
        .args(["data", "subset", "--per-file", "2", "--test", "2", "--dir"])
        .arg(&data)
        .arg("--to")
        .arg(&small)
        .output()
        .unwrap();
    assert_warned(
        &subset,
        &[
            warning("data subset", "--dir DIR", "--data-dir DIR"),
            warning("data subset", "--to DIR", "--out DIR"),
        ],
    );
    assert_eq!(
        std::fs::metadata(small.join("data_batch_1.bin"))
            .unwrap()
            .len(),
        2 * 3073
    );

    // The old and the new spelling together: refused, the two named.
    let both = allconv()
        .args(["data", "stats", "--dir"])
        .arg(&data)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{}", text(&both));
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(
        stderr.contains("--dir") && stderr.contains("--data-dir"),
        "{stderr}"
    );
}

#[test]
fn bench_batch_and_the_model_names_as_arguments_still_work() {
    let bench = allconv()
        .args([
            "bench",
            "--models",
            "strided-cnn-a",
            "--batch",
            "2",
            "--iters",
            "1",
        ])
        .output()
        .unwrap();
    assert_warned(&bench, &[warning("bench", "--batch N", "--batch-size N")]);
    assert!(String::from_utf8_lossy(&bench.stdout).contains(", batch 2,"));

    let models = allconv()
        .args(["models", "--summary", "all-cnn-c", "model-a"])
        .output()
        .unwrap();
    assert_warned(
        &models,
        &[warning("models", "NAME ...", "--models NAME,...")],
    );
    let listed: Vec<String> = String::from_utf8_lossy(&models.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["all-cnn-c", "model-a"]);
}

#[test]
fn check_record_remembers_the_outcome_under_the_runs_root() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let out = allconv()
        .args([
            "check",
            "--device",
            "cpu",
            "--quick",
            "--models",
            "strided-cnn-a",
            "--record",
        ])
        .arg(&runs)
        .output()
        .unwrap();
    assert_warned(&out, &[warning("check", "--record DIR", "--runs DIR")]);
    let records = std::fs::read_dir(runs.join("device-check"))
        .unwrap()
        .count();
    assert_eq!(records, 1);
}

#[test]
fn reproduce_out_is_the_runs_root_of_the_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_grid(tmp.path(), 1);
    let runs = tmp.path().join("old-spelling");
    let out = allconv()
        .args(["reproduce", "--config"])
        .arg(&config)
        .arg("--emit-slurm")
        .arg(tmp.path().join("slurm"))
        .arg("--out")
        .arg(&runs)
        .output()
        .unwrap();
    assert_warned(&out, &[warning("reproduce", "--out DIR", "--runs DIR")]);
    assert!(Path::new(&runs.join("grid.json")).is_file());
}
