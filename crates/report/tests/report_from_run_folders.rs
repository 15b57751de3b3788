//! report.md, report.csv and figures from hand-written run folders: every number must equal
//! the one computed by hand from the metrics files, and missing, partial and diverged runs must
//! be shown.

use std::fs;
use std::path::Path;

use allconv_report::{write_report, DataCheck, GridPoint, ReportOptions};

const HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_sec";

/// Writes one run folder: metrics rows `(train_loss, val_acc, test_acc)` and, when `status` is
/// given, a result.json.
fn run_folder(
    root: &Path,
    model: &str,
    lr: f64,
    seed: u64,
    rows: &[(f64, Option<f64>, f64)],
    status: Option<(&str, Option<&str>, u64)>,
) {
    let dir = root
        .join(model)
        .join(format!("lr-{lr}"))
        .join(format!("seed-{seed}"));
    fs::create_dir_all(&dir).unwrap();
    let mut csv = format!("{HEADER}\n");
    for (i, (loss, val, test)) in rows.iter().enumerate() {
        let val = val.map(|v| v.to_string()).unwrap_or_default();
        let val_loss = if val.is_empty() { "" } else { "1.0" };
        csv.push_str(&format!(
            "{},{lr},{loss},0.5,{val_loss},{val},1.1,{test},10.0,500\n",
            i + 1
        ));
    }
    fs::write(dir.join("metrics.csv"), csv).unwrap();
    fs::write(
        dir.join("config.yaml"),
        format!("model: {model}\nlr: {lr}\nseed: {seed}\n"),
    )
    .unwrap();
    if let Some((status, reason, parameters)) = status {
        let json = serde_json::json!({
            "model": model, "lr": lr, "seed": seed, "status": status, "reason": reason,
            "epochs_run": rows.len(), "epochs_planned": 2, "final_test_error": null,
            "best_test_error": null, "best_test_epoch": null, "final_val_error": null,
            "best_val_error": null, "best_val_epoch": null, "test_error_at_best_val": null,
            "wall_seconds": 20.0, "parameters": parameters,
        });
        fs::write(dir.join("result.json"), json.to_string()).unwrap();
    }
}

fn grid_point(model: &str, lr: f64, seed: u64) -> GridPoint {
    GridPoint {
        model: model.into(),
        lr,
        seed,
        epochs: Some(2),
    }
}

