//! `allconv train` and `allconv report` as processes on data that is not the official CIFAR-10
//! (synthetic files): the run says so at its start and records it, the report marks it; a
//! corrupt run folder, a folder with only a config.yaml and runs in no grid.json are all shown,
//! and every other run is still reported.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{allconv, text};

/// One epoch of Strided-CNN-A (the cheapest network) on synthetic data, into `out`.
fn train_one_epoch(tmp: &Path, out: &Path) -> Output {
    let data = tmp.join("data");
    allconv_cifar::write_synthetic_dir(&data, 12, 20, 3).unwrap();
    let config = tmp.join("exp.yaml");
    fs::write(
        &config,
        format!(
            "data:\n  dir: {data:?}\n  preprocessing: standardize\n\
             schedule:\n  epochs: 1\n  milestones: []\n\
             training:\n  batch_size: 16\n  device: cpu\n\
             grid:\n  models: [strided-cnn-a]\n  lrs: [0.01]\n  seeds: [5]\n"
        ),
    )
    .unwrap();
    fs::create_dir_all(out).unwrap();
    // The grid this experiment root holds: its one point.
    fs::write(
        out.join("grid.json"),
        serde_json::json!({
            "config": config,
            "points": [{"index": 0, "model": "strided-cnn-a", "lr": 0.01, "seed": 5}],
        })
        .to_string(),
    )
    .unwrap();
    allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .arg("--runs")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn data_that_is_not_official_is_said_recorded_and_marked() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("all/exp");
    let trained = train_one_epoch(tmp.path(), &exp);
    assert!(trained.status.success(), "{}", text(&trained));
    // Synthetic files: none of the six sums is the official one, all are named with the folder.
    let stderr = String::from_utf8_lossy(&trained.stderr);
    let warning = stderr
        .lines()
        .find(|l| l.contains("is not the official CIFAR-10"))
        .unwrap_or_else(|| panic!("no warning: {}", text(&trained)));
    assert!(
        warning.contains(&tmp.path().join("data").display().to_string()),
        "{warning}"
    );
    for file in ["data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"] {
        assert!(warning.contains(file), "{warning}");
    }
    let run = exp.join("strided-cnn-a/lr-0.01/seed-5");
    let config = fs::read_to_string(run.join("config.yaml")).unwrap();
    assert!(config.contains("official: false"), "{config}");

    let output = allconv()
        .args(["report", "--runs"])
        .arg(&exp)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let md = fs::read_to_string(exp.join("report/report.md")).unwrap();
    assert!(md.contains("| Strided-CNN-A † |"), "{md}");
    assert!(
        md.contains("† Not the official CIFAR-10 data: 1 finished run(s)"),
        "{md}"
    );
    assert!(
        md.contains(
            "seed-5`: not the official data (md5 differs for data_batch_1.bin, data_batch_2.bin"
        ),
        "{md}"
    );
}

#[test]
fn corrupt_runs_and_runs_outside_any_grid_are_listed_and_the_rest_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    let exp = all.join("exp");
    let trained = train_one_epoch(tmp.path(), &exp);
    assert!(trained.status.success(), "{}", text(&trained));
    let run = exp.join("strided-cnn-a/lr-0.01/seed-5");
    // A result.json cut in the middle of writing.
    let corrupt = exp.join("model-a/lr-0.1/seed-0");
    fs::create_dir_all(&corrupt).unwrap();
    fs::write(
        corrupt.join("result.json"),
        "{\"model\": \"model-a\", \"lr\"",
    )
    .unwrap();
    // A folder holding only the config.yaml of another configuration.
    let config_only = exp.join("model-b/lr-0.1/seed-0");
    fs::create_dir_all(&config_only).unwrap();
    fs::copy(run.join("config.yaml"), config_only.join("config.yaml")).unwrap();
    // Runs beside the experiment, in no grid.json.
    let adhoc = all.join("adhoc/model-c/lr-0.02/seed-1");
    fs::create_dir_all(&adhoc).unwrap();
    fs::copy(run.join("metrics.csv"), adhoc.join("metrics.csv")).unwrap();

    let output = allconv()
        .args(["report", "--runs"])
        .arg(&all)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("warning:")
            && l.contains("model-a/lr-0.1/seed-0")
            && l.contains("result.json")),
        "{}",
        text(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("adhoc/report/report.md"),
        "{}",
        text(&output)
    );

    let md = fs::read_to_string(exp.join("report/report.md")).unwrap();
    // The trained run is still the one grid point, done.
    assert!(md.contains("1 grid points, 1 done"), "{md}");
    let unreadable = md
        .split("## Runs that could not be read")
        .nth(1)
        .expect(&md);
    assert!(
        unreadable.contains("model-a/lr-0.1/seed-0/result.json"),
        "{md}"
    );
    let outside = md.split("## Runs outside the grid").nth(1).expect(&md);
    assert!(outside.contains("| Model B | 0.1 | 0 | missing |"), "{md}");

    let adhoc_md = fs::read_to_string(all.join("adhoc/report/report.md")).unwrap();
    assert!(
        adhoc_md.contains("1 grid points, 0 done, 0 diverged, 1 partial"),
        "{adhoc_md}"
    );
    assert!(
        adhoc_md.contains("| Model C | 0.02 | 1 | partial 1/? "),
        "{adhoc_md}"
    );
}

#[test]
fn report_writes_only_into_a_folder_of_its_own_and_names_a_file_given_as_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("exp");
    let trained = train_one_epoch(tmp.path(), &exp);
    assert!(trained.status.success(), "{}", text(&trained));
    let report = |out: &Path| {
        allconv()
            .args(["report", "--runs"])
            .arg(&exp)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };

    // A folder holding someone's report.md: refused, and the file is left as it was.
    let theirs = tmp.path().join("notes");
    fs::create_dir_all(&theirs).unwrap();
    fs::write(theirs.join("report.md"), "my notes\n").unwrap();
    let out = report(&theirs);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&theirs.join("report.md").display().to_string())
            && stderr.contains("was not written by `allconv report`"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(theirs.join("report.md")).unwrap(),
        "my notes\n"
    );
    assert!(!theirs.join("report.csv").exists() && !theirs.join("figures").exists());

    // Someone's table3.csv without a report.md: refused as well.
    let csv_only = tmp.path().join("tables");
    fs::create_dir_all(&csv_only).unwrap();
    fs::write(csv_only.join("table3.csv"), "a,b\n").unwrap();
    let out = report(&csv_only);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(csv_only.join("table3.csv")).unwrap(),
        "a,b\n"
    );

    // A new folder, and the same folder again: the report's own.
    let ours = tmp.path().join("ours");
    for _ in 0..2 {
        let out = report(&ours);
        assert!(out.status.success(), "{}", text(&out));
    }
    let md = fs::read_to_string(ours.join("report.md")).unwrap();
    assert_eq!(md.lines().next(), Some(allconv_report::MARKER));

    // A file given as the runs root is named as a file, not as missing.
    let file = tmp.path().join("exp.yaml");
    let out = allconv()
        .args(["report", "--runs"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a file, not a folder"), "{stderr}");
    assert!(!stderr.contains("does not exist"), "{stderr}");
}
