//! `metrics.csv`: the header and rows the trainer writes read back exactly; bad files are named
//! with line and column.

use allconv_runs::{read_metrics, EpochMetrics, RunDir, RunsError, METRICS_HEADER};

fn row(epoch: usize, test_acc: Option<f64>) -> EpochMetrics {
    EpochMetrics {
        epoch,
        lr: 0.05,
        train_loss: 2.25,
        train_acc: 0.125,
        val_loss: None,
        val_acc: None,
        test_loss: test_acc.map(|_| 2.0),
        test_acc,
        seconds: 3.5,
        images_per_sec: 1000.0,
    }
}

#[test]
fn header_is_the_documented_contract() {
    // ARCHITECTURE.md, "Run folder": the header, exactly.
    assert_eq!(
        METRICS_HEADER,
        "epoch,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds,images_per_sec"
    );
}

#[test]
fn rows_round_trip_and_absent_values_are_empty_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path().join("run"));
    std::fs::create_dir_all(run.path()).unwrap();
    run.truncate_metrics(0).unwrap();
    run.append_metrics(&row(1, Some(0.25))).unwrap();
    run.append_metrics(&row(2, None)).unwrap();
    let text = std::fs::read_to_string(run.metrics_path()).unwrap();
    assert_eq!(
        text,
        format!("{METRICS_HEADER}\n1,0.05,2.25,0.125,,,2,0.25,3.5,1000\n2,0.05,2.25,0.125,,,,,3.5,1000\n")
    );
    assert_eq!(
        run.read_metrics().unwrap(),
        vec![row(1, Some(0.25)), row(2, None)]
    );
    assert_eq!(run.epochs_done(), 2);
    // 100 * (1 - 0.25) = 75.
    assert_eq!(row(1, Some(0.25)).test_error(), Some(75.0));
}

#[test]
fn truncation_keeps_exactly_the_checkpointed_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path());
    // A killed process left epoch 3 half written after its last checkpoint (epoch 2).
    std::fs::write(
        run.metrics_path(),
        format!("{METRICS_HEADER}\n1,0.1,2,0.1,,,,,1,1\n2,0.1,2,0.1,,,,,1,1\n3,0.1,2"),
    )
    .unwrap();
    run.truncate_metrics(2).unwrap();
    let epochs: Vec<usize> = run
        .read_metrics()
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect();
    assert_eq!(epochs, [1, 2]);
}

#[test]
fn nan_and_infinite_losses_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("metrics.csv");
    std::fs::write(
        &path,
        format!("{METRICS_HEADER}\n1,0.1,NaN,0.1,,,inf,0.1,3.0,120\n"),
    )
    .unwrap();
    let rows = read_metrics(&path).unwrap();
    assert!(rows[0].train_loss.is_nan());
    assert_eq!(rows[0].test_loss, Some(f64::INFINITY));
}

#[test]
fn a_bad_cell_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("metrics.csv");
    std::fs::write(
        &path,
        format!("{METRICS_HEADER}\n1,0.1,x,0.2,,,2.0,0.25,3.5,100\n"),
    )
    .unwrap();
    let err = read_metrics(&path).unwrap_err();
    assert!(matches!(err, RunsError::Metrics { line: 2, .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("metrics.csv") && message.contains("line 2"),
        "{message}"
    );
    assert!(message.contains("train_loss"), "{message}");

    std::fs::write(&path, format!("{METRICS_HEADER}\n1,0.1,1.0\n")).unwrap();
    let message = read_metrics(&path).unwrap_err().to_string();
    assert!(message.contains("3 cells, expected 10"), "{message}");
}

#[test]
fn a_wrong_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("metrics.csv");
    std::fs::write(&path, "epoch,loss\n1,2\n").unwrap();
    let message = read_metrics(&path).unwrap_err().to_string();
    assert!(message.contains("line 1"), "{message}");
    assert!(
        message.contains("expected \"epoch,lr,train_loss"),
        "{message}"
    );
}

#[test]
fn scheduled_learning_rates_display_as_written() {
    // 0.05 x 0.1 in f64 is 0.005000000000000001 (one ulp above 0.005): shown as 0.005.
    let scheduled = 0.05 * 0.1;
    assert_eq!(format!("{scheduled}"), "0.005000000000000001");
    assert_eq!(allconv_runs::display_lr(scheduled), "0.005");
    // 0.25 x 0.1 x 0.1 = 0.0025000000000000005 in f64.
    assert_eq!(allconv_runs::display_lr(0.25 * 0.1 * 0.1), "0.0025");
    // Exact decimals stay as they are, including small ones.
    assert_eq!(allconv_runs::display_lr(0.25), "0.25");
    assert_eq!(allconv_runs::display_lr(1e-5), "0.00001");
}