#[test]
fn report_numbers_come_from_the_metrics_files() {
    // One piece on purpose: each run folder is written next to the hand computation of its
    // numbers, and every table is checked against them below; split, the expected values
    // would sit far from the files they come from.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    // Model A, lr 0.1: final test acc 0.8753 -> 12.47 %, final val acc 0.84 -> 16.00 %.
    run_folder(
        &root,
        "model-a",
        0.1,
        0,
        &[(1.5, Some(0.7), 0.80), (1.0, Some(0.84), 0.8753)],
        Some(("done", None, 839_242)),
    );
    // Model A, lr 0.05: final test acc 0.865 -> 13.50 %, final val acc 0.87 -> 13.00 % (best val).
    run_folder(
        &root,
        "model-a",
        0.05,
        0,
        &[(1.4, Some(0.8), 0.86), (1.1, Some(0.87), 0.865)],
        Some(("done", None, 839_242)),
    );
    // Model A, lr 0.25: diverged in epoch 1.
    run_folder(
        &root,
        "model-a",
        0.25,
        0,
        &[(f64::NAN, Some(0.1), 0.1)],
        Some(("diverged", Some("loss is NaN"), 839_242)),
    );
    // Model A, lr 0.01: one epoch of two, no result.json: partial, test acc 0.5 -> 50.00 %.
    run_folder(&root, "model-a", 0.01, 0, &[(2.0, Some(0.45), 0.5)], None);
    // All-CNN-C, lr 0.05, two seeds: 10.00 % and 12.00 % -> mean 11.00, sample std sqrt(2) = 1.41.
    run_folder(
        &root,
        "all-cnn-c",
        0.05,
        0,
        &[(1.0, Some(0.85), 0.85), (0.9, Some(0.89), 0.90)],
        Some(("done", None, 1_369_738)),
    );
    run_folder(
        &root,
        "all-cnn-c",
        0.05,
        1,
        &[(1.0, Some(0.85), 0.85), (0.9, Some(0.87), 0.88)],
        Some(("done", None, 1_369_738)),
    );
    let expected = vec![
        grid_point("model-a", 0.25, 0),
        grid_point("model-a", 0.1, 0),
        grid_point("model-a", 0.05, 0),
        grid_point("model-a", 0.01, 0),
        grid_point("all-cnn-c", 0.1, 0),
        grid_point("all-cnn-c", 0.05, 0),
        grid_point("all-cnn-c", 0.05, 1),
    ];
    let out = tmp.path().join("report");
    let written = write_report(&ReportOptions {
        runs_root: root.clone(),
        out_dir: out.clone(),
        expected,
        settings: Vec::new(),
        provenance: vec![("git revision".into(), "abc123".into())],
        // Model A read the official files; one All-CNN-C seed read a changed data_batch_3.bin,
        // the other recorded no checksums.
        data: [0.25, 0.1, 0.05, 0.01]
            .iter()
            .map(|lr| {
                (
                    root.join(format!("model-a/lr-{lr}/seed-0")),
                    DataCheck::Official,
                )
            })
            .chain([(
                root.join("all-cnn-c/lr-0.05/seed-0"),
                DataCheck::NotOfficial(vec!["data_batch_3.bin".into()]),
            )])
            .collect(),
        experiment: Default::default(),
    })
    .unwrap();
    let md = fs::read_to_string(&written.markdown).unwrap();

    // The report opens with the Table 3 comparison.
    let first_section = md.lines().find(|l| l.starts_with("## ")).unwrap();
    assert!(first_section.contains("Table 3"), "{first_section}");
    // Model A: on test, lr 0.1 (12.47, paper 12.47, difference +0.00); on validation lr 0.05
    // (val 13.00 < 16.00), whose test error is 13.50 (13.50 - 12.47 = +1.03).
    assert!(
        md.contains("| Model A | 839,242 | 12.47 | 12.47 | +0.00 | 0.1 | 13.50 | +1.03 | 0.05 | 2 done, 1 diverged, 1 partial |"),
        "{md}"
    );
    // All-CNN-C: 11.00 ± 1.41 over two seeds; 11.00 - 9.08 = +1.92; the lr 0.1 point is missing.
    assert!(
        md.contains("| All-CNN-C † | 1,369,738 | 9.08 | 11.00 ± 1.41 (n=2) | +1.92 | 0.05 |"),
        "{md}"
    );
    assert!(md.contains("2 done, 1 missing |"), "{md}");
    // The marked row is explained under the table, and each run is named under Provenance.
    assert!(
        md.contains("† Not the official CIFAR-10 data: 1 finished run(s) read files whose md5 sums differ from the official ones and 1 record no data checksums"),
        "{md}"
    );
    let provenance = md.split("## Provenance").nth(1).expect(&md);
    assert!(
        provenance.contains(
            "all-cnn-c/lr-0.05/seed-0`: not the official data (md5 differs for data_batch_3.bin)"
        ),
        "{md}"
    );
    assert!(
        provenance.contains("all-cnn-c/lr-0.05/seed-1`: not known to be the official data"),
        "{md}"
    );
    assert!(!provenance.contains("model-a/lr-0.1/seed-0"), "{md}");
    // Models of the paper without runs are still listed.
    assert!(
        md.contains("| Strided-CNN-A | 839,242 | 13.46 | – |"),
        "{md}"
    );

    // Model x LR table (LRs 0.25, 0.1, 0.05, 0.01): diverged, chosen (bold), plain, partial.
    assert!(
        md.contains("| Model A | diverged after 1/2 epochs (loss is NaN): 90.00 | **12.47** | 13.50 | partial 1/2 (interrupted): 50.00 |"),
        "{md}"
    );
    assert!(
        md.contains("| All-CNN-C | – | missing | **11.00 ± 1.41 (n=2)** | – |"),
        "{md}"
    );
    // The validation table: Model A's chosen lr is 0.05 there (13.00), lr 0.1 has 16.00.
    assert!(
        md.contains(
            "| Model A | diverged after 1/2 epochs (loss is NaN): 90.00 | 16.00 | **13.00** |"
        ),
        "{md}"
    );
    // Every run, with its best epoch: Model A lr 0.1 best test error 12.47 at epoch 2, where the
    // validation error is lowest too (16.00 < 30.00), so the test error there is 12.47.
    assert!(
        md.contains("| Model A | 0.1 | 0 | done | 2/2 | 12.47 | 12.47 (2) | 16.00 | 12.47 |"),
        "{md}"
    );
    assert!(
        md.contains("| All-CNN-C | 0.1 | 0 | missing | 0/2 |"),
        "{md}"
    );
    // config.yaml is shown verbatim; provenance lines as given; figures linked.
    assert!(
        md.contains("```yaml\nmodel: model-a\nlr: 0.25\nseed: 0\n```"),
        "{md}"
    );
    assert!(md.contains("- git revision: `abc123`"), "{md}");
    assert!(md.contains("](figures/model-a.svg)"), "{md}");

    // report.csv: one row per grid point (7), same numbers with 4 decimals.
    let csv = fs::read_to_string(&written.runs_csv).unwrap();
    assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
    assert!(csv.contains("\nModel A,0.1,0,done,2,2,12.4700,16.0000,12.4700,2,12.4700,839242,20.0000,500.0000,12.4700,true,false,"), "{csv}");
    assert!(
        csv.contains("\nAll-CNN-C,0.1,0,missing,0,2,,,,,,,,,9.0800,false,false,\n"),
        "{csv}"
    );
    let table3 = fs::read_to_string(&written.table3_csv).unwrap();
    assert_eq!(table3.lines().count(), 1 + 12, "{table3}");
    assert!(
        table3.contains(
            "\nModel A,839242,0.9M,12.4700,0.1,12.4700,,1,0.0000,0.05,13.5000,,1,1.0300,2,1,1,0,0,0\n"
        ),
        "{table3}"
    );

    // One figure per model with a finished epoch, a line per learning rate.
    assert_eq!(written.figures.len(), 2);
    let svg = fs::read_to_string(out.join("figures/model-a.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    for lr in ["lr 0.25", "lr 0.1", "lr 0.05", "lr 0.01"] {
        assert!(svg.contains(lr), "legend misses {lr}");
    }
    let svg_c = fs::read_to_string(out.join("figures/all-cnn-c.svg")).unwrap();
    assert!(
        svg_c.contains("lr 0.05 seed 1"),
        "two seeds are labelled by seed"
    );
}

#[test]
fn without_validation_split_the_validation_choice_is_not_applicable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    // Final test acc 0.9092 -> 9.08 %.
    run_folder(
        &root,
        "All-CNN-C",
        0.05,
        3,
        &[(0.5, None, 0.9092)],
        Some(("done", None, 1_369_738)),
    );
    let written = write_report(&ReportOptions {
        runs_root: root,
        out_dir: tmp.path().join("out"),
        expected: Vec::new(),
        settings: vec![
            ("training.batch_size".into(), "128".into()),
            (
                "schedule.epochs".into(),
                "1 / 2 (differs between runs)".into(),
            ),
        ],
        provenance: Vec::new(),
        data: Vec::new(),
        experiment: Default::default(),
    })
    .unwrap();
    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(
        md.contains("| All-CNN-C † | 1,369,738 | 9.08 | 9.08 | +0.00 | 0.05 | n/a |"),
        "{md}"
    );
    assert!(!md.contains("final validation error (%)"), "{md}");
    // Hand-written folders record no data checksums: the row is marked, never passed as official.
    assert!(md.contains("and 1 record no data checksums"), "{md}");
    // Settings given by the caller are listed beside the paper's; absent keys say so.
    assert!(
        md.contains("| batch size | open (default 128) | `training.batch_size` = 128 |"),
        "{md}"
    );
    assert!(md.contains("`schedule.epochs` = 1 / 2 (differs between runs)<br>`schedule.milestones` = not recorded"), "{md}");
}

