//! `allconv models` and `allconv bench` from the command line.

use std::process::Command;

fn allconv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_allconv"))
        .args(args)
        .output()
        .expect("the allconv binary runs")
}

#[test]
fn models_prints_every_network_with_its_parameter_count() {
    let out = allconv(&["models", "--summary"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Counts from docs/protocol.md, "Parameter counts".
    for (name, count) in [
        ("model-a", "839,242"),
        ("convpool-cnn-b", "1,300,618"),
        ("all-cnn-c", "1,369,738"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name} in\n{text}"));
        assert!(line.contains(count), "{line}");
    }
    assert_eq!(text.lines().count(), 13, "header and 12 models:\n{text}");
}

#[test]
fn models_prints_output_size_after_every_layer() {
    let out = allconv(&["models", "--models", "ALL-CNN-C"]);
    assert!(out.status.success());
    // Column padding aside: one space between words.
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // The two stride-2 convolutions and the unpadded 3x3 (paper Table 2, All-CNN-C).
    assert!(
        text.contains("3x3 conv 96 stride 2 pad 1 + ReLU -> 96x16x16"),
        "{text}"
    );
    assert!(
        text.contains("3x3 conv 192 stride 2 pad 1 + ReLU -> 192x8x8"),
        "{text}"
    );
    assert!(
        text.contains("3x3 conv 192 pad 0 + ReLU -> 192x6x6"),
        "{text}"
    );
    assert!(text.contains("global average pool -> 10x1x1"), "{text}");
}

#[test]
fn unknown_model_lists_the_valid_names() {
    let out = allconv(&["models", "--models", "all-cnn-x"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("all-cnn-x") && err.contains("strided-cnn-b"),
        "{err}"
    );
}

#[test]
fn bench_prints_its_setting_and_one_row_per_model_with_its_parameters_and_rates() {
    let out = allconv(&[
        "bench",
        "--models",
        "strided-cnn-a",
        "--batch-size",
        "2",
        "--iters",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The header says what was measured: the device, the batch and the iterations asked for.
    assert!(
        text.lines()
            .any(|l| l.starts_with("device cpu, batch 2, 1 timed iterations")),
        "{text}"
    );
    assert!(text.contains("; CPU kernels "), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("strided-cnn-a"))
        .unwrap_or_else(|| panic!("no row in\n{text}"));
    // name, precision (fp32 only on the CPU), parameters (839242 per docs/protocol.md), eval rate
    // (+ per-CPU-second rate), training rate.
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], "fp32");
    assert_eq!(fields[2], "839242");
    let forward: f64 = fields[3].parse().unwrap();
    assert!(forward > 0.0, "{row}");
    // Eval then training, each images per second of wall time and, where /proc tells the CPU
    // time (Linux), "(N/cpu-s)" per CPU second: all finite and positive.
    let rates: Vec<f64> = fields[3..]
        .iter()
        .map(|f| f.trim_start_matches('(').trim_end_matches("/cpu-s)"))
        .map(|f| f.parse().unwrap_or_else(|_| panic!("'{f}' in {row}")))
        .collect();
    let expected = if cfg!(target_os = "linux") { 4 } else { 2 };
    assert_eq!(rates.len(), expected, "{row}");
    assert!(rates.iter().all(|r| r.is_finite() && *r > 0.0), "{row}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("strided-cnn"))
            .count(),
        1
    );

    // TF32 is a CUDA mode: asking for it on the CPU is refused with the reason.
    let out = allconv(&["bench", "--models", "strided-cnn-a", "--precision", "tf32"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TF32 exists only on CUDA"), "{err}");
}
