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
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model 'all-cnn-d'"));
    let out = check(&["--device", "gpu"], None);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown device `gpu`, expected `cpu`, `cuda` or `cuda:N`"));
}
