//! configs/paper.yaml is the paper's protocol; the report states that protocol
//! (`allconv_report::paper`): the two must agree, so neither can change alone.

use std::path::Path;

use allconv_report::paper::{model_key, PROTOCOL, TABLE3};
use allconv_train::config::{Dataset, LabelSet, Preprocessing};
use allconv_train::ExperimentConfig;

#[test]
fn paper_yaml_runs_the_protocol_the_report_states() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/paper.yaml");
    let c = ExperimentConfig::load(&path).unwrap();
    let p = PROTOCOL;
    assert_eq!(c.schedule.epochs, p.epochs);
    assert_eq!(c.schedule.milestones, p.milestones);
    assert_eq!(c.schedule.gamma, p.gamma);
    assert_eq!(c.optim.momentum, p.momentum);
    assert_eq!(c.optim.weight_decay, p.weight_decay);
    assert_eq!(c.training.batch_size, p.batch_size);
    assert_eq!(c.data.preprocessing, Preprocessing::GcnZca);
    assert_eq!(c.data.gcn_scale, p.gcn_scale);
    assert_eq!(c.data.zca_epsilon, p.zca_epsilon);
    assert_eq!(
        c.data.validation, 0,
        "the paper holds out no validation split"
    );
    assert_eq!((c.data.train_subset, c.data.test_subset), (None, None));
    assert_eq!(c.model.input_dropout, p.input_dropout);
    assert_eq!(c.model.pool_dropout, p.pool_dropout);
    assert!(c.training.dropout);
    assert_eq!(c.grid.lrs, p.learning_rates);
    // The twelve networks of Table 3, in the paper's order.
    let models: Vec<String> = c.grid.models.iter().map(|m| model_key(m)).collect();
    let table: Vec<String> = TABLE3.iter().map(|m| model_key(m.name)).collect();
    assert_eq!(models, table);
}

/// `configs/<name>` and paper.yaml, both loaded.
fn with_paper(name: &str) -> (ExperimentConfig, ExperimentConfig) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    (
        ExperimentConfig::load(&dir.join(name)).unwrap(),
        ExperimentConfig::load(&dir.join("paper.yaml")).unwrap(),
    )
}

#[test]
fn paper_aug_yaml_is_the_protocol_with_augmentation_for_all_cnn_c() {
    // docs/protocol.md, "Data augmentation": everything as paper.yaml but the augmentation, the
    // one network the paper reports with it, and the output folder.
    let (mut aug, paper) = with_paper("paper-aug.yaml");
    assert!(aug.data.augment);
    assert!(!paper.data.augment);
    assert_eq!(aug.grid.models, ["all-cnn-c"]);
    assert_ne!(aug.out.runs, paper.out.runs);
    aug.data.augment = false;
    aug.grid.models = paper.grid.models.clone();
    aug.out.runs = paper.out.runs.clone();
    assert_eq!(
        serde_json::to_value(&aug).unwrap(),
        serde_json::to_value(&paper).unwrap()
    );
}

#[test]
fn paper_cifar100_yaml_is_the_protocol_on_cifar100_for_all_cnn_c() {
    // docs/protocol.md, "CIFAR-100": everything as paper.yaml but the data set and its class
    // count, the one network, and the output folder.
    let (mut c100, paper) = with_paper("paper-cifar100.yaml");
    assert_eq!(c100.data.dataset, Dataset::Cifar100);
    assert_eq!(c100.data.labels, LabelSet::Fine);
    assert_eq!(c100.model.num_classes, 100);
    assert!(!c100.data.augment);
    assert_eq!(c100.grid.models, ["all-cnn-c"]);
    assert_ne!(c100.out.runs, paper.out.runs);
    c100.data.dataset = Dataset::Cifar10;
    c100.model.num_classes = 10;
    c100.grid.models = paper.grid.models.clone();
    c100.out.runs = paper.out.runs.clone();
    assert_eq!(
        serde_json::to_value(&c100).unwrap(),
        serde_json::to_value(&paper).unwrap()
    );
}
