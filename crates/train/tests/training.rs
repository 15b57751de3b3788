//! A short deterministic run on synthetic data: the loss falls, and the run folder follows the
//! contract the report reads (allconv-runs).

mod common;

use std::path::Path;

use allconv_train::{
    run, EpochMetrics, ExperimentConfig, RunDir, RunOptions, RunResult, RunStatus, METRICS_HEADER,
};

#[test]
fn short_run_lowers_the_loss_and_writes_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 20, 50);
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 4);
    config.schedule.milestones = vec![3];
    config.training.dropout = false;
    // Strided-CNN-A is the cheapest of the 12 networks; case-insensitive name.
    let rc = common::run_config(&config, "Strided-CNN-A", 0.01);
    let result = run(&rc, &RunOptions::default()).unwrap();

    let dir = RunDir::new(rc.run_dir());
    assert!(
        dir.path().ends_with("strided-cnn-a/lr-0.01/seed-0"),
        "{}",
        dir.path().display()
    );
    let rows = assert_the_loss_falls(&dir);
    let test_acc = rows[3].test_acc.unwrap();
    assert_result_contract(&dir, &result, test_acc);

    // config.yaml: resolved config plus provenance with the data checksums.
    let yaml = std::fs::read_to_string(dir.config_path()).unwrap();
    let md5 = allconv_cifar::checksums(&data).unwrap();
    let test_md5 = &md5["test_batch.bin"];
    assert!(yaml.contains(test_md5.as_str()), "{yaml}");
    assert!(
        yaml.contains("git_revision") && yaml.contains("device: cpu"),
        "{yaml}"
    );
    assert!(dir.final_weights_path().exists());

    // A finished run is skipped: same result, no new rows.
    let again = run(&rc, &RunOptions::default()).unwrap();
    assert_eq!(again, result);
    assert_eq!(dir.read_metrics().unwrap().len(), 4);

    assert_init_from_starts_where_the_run_ended(tmp.path(), &config, &dir, &rows);
}

/// The four rows of `metrics.csv`: the rate schedule, a falling loss, no validation columns.
fn assert_the_loss_falls(dir: &RunDir) -> Vec<EpochMetrics> {
    let rows = dir.read_metrics().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // milestone 3: epochs 1-3 (0-based 0-2) at 0.01, epoch 4 at 0.001
    assert_eq!(
        rows.iter().map(|r| r.lr).collect::<Vec<_>>()[..3],
        [0.01; 3]
    );
    assert!((rows[3].lr - 0.001).abs() < 1e-15);
    // The synthetic classes are separable: 4 epochs of SGD must bring the training loss well
    // below its start near ln(10) = 2.303 and the test accuracy well above chance (10%).
    assert!(
        rows[0].train_loss > 2.0,
        "first epoch loss {}",
        rows[0].train_loss
    );
    assert!(
        rows[3].train_loss < 0.7 * rows[0].train_loss,
        "loss did not fall: {:?}",
        rows.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    let test_acc = rows[3].test_acc.unwrap();
    assert!(test_acc > 0.3, "test accuracy {test_acc}");
    assert!(rows
        .iter()
        .all(|r| r.val_loss.is_none() && r.val_acc.is_none()));

    // metrics.csv: exact header, empty val columns without a validation split.
    let csv = std::fs::read_to_string(dir.metrics_path()).unwrap();
    assert_eq!(csv.lines().next().unwrap(), METRICS_HEADER);
    assert!(csv.lines().nth(1).unwrap().contains(",,,"), "{csv}");
    rows
}

/// `result.json`: exactly the contract's fields, errors in percent.
fn assert_result_contract(dir: &RunDir, result: &RunResult, test_acc: f64) {
    assert_eq!(result.status, RunStatus::Done);
    assert_eq!(result.epochs_run, 4);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.result_path()).unwrap()).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    let mut expected = vec![
        "model",
        "lr",
        "seed",
        "status",
        "reason",
        "epochs_run",
        "epochs_planned",
        "final_test_error",
        "best_test_error",
        "best_test_epoch",
        "final_val_error",
        "best_val_error",
        "best_val_epoch",
        "test_error_at_best_val",
        "wall_seconds",
        "parameters",
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(json["status"], "done");
    assert_eq!(json["model"], "strided-cnn-a");
    assert!(json["reason"].is_null() && json["best_val_error"].is_null());
    let final_error = json["final_test_error"].as_f64().unwrap();
    assert!((final_error - 100.0 * (1.0 - test_acc)).abs() < 1e-9);
    // parameter count of Strided-CNN-A from the paper's architecture table (docs/protocol.md)
    assert_eq!(json["parameters"], 839_242);
}

/// `training.init_from`: a run started from the final weights of `dir` begins where that run
/// ended (`rows`), and weights of another network are refused naming the tensor.
fn assert_init_from_starts_where_the_run_ended(
    tmp: &Path,
    config: &ExperimentConfig,
    dir: &RunDir,
    rows: &[EpochMetrics],
) {
    // --init-from: a run started from these final weights begins where this one ended, far below
    // the first epoch's loss of a fresh start.
    let mut finetune = config.clone();
    finetune.out.runs = tmp.join("finetune");
    finetune.schedule.epochs = 1;
    finetune.training.init_from = Some(dir.final_weights_path());
    let ft = common::run_config(&finetune, "strided-cnn-a", 0.001);
    run(&ft, &RunOptions::default()).unwrap();
    let ft_rows = RunDir::new(ft.run_dir()).read_metrics().unwrap();
    assert!(
        ft_rows[0].train_loss < 0.7 * rows[0].train_loss
            && ft_rows[0].train_loss < 1.2 * rows[3].train_loss,
        "fine-tuning epoch loss {} vs fresh first epoch {} and last epoch {}",
        ft_rows[0].train_loss,
        rows[0].train_loss,
        rows[3].train_loss
    );
    // Weights of another network are refused, naming the tensor.
    let wrong = common::run_config(&finetune, "all-cnn-c", 0.001);
    let err = run(&wrong, &RunOptions::default()).unwrap_err().to_string();
    assert!(
        err.contains("weights.safetensors") && err.contains("conv1.weight"),
        "{err}"
    );
}
