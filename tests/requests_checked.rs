//! Requests that make no sense, or ask for more than exists, are refused before anything is
//! allocated or created: an error naming the flag and what the user wrote, status 1 (or 2 for
//! clap's own refusals), never an abort (134) or a panic (101), and no folder left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{allconv, text, tiny_grid};

/// Asserts a refusal by allconv itself (status 1) whose message holds every one of `needles`.
fn assert_refused(out: &Output, needles: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(!all.contains("memory allocation"), "{all}");
    for needle in needles {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

/// The tiny grid trained for 1 epoch: (temp dir, its config, its run folder).
fn trained() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 1);
    let out = allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (tmp, config, runs.join("strided-cnn-a/lr-0.01/seed-0"))
}

fn visualize(run: &Path, out: &Path, extra: &[&str]) -> Output {
    allconv()
        .arg("visualize")
        .arg("--run")
        .arg(run)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn visualize_checks_image_ranges_and_unit_counts_against_what_exists() {
    let (tmp, _, run) = trained();
    let out_dir = tmp.path().join("pictures");
    // The synthetic test set has 20 images (tests/common/mod.rs).
    for (images, last) in [
        ("test:0..10000000000", "9999999999"),
        ("test:0..100000000", "99999999"),
        ("test:5..21", "20"),
    ] {
        let out = visualize(&run, &out_dir, &["--class", "0", "--images", images]);
        assert_refused(
            &out,
            &[
                &format!("--images \"{images}\""),
                &format!("test image {last} does not exist (the test set has 20)"),
            ],
        );
        assert!(
            !out_dir.exists(),
            "{images}: the refused request made {out_dir:?}"
        );
    }
    let out = visualize(&run, &out_dir, &["--layer", "conv1", "--top-units", "0"]);
    assert_refused(&out, &["--top-units must be at least 1"]);
    assert!(!out_dir.exists());
    // The last image that exists is fine.
    let out = visualize(&run, &out_dir, &["--class", "0", "--images", "test:19..20"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out_dir.join("class-0.png").exists());
}

#[test]
fn visualize_creates_no_output_folder_for_a_request_it_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("new/pictures");
    let out = visualize(&tmp.path().join("no-run"), &out_dir, &["--class", "0"]);
    assert_refused(&out, &["no-run", "config.yaml"]);
    assert!(!tmp.path().join("new").exists(), "{}", text(&out));
}

#[test]
fn bench_refuses_a_batch_larger_than_the_machine_before_allocating_it() {
    let out = allconv()
        .args([
            "bench",
            "--models",
            "model-a",
            "--batch-size",
            "100000000",
            "--iters",
            "1",
        ])
        .output()
        .unwrap();
    // About 96 TB of activations (4 x 241,522 bytes an image, src: crates/train/src/memory.rs).
    assert_refused(
        &out,
        &["--batch-size 100000000", "model-a", "GiB of memory"],
    );
}

#[test]
fn a_grid_that_names_a_point_twice_is_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 1);
    for (flags, needles) in [
        (
            &["--lrs", "0.01,0.01"][..],
            &["--lrs 0.01,0.01", "grid.lrs lists 0.01 more than once"][..],
        ),
        (
            &["--seeds", "3,4,3"][..],
            &["--seeds 3,4,3", "grid.seeds lists 3"][..],
        ),
        (
            &["--models", "all-cnn-c,All-CNN-C"][..],
            &[
                "--models all-cnn-c,All-CNN-C",
                "grid.models names all-cnn-c more than once",
            ][..],
        ),
    ] {
        let out = allconv()
            .args(["reproduce", "--config"])
            .arg(&config)
            .args(flags)
            .output()
            .unwrap();
        assert_refused(&out, needles);
        assert!(!runs.exists(), "{flags:?}: {}", text(&out));
    }
}

#[test]
fn a_slurm_time_limit_that_slurm_would_not_read_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_grid(tmp.path(), 1);
    let slurm = tmp.path().join("slurm");
    for (time, ok) in [("forever", false), ("1:2:3:4", false), ("2-12:00:00", true)] {
        let out = allconv()
            .args(["reproduce", "--config"])
            .arg(&config)
            .arg("--emit-slurm")
            .arg(&slurm)
            .args(["--time", time])
            .output()
            .unwrap();
        if ok {
            assert!(out.status.success(), "{}", text(&out));
            let script = std::fs::read_to_string(slurm.join("grid.sbatch")).unwrap();
            assert!(
                script.contains(&format!("#SBATCH --time={time}\n")),
                "{script}"
            );
        } else {
            assert_refused(&out, &[&format!("--time {time}"), "not a Slurm time limit"]);
            assert!(!slurm.exists(), "{}", text(&out));
        }
    }
}
