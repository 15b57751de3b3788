//! `allconv bench --paced`: measurements on request, one line of standard input each, as
//! `scripts/compare_pytorch.py` drives it (docs/benchmarks.md, paired rounds).

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{allconv, text};

/// `allconv bench --paced` on Strided-CNN-A (batch 2, one iteration per measurement) fed
/// `requests`; returns the finished process.
fn paced(requests: &str) -> std::process::Output {
    let mut child = allconv()
        .args([
            "bench",
            "--paced",
            "--models",
            "strided-cnn-a",
            "--batch-size",
            "2",
            "--iters",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn every_request_gets_one_answer_in_order() {
    let out = paced("strided-cnn-a eval\nSTRIDED-CNN-A train\nstrided-cnn-a eval\n");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    // "ready KERNELS" once everything is warm, then one answer per request.
    assert_eq!(lines.len(), 4, "{stdout}");
    let ready: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(ready[0], "ready", "{stdout}");
    assert!(
        ["avx512", "avx2", "portable"].contains(&ready[1]),
        "{stdout}"
    );
    for (line, mode) in lines[1..].iter().zip(["eval", "train", "eval"]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert!(fields[0].eq_ignore_ascii_case("strided-cnn-a"), "{line}");
        assert_eq!(fields[1], mode, "{line}");
        let rate: f64 = fields[2].parse().unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{line}");
    }
}

/// Feeds `requests`, expects the process to fail, and returns its standard error (checked to
/// hold no panic) and how many lines it answered before that.
fn paced_failure(requests: &str) -> (String, usize) {
    let out = paced(requests);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stderr, String::from_utf8_lossy(&out.stdout).lines().count())
}

#[test]
fn a_bad_request_is_an_error_naming_it() {
    let (stderr, answered) = paced_failure("strided-cnn-a eval\nstrided-cnn-a fly\n");
    assert!(
        stderr.contains("request 2") && stderr.contains("'fly'"),
        "{stderr}"
    );
    // "ready", then the first request's answer: it was answered before the bad one was read.
    assert_eq!(answered, 2);

    let (stderr, _) = paced_failure("model-a eval\n");
    assert!(
        stderr.contains("request 1") && stderr.contains("'model-a' is not among --models"),
        "{stderr}"
    );

    let (stderr, _) = paced_failure("eval\n");
    assert!(
        stderr.contains("expected 'MODEL eval' or 'MODEL train'"),
        "{stderr}"
    );
}

#[test]
fn paced_refuses_the_table_only_flags() {
    let out = allconv()
        .args(["bench", "--paced", "--augment", "--models", "strided-cnn-a"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--paced") && stderr.contains("--augment"),
        "{stderr}"
    );
}

#[test]
fn the_table_says_which_training_settings_it_measured() {
    // Training's defaults unless asked otherwise (docs/configuration.md: training.deterministic
    // true; the own engine), then the asked ones, on candle's engine too.
    let run = |extra: &[&str]| {
        let out = allconv()
            .args([
                "bench",
                "--models",
                "strided-cnn-a",
                "--batch-size",
                "2",
                "--iters",
                "1",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let default = run(&[]);
    assert!(
        default.contains("cuDNN algorithms deterministic only (training.deterministic: true)"),
        "{default}"
    );
    assert!(
        default.contains("conv engine own (im2col + GEMM)"),
        "{default}"
    );
    let asked = run(&["--deterministic", "false", "--conv-engine", "candle"]);
    assert!(
        asked.contains("cuDNN algorithms free (training.deterministic: false)"),
        "{asked}"
    );
    assert!(
        asked.contains("conv engine candle (candle's CPU conv2d)"),
        "{asked}"
    );
    assert!(
        asked.lines().any(|l| l.starts_with("strided-cnn-a ")),
        "{asked}"
    );
}
