//! `allconv check --device cpu --quick`: passes as built, and fails naming the op when the
//! test-only hook perturbs one op's result (docs/protocol.md, Device check).

use std::process::{Command, Output};

fn check(args: &[&str], perturb: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_allconv"));
    cmd.arg("check")
        .args(args)
        .env_remove("ALLCONV_CHECK_PERTURB");
    if let Some(op) = perturb {
        cmd.env("ALLCONV_CHECK_PERTURB", op);
    }
    cmd.output().expect("the allconv binary runs")
}

/// The op column of every row with `result` (PASS or FAIL).
fn ops_with(stdout: &str, result: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.ends_with(result))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn quick_check_passes_on_the_cpu_with_every_op_covered() {
    let out = check(&["--device", "cpu", "--quick"], None);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The networks use 7 (kernel, stride, pad) geometries: 3x3 s1 p0/p1, 3x3 s2 p1, 5x5 s1/s2
    // p2, 1x1 s1/s2 p0 (docs/protocol.md, Networks). Quick: 2 shapes x (plain, ReLU) x
    // (forward, 3 backward) = 16 rows each, 112; pool 2 shapes x 2; dropout 2; SGD 2 x
    // (weights, momentum); 12 networks x (loss, gradients) -> 112 + 4 + 2 + 4 + 24 = 146.
    assert!(
        stdout.contains("146 cases, 146 passed, 0 failed"),
        "{stdout}"
    );
    let passed = ops_with(&stdout, "PASS");
    for op in [
        "conv_fwd",
        "conv_relu_fwd",
        "conv_bwd_data",
        "conv_bwd_filter",
        "conv_bwd_bias",
        "conv_relu_bwd_data",
        "conv_relu_bwd_filter",
        "conv_relu_bwd_bias",
        "pool_fwd",
        "pool_bwd",
        "dropout_mask",
        "sgd_step",
        "step_loss",
        "step_grad",
    ] {
        assert!(passed.iter().any(|p| p == op), "no PASS row for {op}");
    }
    assert_eq!(passed.iter().filter(|p| *p == "step_grad").count(), 12);
}

#[test]
fn a_perturbed_op_fails_the_check_and_is_named() {
    for op in ["conv_bwd_filter", "dropout_mask", "step_grad"] {
        let out = check(&["--device", "cpu", "--quick"], Some(op));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{op}: passed\n{stdout}");
        assert!(
            stderr.contains(&format!("device check on cpu failed: {op}")),
            "{op}: {stderr}"
        );
        let failed = ops_with(&stdout, "FAIL");
        assert!(!failed.is_empty(), "{op}: no FAIL row");
        assert!(failed.iter().all(|f| f == op), "{op}: {failed:?}");
    }
}

#[test]
fn a_network_that_misses_on_its_first_batch_only_is_decided_by_the_second() {
    let args = [
        "--device",
        "cpu",
        "--quick",
        "--models",
        "all-cnn-c,model-a",
    ];
    // The hook moves the first batch's gradients only (as a ReLU kink would): every network
    // misses there, is stepped again on the second batch, passes, and its rows say so. A miss
    // on both batches (`step_grad`, above) fails.
    let out = check(&args, Some("step_grad_first_batch"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("step_grad") && l.ends_with("PASS"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows.iter().all(|r| r.contains("2nd batch")), "{stdout}");
    // Unperturbed, the first batch decides: no row mentions a second one.
    let out = check(&args, None);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && !stdout.contains("2nd batch"),
        "{stdout}"
    );
}

#[test]
fn tf32_on_the_cpu_and_unknown_models_are_refused_clearly() {
    let out = check(&["--precision", "tf32", "--quick"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tf32 applies to CUDA only"));
    let out = check(&["--models", "all-cnn-d", "--quick"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model `all-cnn-d`"));
    let out = check(&["--device", "gpu"], None);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown device `gpu`, expected `cpu`, `cuda` or `cuda:N`"));
}

#[test]
fn the_candle_engine_is_compared_with_the_direct_loops_on_the_cpu() {
    // docs/protocol.md, Device check: `--conv-engine candle` runs every convolution and step
    // case on candle's conv2d; the odd shapes include strided convolutions of 9x7 and 7x10
    // inputs, whose last column or row no window reaches.
    let out = check(
        &["--device", "cpu", "--quick", "--conv-engine", "candle"],
        None,
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fp32, deterministic algorithms, candle engine"),
        "{stdout}"
    );
    // The same 146 cases as our own engine's (see above).
    assert!(
        stdout.contains("146 cases, 146 passed, 0 failed"),
        "{stdout}"
    );
    let candle_rows = stdout
        .lines()
        .filter(|l| l.ends_with("PASS") && l.split_whitespace().any(|w| w == "candle"))
        .count();
    // Every convolution (112) and step (24) row ran on candle's engine.
    assert_eq!(candle_rows, 136, "{stdout}");
}

#[test]
fn a_failure_of_one_engine_is_reported_and_recorded_for_that_engine_only() {
    let runs = tempfile::tempdir().unwrap();
    let record = runs.path().to_str().unwrap().to_string();
    let args = [
        "--device",
        "cpu",
        "--quick",
        "--models",
        "all-cnn-c",
        "--conv-engine",
        "both",
        "--deterministic",
        "both",
        "--runs",
        &record,
    ];
    let out = check(&args, Some("conv_bwd_filter@own"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("device check on cpu failed: conv_bwd_filter"),
        "{stderr}"
    );
    // Each of the 4 settings has its own summary line; ours fails, candle's passes.
    for algorithms in ["deterministic", "free"] {
        let own = format!("fp32, {algorithms} algorithms, own engine: ");
        let candle = format!("fp32, {algorithms} algorithms, candle engine: ");
        let line = |prefix: &str| {
            stdout
                .lines()
                .find(|l| l.trim_start().starts_with(prefix))
                .unwrap_or_else(|| panic!("no line {prefix}\n{stdout}"))
                .to_string()
        };
        assert!(line(&own).ends_with("FAIL: conv_bwd_filter"), "{stdout}");
        assert!(line(&candle).ends_with("PASS"), "{stdout}");
    }
    // The record holds all four outcomes, failing or not (the device gate's `auto` reads it).
    let files: Vec<_> = std::fs::read_dir(runs.path().join("device-check"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
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

#[test]
fn help_shows_the_settings_training_uses() {
    for command in ["check", "bench"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_allconv"))
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{help}");
        for flag in ["--deterministic", "training.deterministic", "--conv-engine"] {
            assert!(
                help.contains(flag),
                "{command} --help lacks {flag}:\n{help}"
            );
        }
    }
}
