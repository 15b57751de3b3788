//! The paper's other CIFAR experiments end to end as processes (docs/protocol.md, "CIFAR-100"
//! and "Data augmentation"): a tiny All-CNN-C run on synthetic CIFAR-100 trained by `allconv
//! train` and reported by `allconv report` beside the paper's 33.71%, with the dataset and the
//! augmentation in the provenance; runs of different experiments under one root are refused.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{allconv, text};

/// Trains one epoch of All-CNN-C on 100 synthetic CIFAR-100 images (50 test) into `out`,
/// with `extra` YAML lines under `data:`.
fn train(tmp: &Path, out: &Path, lr: f64, extra: &str) -> Output {
    let data = tmp.join("cifar-100-binary");
    if !data.exists() {
        allconv_cifar::write_synthetic_cifar100_dir(&data, 100, 50, 2).unwrap();
    }
    let config = tmp.join(format!("exp-{lr}.yaml"));
    fs::write(
        &config,
        format!(
            "data:\n  dataset: cifar100\n  dir: {data:?}\n  preprocessing: standardize\n{extra}\
             model:\n  num_classes: 100\n\
             schedule:\n  epochs: 1\n  milestones: []\n\
             training:\n  batch_size: 50\n  device: cpu\n"
        ),
    )
    .unwrap();
    allconv()
        .args(["train", "--quiet", "--model", "all-cnn-c", "--lr"])
        .arg(lr.to_string())
        .arg("--config")
        .arg(&config)
        .arg("--runs")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn cifar100_runs_are_reported_beside_the_papers_cifar100_number_and_never_mixed() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let trained = train(tmp.path(), &runs, 0.01, "");
    assert!(trained.status.success(), "{}", text(&trained));

    let report = allconv()
        .args(["report", "--runs"])
        .arg(&runs)
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", text(&report));
    let md = fs::read_to_string(runs.join("report/report.md")).unwrap();
    assert!(
        md.contains("# All Convolutional Net on CIFAR-100, fine labels"),
        "{md}"
    );
    assert!(
        md.contains("## CIFAR-100: test error (%), the paper beside ours"),
        "{md}"
    );
    assert!(!md.contains("## Table 3"), "{md}");
    // All-CNN-C's row: the paper's 33.71 and the 100-class parameter count (1,387,108).
    let row = md
        .lines()
        .find(|l| l.starts_with("| All-CNN-C") || l.starts_with("| all-cnn-c"))
        .unwrap_or_else(|| panic!("no All-CNN-C row in\n{md}"));
    assert!(row.contains("33.71") && row.contains("1,387,108"), "{row}");
    // Model C has no CIFAR-100 number in the paper: its paper cell is empty, never 9.74.
    assert!(!md.contains("9.74"), "{md}");
    assert!(
        md.contains("cifar100-fine"),
        "provenance names the dataset:\n{md}"
    );
    assert!(md.contains("augmentation"), "{md}");
    // Its data cannot be checked file by file, and the footnote says so in CIFAR-100's terms.
    assert!(
        md.contains("Not checked against the official CIFAR-100 files")
            && md.contains("CIFAR-100, whose files have no published md5 sums")
            && !md.contains("CIFAR-10 data")
            && !md.contains("data_batch_1.bin"),
        "{md}"
    );

    // `allconv evaluate` on the CIFAR-100 run: its 100 classes, named from the release's
    // fine_label_names.txt, and exactly the trainer's recorded test error.
    let run = runs.join("all-cnn-c/lr-0.01/seed-0");
    let evaluated = allconv()
        .args(["evaluate", "--json", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(evaluated.status.success(), "{}", text(&evaluated));
    let scores: serde_json::Value = serde_json::from_slice(&evaluated.stdout).unwrap();
    let result: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    let recorded = result["final_test_error"].as_f64().unwrap();
    assert!(
        (scores["test_error"].as_f64().unwrap() - recorded).abs() < 1e-9,
        "{scores}"
    );
    assert_eq!(scores["class_accuracy"].as_array().unwrap().len(), 100);
    assert_eq!(scores["test_images"], 50);
    let table = allconv()
        .args(["evaluate", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    let names =
        fs::read_to_string(tmp.path().join("cifar-100-binary/fine_label_names.txt")).unwrap();
    let last = names
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap()
        .trim()
        .to_string();
    assert!(
        String::from_utf8_lossy(&table.stdout).contains(&format!("99 {last}")),
        "{}",
        text(&table)
    );

    // An augmented run under the same root is another experiment: the report refuses to mix.
    let augmented = train(tmp.path(), &runs, 0.05, "  augment: true\n");
    assert!(augmented.status.success(), "{}", text(&augmented));
    let mixed = allconv()
        .args(["report", "--runs"])
        .arg(&runs)
        .output()
        .unwrap();
    assert!(!mixed.status.success(), "{}", text(&mixed));
    let err = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        err.contains("different experiments") && err.contains("CIFAR-100, fine labels"),
        "{err}"
    );
}
