//! CIFAR-100 in the trainer (docs/protocol.md, "CIFAR-100"): the class count follows the data
//! set, the 100-class All-CNN-C has the expected size, and a run trains on synthetic CIFAR-100.

mod common;

use allconv_models::{spec, ModelOptions};
use allconv_train::config::{Dataset, LabelSet};
use allconv_train::{run, ExperimentConfig, RunDir, RunOptions};

#[test]
fn all_cnn_c_for_100_classes_has_1_387_108_parameters() {
    // 10 classes: 1,369,738 (docs/protocol.md, Parameter counts). The last 1x1 convolution
    // 192 -> k has 192k + k parameters: 100 classes add 90 * 193 = 17,370.
    let options = ModelOptions {
        num_classes: 100,
        ..Default::default()
    };
    assert_eq!(
        spec("all-cnn-c", &options).unwrap().parameter_count(),
        1_369_738 + 17_370
    );
    assert_eq!(
        spec("all-cnn-c", &options).unwrap().parameter_count(),
        1_387_108
    );
}

#[test]
fn a_class_count_that_does_not_match_the_dataset_is_refused_naming_both_keys() {
    let mut c = ExperimentConfig::default();
    c.data.dataset = Dataset::Cifar100;
    let err = c.validate().unwrap_err();
    assert_eq!(err.key(), "model.num_classes");
    let err = err.to_string();
    assert!(
        err.contains("model.num_classes is 10") && err.contains("100 classes"),
        "{err}"
    );
    c.model.num_classes = 100;
    c.validate().unwrap();
    c.data.labels = LabelSet::Coarse;
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("20 classes") && err.contains("data.labels"),
        "{err}"
    );
    // YAML spells them in lower case.
    let yaml = "data:\n  dataset: cifar100\n  labels: coarse\nmodel:\n  num_classes: 20\n";
    let c = ExperimentConfig::from_yaml(yaml).unwrap();
    assert_eq!(
        (c.data.dataset, c.data.labels),
        (Dataset::Cifar100, LabelSet::Coarse)
    );
}

#[test]
fn a_run_trains_on_synthetic_cifar100_and_records_its_data_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-100-binary");
    allconv_cifar::write_synthetic_cifar100_dir(&data, 200, 100, 5).unwrap();
    let mut config = common::small_config(&data, &tmp.path().join("runs"), 1);
    config.data.dataset = Dataset::Cifar100;
    config.model.num_classes = 100;
    config.data.augment = true;
    let rc = common::run_config(&config, "strided-cnn-a", 0.01);
    let result = run(&rc, &RunOptions::default()).unwrap();
    let options = ModelOptions {
        num_classes: 100,
        ..Default::default()
    };
    assert_eq!(
        result.parameters,
        spec("strided-cnn-a", &options).unwrap().parameter_count()
    );
    let rows = RunDir::new(rc.run_dir()).read_metrics().unwrap();
    assert_eq!(rows.len(), 1);
    // Untrained on 100 classes: the test loss is near ln(100) = 4.61, not ln(10) = 2.30.
    let loss = rows[0].test_loss.unwrap();
    assert!((loss - 100f64.ln()).abs() < 0.5, "test loss {loss}");
    let saved = std::fs::read_to_string(RunDir::new(rc.run_dir()).config_path()).unwrap();
    assert!(saved.contains("dataset: cifar100"), "{saved}");
    assert!(
        saved.contains("train.bin") && saved.contains("test.bin"),
        "{saved}"
    );
    assert!(saved.contains("official: false"), "{saved}");
}
