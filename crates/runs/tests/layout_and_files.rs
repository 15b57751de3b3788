//! Paths of the layout, result.json and grid.json round trips, and the lenient scan.

use std::path::Path;

use allconv_runs::{
    run_dir, scan, CheckpointFiles, FolderState, GridConfig, GridFile, GridPoint, RunDir,
    RunResult, RunStatus, RunsError, RunsRoot, METRICS_HEADER,
};

fn result(model: &str, status: RunStatus) -> RunResult {
    RunResult {
        model: model.into(),
        lr: 0.1,
        seed: 0,
        status,
        reason: None,
        epochs_run: 2,
        epochs_planned: 2,
        final_test_error: Some(12.47),
        best_test_error: Some(12.0),
        best_test_epoch: Some(1),
        final_val_error: None,
        best_val_error: None,
        best_val_epoch: None,
        test_error_at_best_val: None,
        wall_seconds: 20.5,
        parameters: 839_242,
    }
}

#[test]
fn run_folder_names_use_the_shortest_decimal_lr() {
    // ARCHITECTURE.md: `<out>/<model>/lr-<lr>/seed-<seed>/`.
    let runs = Path::new("runs");
    assert_eq!(
        run_dir(runs, "model-a", 0.05, 3),
        Path::new("runs/model-a/lr-0.05/seed-3")
    );
    assert_eq!(
        run_dir(runs, "model-a", 0.1, 0),
        Path::new("runs/model-a/lr-0.1/seed-0")
    );
    let root = RunsRoot::new("runs");
    assert_eq!(root.grid_path(), Path::new("runs/grid.json"));
    assert_eq!(root.report_dir(), Path::new("runs/report"));
    let run = root.run("all-cnn-c", 0.25, 1);
    assert_eq!(
        run.result_path(),
        Path::new("runs/all-cnn-c/lr-0.25/seed-1/result.json")
    );
    assert_eq!(
        run.checkpoint().state_path(),
        Path::new("runs/all-cnn-c/lr-0.25/seed-1/checkpoint/state.json")
    );
    assert_eq!(CheckpointFiles::weights_name(7), "weights-0007.safetensors");
    assert_eq!(
        CheckpointFiles::momentum_name(12),
        "momentum-0012.safetensors"
    );
    // A checkpoint after step 40 of epoch 4 (3 epochs done); step 0 is the epoch-end name.
    assert_eq!(
        CheckpointFiles::weights_name_at(3, 40),
        "weights-0003-step-000040.safetensors"
    );
    assert_eq!(
        CheckpointFiles::momentum_name_at(3, 40),
        "momentum-0003-step-000040.safetensors"
    );
    assert_eq!(
        CheckpointFiles::weights_name_at(3, 0),
        "weights-0003.safetensors"
    );
    assert!(CheckpointFiles::is_replaceable(
        "weights-0003-step-000040.safetensors"
    ));
    assert!(CheckpointFiles::is_replaceable("weights-0001.safetensors"));
    assert!(CheckpointFiles::is_replaceable("state.json.tmp-42"));
    assert!(!CheckpointFiles::is_replaceable("state.json"));
}

#[test]
fn result_round_trips_and_keeps_an_unknown_status() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path());
    assert_eq!(run.result().unwrap(), None);
    assert_eq!(run.state(), FolderState::Open { epochs_done: 0 });
    let done = result("model-a", RunStatus::Done);
    run.write_result(&done).unwrap();
    assert_eq!(run.result().unwrap(), Some(done.clone()));
    assert_eq!(run.state(), FolderState::Ended(Box::new(done.clone())));
    let json = std::fs::read_to_string(run.result_path()).unwrap();
    assert!(json.contains("\"status\": \"done\""), "{json}");
    assert_eq!(
        done.summary(),
        "model-a lr 0.1 seed 0: done, 2/2 epochs, final test error 12.47%, best 12.00% (epoch 1), 20 s"
    );

    std::fs::write(
        run.result_path(),
        json.replace("\"done\"", "\"cancelled\"")
            .replace("\"reason\": null,", ""),
    )
    .unwrap();
    let other = run.result().unwrap().unwrap();
    assert_eq!(other.status, RunStatus::Other("cancelled".into()));
    assert_eq!(other.reason, None);
}

#[test]
fn grid_files_round_trip_and_name_missing_points() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("grid.json");
    let mut embedded = serde_json::Map::new();
    embedded.insert("schedule".into(), serde_json::json!({"epochs": 7}));
    let grid = GridFile {
        config: GridConfig::Embedded(embedded),
        points: (0..3)
            .map(|index| GridPoint {
                index,
                model: "model-a".into(),
                lr: 0.1,
                seed: index as u64,
            })
            .collect(),
    };
    grid.save(&path).unwrap();
    assert_eq!(GridFile::load(&path).unwrap(), grid);
    assert_eq!(grid.point(2).unwrap().seed, 2);
    let err = grid.point(8).unwrap_err().to_string();
    assert!(err.contains("index 8") && err.contains("0..=2"), "{err}");

    std::fs::write(&path, r#"{"config": "exp.yaml", "points": []}"#).unwrap();
    assert_eq!(
        GridFile::load(&path).unwrap().config,
        GridConfig::Path("exp.yaml".into())
    );
    std::fs::write(&path, r#"{"config": "exp.yaml", "points": [], "extra": 1}"#).unwrap();
    let err = GridFile::load(&path).unwrap_err().to_string();
    assert!(err.contains("grid.json") && err.contains("extra"), "{err}");
}

#[test]
fn a_corrupt_run_is_an_error_value_and_the_scan_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let root = RunsRoot::new(tmp.path());
    let good = root.run("model-a", 0.1, 0);
    std::fs::create_dir_all(good.path()).unwrap();
    good.truncate_metrics(0).unwrap();
    good.write_result(&result("model-a", RunStatus::Diverged))
        .unwrap();
    let bad = root.run("model-b", 0.1, 0);
    std::fs::create_dir_all(bad.path()).unwrap();
    std::fs::write(bad.metrics_path(), format!("{METRICS_HEADER}\n1,0.1\n")).unwrap();
    // Neither a run folder nor an error: no run file inside, or not named lr-*/seed-*.
    std::fs::create_dir_all(root.path().join("model-c/lr-0.1/seed-0")).unwrap();
    std::fs::create_dir_all(root.path().join("report/figures")).unwrap();

    let found = scan(root.path()).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].model.as_str(), found[0].lr, found[0].seed),
        ("model-a", 0.1, 0)
    );
    let record = found[0].read.as_ref().unwrap();
    assert_eq!(record.result.as_ref().unwrap().status, RunStatus::Diverged);
    assert!(record.metrics.is_empty());
    match &found[1].read {
        Err(RunsError::Metrics { path, line: 2, .. }) => assert_eq!(path, &bad.metrics_path()),
        other => panic!("expected the metrics error of model-b, got {other:?}"),
    }

    let missing = scan(&tmp.path().join("nothing")).unwrap_err().to_string();
    assert!(missing.contains("does not exist"), "{missing}");
}
