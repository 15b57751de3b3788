//! `allconv check --device cpu --quick`: passes as built, refuses what it cannot check, and
//! shows the settings training uses (docs/protocol.md, Device check). That a perturbed op fails
//! the check, and how (the op named, the second batch, one engine only), is tested in-process
//! with the check's test-only `CheckOptions::perturb` (`src/cli/device_gate/tests.rs`).

use std::process::{Command, Output};

fn check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allconv"))
        .arg("check")
        .args(args)
        .output()
        .expect("the allconv binary runs")
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
    let out = check(&["--device", "cpu", "--quick"]);
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
fn tf32_on_the_cpu_and_unknown_models_are_refused_clearly() {
    let out = check(&["--precision", "tf32", "--quick"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tf32 applies to CUDA only"));
    let out = check(&["--models", "all-cnn-d", "--quick"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model `all-cnn-d`"));
    let out = check(&["--device", "gpu"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown device `gpu`, expected `cpu`, `cuda` or `cuda:N`"));
}

#[test]
fn the_candle_engine_is_compared_with_the_direct_loops_on_the_cpu() {
    // docs/protocol.md, Device check: `--conv-engine candle` runs every convolution and step
    // case on candle's conv2d; the odd shapes include strided convolutions of 9x7 and 7x10
    // inputs, whose last column or row no window reaches.
    let out = check(&["--device", "cpu", "--quick", "--conv-engine", "candle"]);
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
