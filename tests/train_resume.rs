//! `allconv train` as a process: SIGKILL in the middle of a run, resume, and end with weights
//! byte-identical to an uninterrupted run; a second process on the same run folder is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::allconv;

const EPOCHS: usize = 6;

/// A small experiment on synthetic data: Strided-CNN-A (the cheapest network), dropout and
/// shuffling on, a learning-rate milestone after the kill point.
fn write_config(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    allconv_cifar::write_synthetic_dir(&data, 12, 20, 3).unwrap();
    let config = dir.join("exp.yaml");
    std::fs::write(
        &config,
        format!(
            "data:\n  dir: {data:?}\n  preprocessing: standardize\n\
             schedule:\n  epochs: {EPOCHS}\n  milestones: [3]\n\
             training:\n  batch_size: 16\n  device: cpu\n\
             grid:\n  models: [strided-cnn-a]\n  lrs: [0.01]\n  seeds: [5]\n"
        ),
    )
    .unwrap();
    config
}

fn train(config: &Path, out: &Path) -> Output {
    allconv()
        .args(["train", "--quiet", "--config"])
        .arg(config)
        .arg("--runs")
        .arg(out)
        .output()
        .unwrap()
}

fn checkpoint_epoch(run: &Path) -> usize {
    std::fs::read_to_string(run.join("checkpoint/state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epoch"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn sigkill_then_resume_gives_identical_weights_and_a_second_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path());

    let straight = train(&config, &tmp.path().join("straight"));
    assert!(
        straight.status.success(),
        "{}",
        String::from_utf8_lossy(&straight.stderr)
    );
    let straight_run = tmp.path().join("straight/strided-cnn-a/lr-0.01/seed-5");

    let out = tmp.path().join("killed");
    let run = out.join("strided-cnn-a/lr-0.01/seed-5");
    let mut child = allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .arg("--runs")
        .arg(&out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while checkpoint_epoch(&run) < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // While the first process trains, a second one on the same folder must be refused.
    let second = train(&config, &out);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second process was not refused");
    assert!(stderr.contains("another process"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", child.id())), "{stderr}");

    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let killed_at = checkpoint_epoch(&run);
    assert!(
        killed_at < EPOCHS && !run.join("result.json").exists(),
        "the run finished before it could be killed; make it longer"
    );

    let resumed = train(&config, &out);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let summary = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        summary.contains(&format!("done, {EPOCHS}/{EPOCHS} epochs")),
        "{summary}"
    );

    // safetensors files are written with sorted keys, so equal tensors give equal bytes.
    let a = std::fs::read(straight_run.join("weights.safetensors")).unwrap();
    let b = std::fs::read(run.join("weights.safetensors")).unwrap();
    assert!(
        a == b,
        "weights differ after SIGKILL at epoch {killed_at} and resume"
    );

    let rows = |dir: &Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("metrics.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(","))
            .collect()
    };
    let (rows_a, rows_b) = (rows(&straight_run), rows(&run));
    assert_eq!(
        rows_b.len(),
        EPOCHS,
        "one row per epoch, none duplicated: {rows_b:?}"
    );
    assert_eq!(
        rows_a, rows_b,
        "losses and accuracies (time columns excluded)"
    );
}

#[test]
fn bad_config_key_and_unknown_model_fail_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("typo.yaml");
    std::fs::write(&config, "optim:\n  weight_decai: 0.001\n").unwrap();
    let out = allconv()
        .args(["train", "--model", "all-cnn-c", "--lr", "0.1", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("weight_decai") && stderr.contains("typo.yaml"),
        "{stderr}"
    );

    let out = allconv()
        .args(["train", "--model", "all-cnn-x", "--lr", "0.1", "--runs"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("all-cnn-x") && stderr.contains("strided-cnn-b"),
        "{stderr}"
    );
}