#[test]
fn an_epoch_without_evaluation_does_not_hide_the_last_evaluated_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs/model-c/lr-0.01/seed-0");
    fs::create_dir_all(&dir).unwrap();
    // Evaluated every 2 epochs: epoch 2 has test acc 0.75 -> 25.00 %; epoch 3 was not evaluated.
    fs::write(
        dir.join("metrics.csv"),
        format!("{HEADER}\n1,0.01,2.0,0.3,,,,,5,100\n2,0.01,1.5,0.5,,,1.2,0.75,5,100\n3,0.01,1.4,0.55,,,,,5,100\n"),
    )
    .unwrap();
    let written = write_report(&ReportOptions {
        runs_root: tmp.path().join("runs"),
        out_dir: tmp.path().join("out"),
        expected: vec![GridPoint {
            model: "model-c".into(),
            lr: 0.01,
            seed: 0,
            epochs: Some(4),
        }],
        settings: Vec::new(),
        provenance: Vec::new(),
        data: Vec::new(),
        experiment: Default::default(),
    })
    .unwrap();
    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(
        md.contains("| Model C | 0.01 | 0 | partial 3/4 (interrupted) | 3/4 | 25.00 | 25.00 (2) |"),
        "{md}"
    );
    // A partial run never counts as our result for Table 3.
    assert!(
        md.contains("| Model C | 954,730 | 9.74 | – | – | – | n/a | – | – | 1 partial |"),
        "{md}"
    );
}

