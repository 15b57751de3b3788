//! Checkpoint tensor files carry the md5 of their tensors: a same-size corruption is refused on
//! resume naming the file, and checkpoints written before the checksum existed still resume.

mod common;

use std::collections::HashMap;
use std::path::Path;

use allconv_train::checkpoint::{read_tensor_file, TENSORS_MD5_KEY};
use allconv_train::{run, RunOptions, TrainError};
use candle_core::Device;

/// The checkpoint files `state.json` names: (weights, momentum).
fn checkpoint_files(run_dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = run_dir.join("checkpoint");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    let file = |key: &str| dir.join(state[key].as_str().unwrap());
    (file("weights_file"), file("momentum_file"))
}

#[test]
fn a_corrupted_checkpoint_is_refused_and_one_without_a_checksum_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::synthetic_data(&data, 10, 20);
    let config = common::small_config(&data, &tmp.path().join("runs"), 2);
    let point = common::run_config(&config, "strided-cnn-a", 0.01);
    common::assert_stopped_at(run(&point, &common::stop_after_epochs(1)), 1, 0);
    let (weights, momentum) = checkpoint_files(&point.run_dir());
    let file = read_tensor_file(&weights, &Device::Cpu).unwrap();
    assert!(file.verified && file.metadata.contains_key(TENSORS_MD5_KEY));

    // One byte of the last tensor's data (the end of the file), the size unchanged.
    let good = std::fs::read(&weights).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    std::fs::write(&weights, &bad).unwrap();
    match run(&point, &RunOptions::default()) {
        Err(TrainError::Checkpoint { path, reason }) => {
            assert_eq!(path, weights);
            assert!(reason.contains("md5"), "{reason}");
        }
        other => panic!("a corrupted checkpoint was not refused: {other:?}"),
    }
    assert!(!point.run_dir().join("result.json").exists());

    // Written as before the checksum existed: the same tensors, no metadata. It resumes.
    std::fs::write(&weights, &good).unwrap();
    for path in [&weights, &momentum] {
        let tensors = read_tensor_file(path, &Device::Cpu).unwrap().tensors;
        let plain: HashMap<String, candle_core::Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&plain, path).unwrap();
        assert!(!read_tensor_file(path, &Device::Cpu).unwrap().verified);
    }
    let result = run(&point, &RunOptions::default()).unwrap();
    assert_eq!(result.epochs_run, 2);

    // And ends where an uninterrupted run ends: the old files held the same tensors.
    let straight = common::small_config(&data, &tmp.path().join("straight"), 2);
    let straight = common::run_config(&straight, "strided-cnn-a", 0.01);
    run(&straight, &RunOptions::default()).unwrap();
    common::assert_same_weights(&point.run_dir(), &straight.run_dir(), "after the resume");
}

#[test]
fn equal_tensors_and_metadata_give_equal_files() {
    // The metadata comes from a map whose order is random per map: the header is sorted before
    // writing, so a resumed run's final weights can be compared byte for byte.
    let tmp = tempfile::tempdir().unwrap();
    let tensors: std::collections::BTreeMap<String, candle_core::Tensor> = (0..4)
        .map(|i| {
            let t = candle_core::Tensor::new(&[i as f32, 1.5, -2.0], &Device::Cpu).unwrap();
            (format!("conv{i}.weight"), t)
        })
        .collect();
    let metadata: std::collections::BTreeMap<String, String> = (0..8)
        .map(|i| (format!("key{i}"), format!("value {i}")))
        .collect();
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let path = tmp.path().join(format!("{i}.safetensors"));
            allconv_train::checkpoint::save_tensors_with(&path, &tensors, &metadata).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(files.windows(2).all(|w| w[0] == w[1]));
    let read = read_tensor_file(&tmp.path().join("0.safetensors"), &Device::Cpu).unwrap();
    assert!(read.verified);
    assert_eq!(read.metadata["key3"], "value 3");
    assert_eq!(read.tensors.len(), 4);
}
