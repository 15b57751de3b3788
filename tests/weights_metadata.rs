//! A weights file says which network and input it is for: `evaluate` (and `visualize`, which
//! loads the same way) refuse weights recorded for another model or preprocessing, and still load
//! plain files without that record (weights written by other tools, e.g. PyTorch).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use common::{allconv, text, tiny_grid};

fn evaluate(args: &[&str], weights: &Path, data: &Path) -> Output {
    allconv()
        .arg("evaluate")
        .arg("--weights")
        .arg(weights)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn weights_recorded_for_another_network_or_input_are_refused_and_plain_files_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 1);
    let out = allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let weights = runs.join("strided-cnn-a/lr-0.01/seed-0/weights.safetensors");
    let data = tmp.path().join("data");

    // Model-A has exactly Strided-CNN-A's tensors (docs/protocol.md, Networks): only the
    // record tells them apart.
    let out = evaluate(
        &["--model", "model-a", "--preprocessing", "scale"],
        &weights,
        &data,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("they are weights of strided-cnn-a, not of model-a"),
        "{stderr}"
    );
    // The tiny grid trains on `scale` inputs.
    let out = evaluate(
        &["--model", "strided-cnn-a", "--preprocessing", "standardize"],
        &weights,
        &data,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trained on scale inputs, not standardize"),
        "{stderr}"
    );
    // What it was trained as: evaluated.
    let out = evaluate(
        &["--model", "strided-cnn-a", "--preprocessing", "scale"],
        &weights,
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));

    // The same tensors without the record, as another tool writes them: loaded as asked.
    let tensors =
        allconv_train::checkpoint::load_tensors(&weights, &candle_core::Device::Cpu).unwrap();
    let plain = tmp.path().join("plain.safetensors");
    let map: HashMap<String, candle_core::Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, &plain).unwrap();
    let out = evaluate(
        &["--model", "model-a", "--preprocessing", "scale"],
        &plain,
        &data,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("model-a"),
        "{}",
        text(&out)
    );
}