#[test]
fn a_broken_metrics_file_is_listed_and_every_other_run_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    // A good run: final test acc 0.8753 -> 12.47 %.
    run_folder(
        &root,
        "model-a",
        0.1,
        0,
        &[(1.5, Some(0.7), 0.80), (1.0, Some(0.84), 0.8753)],
        Some(("done", None, 839_242)),
    );
    // A truncated metrics row (3 of 10 cells) and a truncated result.json.
    let broken = root.join("model-b/lr-0.1/seed-0");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("metrics.csv"), format!("{HEADER}\n1,0.1,1.0\n")).unwrap();
    let half_json = root.join("model-b/lr-0.05/seed-0");
    fs::create_dir_all(&half_json).unwrap();
    fs::write(
        half_json.join("result.json"),
        "{\"model\": \"model-b\", \"lr\"",
    )
    .unwrap();
    let written = write_report(&ReportOptions {
        runs_root: root.clone(),
        out_dir: tmp.path().join("out"),
        ..ReportOptions::default()
    })
    .unwrap();
    let md = fs::read_to_string(&written.markdown).unwrap();
    // The good run is reported with its number.
    assert!(md.contains("| Model A †"), "{md}");
    assert!(md.contains("| 12.47 | +0.00 | 0.1 |"), "{md}");
    // Both broken ones are listed with the file and the reason.
    assert_eq!(written.unreadable.len(), 2, "{:?}", written.unreadable);
    assert!(md.contains("## Runs that could not be read"), "{md}");
    assert!(md.contains("model-b/lr-0.1/seed-0/metrics.csv"), "{md}");
    assert!(md.contains("3 cells, expected 10"), "{md}");
    assert!(md.contains("model-b/lr-0.05/seed-0/result.json"), "{md}");
    // Counted as unreadable grid points, never as missing or done.
    assert!(md.contains("3 grid points, 1 done"), "{md}");
    assert!(
        md.contains("0 missing, 0 ended otherwise, 2 unreadable"),
        "{md}"
    );
    assert!(
        md.contains("| Model B | 885,610"),
        "Model B is in the paper's table: {md}"
    );
    assert!(md.contains("| 2 unreadable |"), "{md}");
    // table3.csv counts them as report.md does: every state has its column.
    let table3 = fs::read_to_string(&written.table3_csv).unwrap();
    assert!(
        table3
            .lines()
            .next()
            .unwrap()
            .ends_with(",done,diverged,partial,missing,ended,unreadable"),
        "{table3}"
    );
    let model_b = table3.lines().find(|l| l.starts_with("Model B,")).unwrap();
    assert!(model_b.ends_with(",0,0,0,0,0,2"), "{model_b}");
}

#[test]
fn folders_outside_the_grid_are_shown_apart_and_not_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    // In the grid: final test acc 0.8753 -> 12.47 %.
    run_folder(
        &root,
        "model-a",
        0.1,
        0,
        &[(1.5, Some(0.7), 0.80), (1.0, Some(0.84), 0.8753)],
        Some(("done", None, 839_242)),
    );
    // Not in the grid: a finished run with a lower error (10.00 %), which must not be chosen.
    run_folder(
        &root,
        "model-a",
        0.05,
        0,
        &[(1.0, Some(0.85), 0.90)],
        Some(("done", None, 839_242)),
    );
    // A folder with only a config.yaml of another configuration.
    let config_only = root.join("model-c/lr-0.01/seed-3");
    fs::create_dir_all(&config_only).unwrap();
    fs::write(config_only.join("config.yaml"), "model: model-c\n").unwrap();
    let written = write_report(&ReportOptions {
        runs_root: root.clone(),
        out_dir: tmp.path().join("out"),
        expected: vec![grid_point("model-a", 0.1, 0)],
        ..ReportOptions::default()
    })
    .unwrap();
    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(md.contains("from the run folders under"), "{md}");
    assert!(md.contains("1 grid points, 1 done"), "{md}");
    assert!(md.contains("| 12.47 | +0.00 | 0.1 |"), "{md}");
    let outside = md.split("## Runs outside the grid").nth(1).expect(&md);
    assert!(
        outside.contains("| Model A | 0.05 | 0 | done | 1/2 | 10.00 |"),
        "{md}"
    );
    assert!(outside.contains("| Model C | 0.01 | 3 | missing |"), "{md}");
    assert_eq!(written.summary.outside_grid.len(), 2);

    // Without a grid, the config-only folder is still not a grid point.
    let written = write_report(&ReportOptions {
        runs_root: root,
        out_dir: tmp.path().join("out2"),
        ..ReportOptions::default()
    })
    .unwrap();
    let md = fs::read_to_string(&written.markdown).unwrap();
    assert!(md.contains("2 grid points, 2 done"), "{md}");
    assert_eq!(written.summary.outside_grid.len(), 1);
    assert!(md.contains("| Model C | 0.01 | 3 | missing |"), "{md}");
}
