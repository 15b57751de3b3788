//! `allconv check` with the check's test-only perturbation (`CheckOptions::perturb`, which the
//! binary never sets): a perturbed op fails the check and is named, a network that misses on its
//! first batch only is decided by the second, and a failure of one engine is reported and
//! recorded for that engine only (docs/protocol.md, Device check). The table rows the binary
//! prints are the report's cases; its summary lines and final error are [`outcome_line`] and
//! [`failure`].

use super::*;
use crate::cli::check_table::outcome_line;
use allconv_models::check::{run, Case};

/// The quick CPU check of `models` (all 12 when empty), as `allconv check --device cpu --quick`
/// runs it, in fp32 with each of `deterministic` and `engines`, `perturb` applied.
fn quick_cpu(
    models: &[&str],
    deterministic: Vec<bool>,
    engines: Vec<ConvEngine>,
    perturb: Option<&str>,
) -> CheckReport {
    run(&CheckOptions {
        device: candle_core::Device::Cpu,
        precisions: vec![Precision::Fp32],
        deterministic,
        engines,
        models: models.iter().map(|m| m.to_string()).collect(),
        quick: true,
        perturb: perturb.map(String::from),
    })
    .unwrap()
}

/// The ops of the cases that failed, one per failing row.
fn failed_rows(report: &CheckReport) -> Vec<&'static str> {
    report
        .cases
        .iter()
        .filter(|c| !c.pass)
        .map(|c| c.op)
        .collect()
}

#[test]
fn a_perturbed_op_fails_the_check_and_is_named() {
    for op in ["conv_bwd_filter", "dropout_mask", "step_grad"] {
        let report = quick_cpu(&[], vec![true], vec![ConvEngine::Own], Some(op));
        let error = failure("cpu", &report).unwrap_or_else(|| panic!("{op}: passed"));
        assert!(
            error.contains(&format!("device check on cpu failed: {op}")),
            "{op}: {error}"
        );
        let failed = failed_rows(&report);
        assert!(!failed.is_empty(), "{op}: no FAIL row");
        assert!(failed.iter().all(|f| *f == op), "{op}: {failed:?}");
    }
}

#[test]
fn a_network_that_misses_on_its_first_batch_only_is_decided_by_the_second() {
    let models = ["all-cnn-c", "model-a"];
    // The perturbation moves the first batch's gradients only (as a ReLU kink would): every
    // network misses there, is stepped again on the second batch, passes, and its rows say so.
    // A miss on both batches (`step_grad`, above) fails.
    let report = quick_cpu(
        &models,
        vec![true],
        vec![ConvEngine::Own],
        Some("step_grad_first_batch"),
    );
    assert_eq!(failure("cpu", &report), None, "{:?}", failed_rows(&report));
    let rows: Vec<&Case> = report
        .cases
        .iter()
        .filter(|c| c.op == "step_grad" && c.pass)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.shape.contains("2nd batch")),
        "{rows:?}"
    );
    // Unperturbed, the first batch decides: no row mentions a second one.
    let report = quick_cpu(&models, vec![true], vec![ConvEngine::Own], None);
    assert_eq!(failure("cpu", &report), None);
    assert!(
        report.cases.iter().all(|c| !c.shape.contains("2nd batch")),
        "{:?}",
        report.cases
    );
}

#[test]
fn a_failure_of_one_engine_is_reported_and_recorded_for_that_engine_only() {
    let report = quick_cpu(
        &["all-cnn-c"],
        vec![true, false],
        ALL_CONV_ENGINES.to_vec(),
        Some("conv_bwd_filter@own"),
    );
    let error = failure("cpu", &report).expect("the check failed");
    assert!(
        error.contains("device check on cpu failed: conv_bwd_filter"),
        "{error}"
    );
    // Each of the 4 settings has its own summary line; ours fails, candle's passes.
    let lines: Vec<String> = report.outcomes().iter().map(outcome_line).collect();
    for algorithms in ["deterministic", "free"] {
        let line = |engine: &str| {
            let prefix = format!("fp32, {algorithms} algorithms, {engine} engine: ");
            lines
                .iter()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no line {prefix}: {lines:?}"))
                .clone()
        };
        assert!(line("own").ends_with("FAIL: conv_bwd_filter"), "{lines:?}");
        assert!(line("candle").ends_with("PASS"), "{lines:?}");
    }
    // The record (`--record`) holds all four outcomes, failing or not (the device gate's
    // `auto` reads it).
    let dir = tempfile::tempdir().unwrap();
    let runs = allconv_runs::RunsRoot::new(dir.path());
    let identity = super::super::device_gate::identity(&candle_core::Device::Cpu).unwrap();
    let path = super::super::device_gate::record(&runs, &identity, &report.outcomes()).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path().join("device-check"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, [path]);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let settings = record["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 4, "{record}");
    for s in settings {
        let failed = s["failed_ops"].as_array().unwrap();
        match s["conv_engine"].as_str().unwrap() {
            "own" => assert_eq!(failed.len(), 1, "{record}"),
            "candle" => assert!(failed.is_empty(), "{record}"),
            other => panic!("engine {other}"),
        }
    }
    assert!(
        record["identity"].as_str().unwrap().starts_with("allconv "),
        "{record}"
    );
}
