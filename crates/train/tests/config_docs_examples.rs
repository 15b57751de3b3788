//! Every YAML example of docs/configuration.md loads as written, from a file as well as through
//! `--set`, so the documented spellings (e.g. `model.init: {gaussian: {sigma: 0.01}}`) cannot
//! drift from what the code reads.

use std::path::Path;

use allconv_models::Init;
use allconv_train::{ExperimentConfig, Setting};

/// The ```yaml blocks of docs/configuration.md, in order.
fn yaml_examples() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```yaml block");
    blocks
}

#[test]
fn every_yaml_example_of_the_documentation_loads_from_a_file() {
    let examples = yaml_examples();
    // The page has two examples (a count by hand), so this test cannot pass by finding none.
    assert_eq!(examples.len(), 2, "{examples:?}");
    let tmp = tempfile::tempdir().unwrap();
    let mut loaded = Vec::new();
    for (i, yaml) in examples.iter().enumerate() {
        let file = tmp.path().join(format!("example-{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let config = ExperimentConfig::load(&file)
            .unwrap_or_else(|e| panic!("example {i} of docs/configuration.md:\n{yaml}\n{e}"));
        loaded.push(config);
    }
    // The values as the examples write them.
    assert_eq!(loaded[0].model.init, Init::Gaussian { sigma: 0.01 });
    assert_eq!(loaded[0].data.validation, 5000);
    assert!(!loaded[0].optim.weight_decay_bias);
    assert_eq!(loaded[1].model.init, Init::He);
    assert_eq!(loaded[1].schedule.milestones, vec![10, 15]);
    assert_eq!(loaded[1].grid.seeds, vec![0, 1]);
}

#[test]
fn the_documented_init_forms_are_accepted_by_set_as_in_a_file() {
    for (text, expected) in [
        (
            "model.init={gaussian: {sigma: 0.01}}",
            Init::Gaussian { sigma: 0.01 },
        ),
        ("model.init=he", Init::He),
        ("model.init=xavier", Init::Xavier),
    ] {
        let setting: Setting = text.parse().unwrap();
        let mut config = ExperimentConfig::default();
        config
            .apply(&[setting])
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(config.model.init, expected, "{text}");
    }
}

#[test]
fn a_recorded_gaussian_init_reads_back_in_both_spellings() {
    let mut config = ExperimentConfig::default();
    config.model.init = Init::Gaussian { sigma: 0.05 };
    // What a run's config.yaml records now: the documented map form, read back equal.
    let yaml = allconv_train::config::to_yaml_string(&config).unwrap();
    assert!(yaml.contains("gaussian:"), "{yaml}");
    assert!(!yaml.contains("!gaussian"), "{yaml}");
    let back = ExperimentConfig::from_yaml(&yaml).unwrap();
    assert_eq!(back.model.init, Init::Gaussian { sigma: 0.05 });
    // What config.yaml files written by earlier versions hold: serde's YAML tag form.
    let tagged =
        ExperimentConfig::from_yaml("model:\n  init: !gaussian\n    sigma: 0.05\n").unwrap();
    assert_eq!(tagged.model.init, Init::Gaussian { sigma: 0.05 });
}

#[test]
fn an_unknown_initialisation_is_named_with_the_choices() {
    let err = ExperimentConfig::from_yaml("model:\n  init: glorot\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("glorot") && text.contains("gaussian"),
        "{text}"
    );
    let err = ExperimentConfig::from_yaml("model:\n  init: {gaussian: {sgma: 1}}\n").unwrap_err();
    assert!(err.to_string().contains("sgma"), "{err}");
}
