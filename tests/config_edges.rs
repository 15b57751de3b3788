//! Configurations that are refused, or warned about, before a run folder is written: each names
//! its key and what the user wrote, and a refused run leaves no folder behind, not even the runs
//! root it would have made.

use std::path::Path;
use std::process::Command;

/// `allconv train` of Strided-CNN-A on synthetic data in `tmp`, with extra arguments.
fn train(tmp: &Path, extra: &[&str]) -> (bool, String) {
    let data = tmp.join("data");
    if !data.exists() {
        allconv_cifar::write_synthetic_dir(&data, 10, 20, 3).unwrap();
    }
    let config = tmp.join("exp.yaml");
    std::fs::write(
        &config,
        format!(
            "data:\n  dir: {}\n  preprocessing: standardize\nschedule:\n  epochs: 1\n  milestones: []\n\
             training:\n  device: cpu\n  batch_size: 25\ngrid:\n  models: [strided-cnn-a]\n  lrs: [0.01]\n",
            data.display()
        ),
    )
    .unwrap();
    let runs = tmp.join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_allconv"))
        .arg("train")
        .arg("--quiet")
        .arg("--config")
        .arg(&config)
        .arg("--runs")
        .arg(&runs)
        .args(extra)
        .output()
        .expect("the allconv binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

/// Whether `allconv train` left anything under the runs root.
fn runs_left(tmp: &Path) -> Vec<String> {
    let runs = tmp.join("runs");
    let mut left = Vec::new();
    if runs.exists() {
        for entry in walk(&runs) {
            left.push(entry.strip_prefix(&runs).unwrap().display().to_string());
        }
    }
    left
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

#[test]
fn invalid_settings_are_refused_naming_the_key_and_write_nothing() {
    for (extra, key) in [
        (&["--epochs", "0"][..], "schedule.epochs"),
        (
            &["--set", "schedule.milestones=[1,1]"][..],
            "schedule.milestones",
        ),
        (
            &["--set", "schedule.milestones=[0]"][..],
            "schedule.milestones",
        ),
        (&["--set", "data.test_subset=0"][..], "data.test_subset"),
        (&["--set", "data.train_subset=0"][..], "data.train_subset"),
        // Known only once the data is read (50 training images here).
        (&["--set", "data.validation=50"][..], "data.validation"),
        (&["--set", "data.train_subset=500"][..], "data.train_subset"),
        (
            &[
                "--set",
                "training.init_from=/nonexistent/weights.safetensors",
            ][..],
            "training.init_from",
        ),
        // No alias that the run would record as something else.
        (
            &["--device", "gpu"][..],
            "expected `cpu`, `cuda` or `cuda:N`",
        ),
        // A negative number reaches the value check instead of clap's "unexpected argument".
        (&["--lr", "-1"][..], "lr"),
        // 50 training images, batches of 128 and no partial batch: no SGD step at all.
        (
            &[
                "--set",
                "training.keep_last_batch=false",
                "--set",
                "training.batch_size=128",
            ][..],
            "an epoch would train no SGD step",
        ),
        (&["--set", "data.labels=coarse"][..], "data.labels: coarse"),
        // What the user wrote, not what JSON made of it (`null`).
        (&["--set", "optim.momentum=.nan"][..], "optim.momentum=.nan"),
        (
            &["--set", "schedule.milestones=[.inf]"][..],
            "schedule.milestones=[.inf]",
        ),
        // The model option's key, not the grid's models that are built with it.
        (
            &["--set", "model.input_dropout=1.0"][..],
            "--set model.input_dropout=1.0: model.input_dropout: expected a rate in [0, 1), got 1",
        ),
        (
            &["--epochs", "100000000"][..],
            "--epochs 100000000: schedule.epochs must be in",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (ok, text) = train(tmp.path(), extra);
        assert!(!ok, "{extra:?} was accepted:\n{text}");
        assert!(
            text.contains(key),
            "{extra:?}: the error does not name {key}:\n{text}"
        );
        assert!(!text.contains("unexpected argument"), "{extra:?}:\n{text}");
        assert!(!text.contains("null"), "{extra:?}:\n{text}");
        assert!(
            !tmp.path().join("runs").exists(),
            "{extra:?} left the runs root, holding {:?}:\n{text}",
            runs_left(tmp.path())
        );
    }
}

#[test]
fn milestones_after_the_last_epoch_are_trained_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, text) = train(tmp.path(), &["--set", "schedule.milestones=[3]"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: schedule.milestones [3] lie at or after the last of the 1 epochs"),
        "{text}"
    );
}

#[test]
fn a_non_finite_value_in_the_file_is_blamed_on_the_file_not_on_a_flag() {
    // NaN cannot pass through the JSON the flags are applied with; it must be caught as the
    // file's value before a flag is applied.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("nan.yaml");
    std::fs::write(&config, "data:\n  gcn_scale: .nan\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_allconv"))
        .args([
            "train",
            "--model",
            "all-cnn-c",
            "--lr",
            "0.1",
            "--epochs",
            "1",
            "--config",
        ])
        .arg(&config)
        .arg("--runs")
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: data.gcn_scale must be a finite number > 0, got NaN",
            config.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("epochs"), "{stderr}");
}

#[test]
fn an_empty_config_file_is_refused_saying_what_it_would_train() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.yaml", ""), ("comments.yaml", "# nothing yet\n\n")] {
        let config = tmp.path().join(name);
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_allconv"))
            .args(["train", "--model", "all-cnn-c", "--lr", "0.1", "--config"])
            .arg(&config)
            .arg("--runs")
            .arg(tmp.path().join("runs"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("sets no key"),
            "{stderr}"
        );
        assert!(stderr.contains("350 epochs"), "{stderr}");
        assert!(!tmp.path().join("runs").exists());
    }
}
