//! Configurations that are refused, or warned about, before a run folder is written: each names
//! its key, and a refused run leaves no folder behind.

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
        .arg("--out")
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
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (ok, text) = train(tmp.path(), extra);
        assert!(!ok, "{extra:?} was accepted:\n{text}");
        assert!(
            text.contains(key),
            "{extra:?}: the error does not name {key}:\n{text}"
        );
        assert!(!text.contains("unexpected argument"), "{extra:?}:\n{text}");
        assert_eq!(
            runs_left(tmp.path()),
            Vec::<String>::new(),
            "{extra:?} left files:\n{text}"
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
