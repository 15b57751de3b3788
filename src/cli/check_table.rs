//! The device check with its table on standard output, as `allconv check` and the device gate
//! before training (`super::device_gate`) both run it: one row per case as it is computed,
//! cuDNN's choices, one line per setting and a summary.

use allconv_runs::outln;
use std::time::Instant;

use allconv_models::check::{self, Case, CheckOptions, CheckReport, SettingOutcome};
use anyhow::Context;

fn row(case: &Case) {
    let (precision, algorithms, engine) = match case.setting {
        Some(s) => (s.precision.name(), s.algorithms(), s.engine.name()),
        None => ("-", "-", "-"),
    };
    outln!(
        "{:<22} {:<44} {:<4} {:<4} {:<4} {:<6} {:>10.3e} {:>10.3e} {:>10} {}",
        case.op,
        case.shape,
        case.dtype,
        precision,
        algorithms,
        engine,
        case.max_abs,
        case.max_rel,
        case.tolerance.to_string(),
        if case.pass { "PASS" } else { "FAIL" }
    );
}

/// Runs the check with `options`, printing the table as it goes, cuDNN's choices and a summary
/// line; the report is returned whether or not every case passed.
pub fn run_and_print(options: &CheckOptions, device_name: &str) -> anyhow::Result<CheckReport> {
    let start = Instant::now();
    let settings = options.settings();
    outln!(
        "device check on {device_name}, {} setting(s): {} (pool, dropout and SGD once: no \
         setting changes them)",
        settings.len(),
        settings
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    outln!(
        "{:<22} {:<44} {:<4} {:<4} {:<4} {:<6} {:>10} {:>10} {:>10} result",
        "op",
        "shape",
        "type",
        "prec",
        "alg",
        "engine",
        "max abs",
        "max rel",
        "tolerance"
    );
    let report = check::run_with(options, &mut row).context("device check")?;
    if !report.plans.is_empty() {
        outln!("cuDNN's choices per convolution shape:");
        for plan in &report.plans {
            outln!("  {plan}");
        }
    }
    if settings.len() > 1 {
        for outcome in report.outcomes() {
            outln!("  {}", outcome_line(&outcome));
        }
    }
    let failed = report.cases.iter().filter(|c| !c.pass).count();
    outln!(
        "device check on {device_name} ({}): {} cases, {} passed, {failed} failed, {:.1} s",
        options
            .precisions
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(","),
        report.cases.len(),
        report.cases.len() - failed,
        start.elapsed().as_secs_f64()
    );
    Ok(report)
}

/// The summary of one setting, printed when several were checked: its cases and `PASS`, or
/// `FAIL: ` and its failing ops.
pub fn outcome_line(outcome: &SettingOutcome) -> String {
    format!(
        "{}: {} cases, {}",
        outcome.setting,
        outcome.cases,
        if outcome.failed_ops.is_empty() {
            "PASS".to_string()
        } else {
            format!("FAIL: {}", outcome.failed_ops.join(", "))
        }
    )
}
