//! `allconv evaluate` and `allconv visualize` on the weights of a tiny training run on
//! synthetic data (docs/protocol.md, "Visualising what the networks learned").

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn allconv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allconv"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Trains the one-point tiny grid for 2 epochs; returns (temp dir, run folder, data folder).
fn trained() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = common::tiny_grid(tmp.path(), 2);
    ok(&allconv(&[
        "train",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
    ]));
    let run = runs.join("strided-cnn-a/lr-0.01/seed-0");
    assert!(run.join("weights.safetensors").exists());
    let data = tmp.path().join("data");
    (tmp, run, data)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn evaluate_gives_the_error_the_trainer_recorded_and_names_bad_tensors() {
    let (tmp, run, data) = trained();
    let out = ok(&allconv(&["evaluate", "--run", s(&run), "--json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("result.json")).unwrap()).unwrap();
    // Same weights, same test split: the trainer's last evaluation.
    let recorded = result["final_test_error"].as_f64().unwrap();
    assert!((report["test_error"].as_f64().unwrap() - recorded).abs() < 1e-9);
    assert_eq!(report["test_images"], 20);
    // Per-class accuracies weighted by the class counts of the test labels give the overall one.
    let test = allconv_cifar::load_dir(&data).unwrap().test;
    let counts = allconv_cifar::label_counts(&test.labels);
    let correct: f64 = (0..10)
        .map(|k| report["class_accuracy"][k].as_f64().unwrap_or(0.0) * counts[k] as f64)
        .sum();
    assert!((100.0 * (1.0 - correct / 20.0) - recorded).abs() < 1e-9);

    // The same file as `--weights` with the scale preprocessing it was trained with.
    let weights = run.join("weights.safetensors");
    let args = [
        "evaluate",
        "--weights",
        s(&weights),
        "--model",
        "strided-cnn-a",
        "--data-dir",
        s(&data),
        "--preprocessing",
        "scale",
        "--json",
    ];
    let again: serde_json::Value = serde_json::from_str(&ok(&allconv(&args))).unwrap();
    assert_eq!(again["test_error"], report["test_error"]);

    // Another model's shapes: the first differing tensor and both shapes are named. All-CNN-A's
    // conv2 is 3x3 96 where Strided-CNN-A's is 5x5 192 (`allconv models`). The tensors are
    // written without our metadata, as another tool writes them (with it, the recorded model is
    // named first: tests/weights_metadata.rs).
    let plain = tmp.path().join("plain.safetensors");
    candle_core::safetensors::save(
        &candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap(),
        &plain,
    )
    .unwrap();
    let err = failed(&allconv(&[
        "evaluate",
        "--weights",
        s(&plain),
        "--model",
        "all-cnn-a",
        "--data-dir",
        s(&data),
    ]));
    assert!(
        err.contains("tensor `conv2.")
            && err.contains("has shape [192")
            && err.contains("the model expects [96"),
        "{err}"
    );

    // A tensor missing: named with the shape the model expects (conv1.bias of 96 units).
    let mut tensors = candle_core::safetensors::load(&weights, &candle_core::Device::Cpu).unwrap();
    tensors.remove("conv1.bias");
    let partial = tmp.path().join("partial.safetensors");
    candle_core::safetensors::save(&tensors, &partial).unwrap();
    let err = failed(&allconv(&[
        "evaluate",
        "--weights",
        s(&partial),
        "--model",
        "strided-cnn-a",
        "--data-dir",
        s(&data),
    ]));
    assert!(
        err.contains("no tensor for parameter `conv1.bias` (the model expects shape [96])"),
        "{err}"
    );
}

#[test]
fn visualize_writes_the_stated_grid_with_the_original_pixels_first() {
    let (tmp, run, data) = trained();
    let out = tmp.path().join("pictures");
    ok(&allconv(&[
        "visualize",
        "--run",
        s(&run),
        "--images",
        "test:0..3",
        "--layer",
        "conv2",
        "--unit",
        "5",
        "--out",
        s(&out),
    ]));
    let png = image::open(out.join("conv2-unit5.png")).unwrap().to_rgb8();
    // 3 rows (images), 4 columns (original + 3 methods); cells 32 * zoom 3 = 96 px, 2 px gaps.
    assert_eq!(png.dimensions(), (4 * 96 + 5 * 2, 3 * 96 + 4 * 2));
    let test = allconv_cifar::load_dir(&data).unwrap().test;
    for row in 0..3u32 {
        let raw = &test.images[row as usize * 3072..][..3072];
        for y in 0..32u32 {
            for x in 0..32u32 {
                let i = (y * 32 + x) as usize;
                let want = [raw[i], raw[1024 + i], raw[2048 + i]];
                // Every screen pixel of the enlarged image pixel, at cell (row, 0).
                for (dy, dx) in [(0, 0), (2, 2), (1, 0)] {
                    let px = png.get_pixel(2 + x * 3 + dx, 2 + row * 98 + y * 3 + dy).0;
                    assert_eq!(px, want, "row {row}, pixel ({x}, {y})");
                }
            }
        }
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    let entry = &index["pictures"][0];
    assert_eq!(entry["file"], "conv2-unit5.png");
    assert_eq!(
        (entry["width"].clone(), entry["height"].clone()),
        (394.into(), 296.into())
    );
    assert_eq!(entry["rows"][1]["image"], "test:1");
    assert_eq!(entry["columns"][3], "guided");

    // A PNG of test image 1 gives the same row as test image 1 (same fitted preprocessing).
    let mut img = image::RgbImage::new(32, 32);
    let raw = &test.images[3072..2 * 3072];
    for (i, p) in img.pixels_mut().enumerate() {
        *p = image::Rgb([raw[i], raw[1024 + i], raw[2048 + i]]);
    }
    let file = tmp.path().join("one.png");
    img.save(&file).unwrap();
    let out2 = tmp.path().join("from-png");
    let args = [
        "visualize",
        "--run",
        s(&run),
        "--image",
        s(&file),
        "--layer",
        "conv2",
        "--unit",
        "5",
        "--out",
        s(&out2),
    ];
    ok(&allconv(&args));
    let single = image::open(out2.join("conv2-unit5.png")).unwrap().to_rgb8();
    assert_eq!(single.dimensions(), (394, 96 + 2 * 2));
    for y in 0..100 {
        for x in 0..394 {
            assert_eq!(
                single.get_pixel(x, y),
                png.get_pixel(x, 98 + y),
                "({x}, {y})"
            );
        }
    }

    // The paper's layout: per unit, the 9 most activating of the 20 test images (largest
    // first), then their guided reconstructions: 18 columns, one row per unit.
    let patches = tmp.path().join("patches");
    ok(&allconv(&[
        "visualize",
        "--run",
        s(&run),
        "--top-patches",
        "--layer",
        "conv2",
        "--units",
        "0,5",
        "--search",
        "20",
        "--out",
        s(&patches),
    ]));
    let grid = image::open(patches.join("conv2-top-patches.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(grid.dimensions(), (18 * 96 + 19 * 2, 2 * 96 + 3 * 2));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(patches.join("index.json")).unwrap())
            .unwrap();
    for (r, row) in index["pictures"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let acts: Vec<f64> = row["activations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_f64().unwrap())
            .collect();
        assert_eq!(acts.len(), 9);
        assert!(acts.windows(2).all(|w| w[0] >= w[1]), "{acts:?}");
        // Its first cell shows the test image it names.
        let name = row["images"][0].as_str().unwrap();
        let i: usize = name.strip_prefix("test:").unwrap().parse().unwrap();
        let raw = &test.images[i * 3072..][..3072];
        for p in [0usize, 33, 1023] {
            let (x, y) = ((p % 32) as u32, (p / 32) as u32);
            let want = [raw[p], raw[1024 + p], raw[2048 + p]];
            assert_eq!(grid.get_pixel(2 + 3 * x, 2 + r as u32 * 98 + 3 * y).0, want);
        }
    }

    // A picture of another size is refused with what was expected.
    image::RgbImage::new(16, 32).save(&file).unwrap();
    let err = failed(&allconv(&args));
    assert!(
        err.contains("16x32 pixels, expected a 32x32 RGB picture"),
        "{err}"
    );

    // A folder holding someone else's file is not written into.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let err = failed(&allconv(&[
        "visualize",
        "--run",
        s(&run),
        "--class",
        "3",
        "--out",
        s(&foreign),
    ]));
    assert!(
        err.contains("holds files not written by `allconv visualize`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn flags_that_would_be_ignored_are_refused() {
    // --units and --search only mean something with --top-patches, which searches the test set
    // itself: --images / --image beside it would be silently ignored, so both are refused.
    let run = ["visualize", "--run", "no-such-run", "--layer", "conv1"];
    for (extra, names) in [
        (&["--units", "0,1"][..], ["--units", "--top-patches"]),
        (
            &["--unit", "0", "--search", "50"][..],
            ["--search", "--top-patches"],
        ),
        (
            &["--top-patches", "--units", "0", "--images", "test:0..2"][..],
            ["--top-patches", "--images"],
        ),
        (
            &["--top-patches", "--units", "0", "--image", "x.png"][..],
            ["--top-patches", "--image"],
        ),
    ] {
        let args: Vec<&str> = run.iter().chain(extra).copied().collect();
        let err = failed(&allconv(&args));
        assert!(
            names.iter().all(|n| err.contains(n)) && !err.contains("no-such-run"),
            "{extra:?}: {err}"
        );
    }
}

/// Unit `unit` of the first convolution of `model` on one image scaled to [0, 1], computed here
/// with plain loops from the weights: `(largest output after the ReLU, its row, its column)`,
/// the first such position on ties (row-major).
fn conv1_peak(
    weights: &std::collections::HashMap<String, candle_core::Tensor>,
    model: &str,
    raw: &[u8],
    unit: usize,
) -> (f64, usize, usize) {
    let spec = allconv_models::spec(model, &Default::default()).unwrap();
    let (k, stride, pad) = spec
        .layers
        .iter()
        .find_map(|l| match *l {
            allconv_models::LayerSpec::Conv {
                kernel,
                stride,
                pad,
                ..
            } => Some((kernel, stride, pad)),
            _ => None,
        })
        .unwrap();
    let w = weights["conv1.weight"]
        .get(unit)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = weights["conv1.bias"].to_vec1::<f32>().unwrap()[unit] as f64;
    let size = (32 + 2 * pad - k) / stride + 1;
    let mut best = (f64::NEG_INFINITY, 0, 0);
    for r in 0..size {
        for c in 0..size {
            let mut sum = b;
            for ch in 0..3 {
                for dy in 0..k {
                    for dx in 0..k {
                        let (y, x) = (
                            (r * stride + dy) as isize - pad as isize,
                            (c * stride + dx) as isize - pad as isize,
                        );
                        if (0..32).contains(&y) && (0..32).contains(&x) {
                            let pixel =
                                raw[ch * 1024 + y as usize * 32 + x as usize] as f64 / 255.0;
                            sum += w[(ch * k + dy) * k + dx] as f64 * pixel;
                        }
                    }
                }
            }
            let out = sum.max(0.0);
            if out > best.0 {
                best = (out, r, c);
            }
        }
    }
    best
}

#[test]
fn visualize_records_each_units_position_and_says_when_it_never_fired() {
    // docs/protocol.md, "Visualising what the networks learned": a unit's reconstruction is the
    // gradient at its largest output; index.json says where that was, and a unit silent in an
    // image (0 everywhere, so "largest" is the first position) is captioned "unit inactive".
    let (tmp, run, data) = trained();
    let mut weights =
        candle_core::safetensors::load(run.join("weights.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    // Unit 0 of conv1 silenced: its bias -1e6 outweighs any input, so its ReLU output is 0.
    let mut bias = weights["conv1.bias"].to_vec1::<f32>().unwrap();
    bias[0] = -1e6;
    let n = bias.len();
    weights.insert(
        "conv1.bias".into(),
        candle_core::Tensor::from_vec(bias, n, &candle_core::Device::Cpu).unwrap(),
    );
    let silenced = tmp.path().join("silenced.safetensors");
    candle_core::safetensors::save(&weights, &silenced).unwrap();
    let test = allconv_cifar::load_dir(&data).unwrap().test;
    for unit in [0usize, 1] {
        let out = tmp.path().join(format!("unit{unit}"));
        ok(&allconv(&[
            "visualize",
            "--weights",
            s(&silenced),
            "--model",
            "strided-cnn-a",
            "--data-dir",
            s(&data),
            "--preprocessing",
            "scale",
            "--images",
            "test:0..3",
            "--layer",
            "conv1",
            "--unit",
            &unit.to_string(),
            "--out",
            s(&out),
        ]));
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap())
                .unwrap();
        let rows = index["pictures"][0]["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let mut fired = 0;
        for (i, row) in rows.iter().enumerate() {
            let (activation, r, c) = conv1_peak(
                &weights,
                "strided-cnn-a",
                &test.images[i * 3072..][..3072],
                unit,
            );
            let peak = &row["peak"];
            let target = row["target"].as_str().unwrap();
            assert_eq!(
                peak["position"],
                serde_json::json!([r, c]),
                "unit {unit}, {row}"
            );
            assert_eq!(peak["fired"], activation > 0.0, "unit {unit}, {row}");
            if activation > 0.0 {
                fired += 1;
                assert!((peak["activation"].as_f64().unwrap() - activation).abs() < 1e-4);
                assert!(!target.contains("inactive"), "{target}");
            } else {
                assert_eq!((r, c), (0, 0), "silent: the first position");
                assert!(target.contains("unit inactive"), "{target}");
            }
        }
        // The silenced unit never fires; the trained one does somewhere (else this test would
        // check only silent units).
        assert_eq!(
            fired > 0,
            unit == 1,
            "unit {unit} fired in {fired} of 3 images"
        );
    }
}
