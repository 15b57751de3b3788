//! The documented configuration keys (docs/configuration.md) are exactly the configuration's
//! keys, so the documentation cannot drift from the code.

use std::collections::BTreeSet;
use std::path::Path;

use allconv_train::ExperimentConfig;

/// The keys in the first column of the table in docs/configuration.md: rows "| `key` | ...".
fn documented_keys() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_string())
        .collect()
}

#[test]
fn every_key_is_documented_and_every_documented_key_exists() {
    let documented = documented_keys();
    let actual: BTreeSet<String> = ExperimentConfig::keys().into_iter().collect();
    let undocumented: Vec<&String> = actual.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&actual).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md misses {undocumented:?} and lists keys that do not exist: {unknown:?}"
    );
    // A hand count of the sections in docs/configuration.md: data 12, model 6, optim 3,
    // schedule 3, training 14, grid 3, out 1, slurm 11.
    assert_eq!(actual.len(), 53);
}

#[test]
fn every_documented_key_can_be_set() {
    // Each key set to its own default value through `--set` is accepted (the key path exists
    // and the value type fits).
    let default = serde_json::to_value(ExperimentConfig::default()).unwrap();
    for key in documented_keys() {
        let value = key
            .split('.')
            .fold(&default, |node, part| &node[part])
            .clone();
        let mut config = ExperimentConfig::default();
        config
            .apply(&[allconv_train::Setting::new(key.as_str(), value)])
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}
