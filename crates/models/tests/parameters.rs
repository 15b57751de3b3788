//! Parameter counts and names of the 12 networks.

use allconv_models::{spec, ModelError, ModelOptions, Network, MODEL_NAMES};
use candle_core::Device;
use candle_nn::VarMap;

/// The elements of every tensor the built network holds: a count that does not go through the
/// spec's own counting function.
fn built_parameters(name: &str, options: &ModelOptions) -> usize {
    let varmap = VarMap::new();
    Network::new(&spec(name, options).unwrap(), &varmap, &Device::Cpu, 0).unwrap();
    let data = varmap.data().lock().unwrap();
    data.values().map(|v| v.elem_count()).sum()
}

/// Exact counts (weights + biases, 10 classes) from docs/protocol.md, Networks, computed from
/// the layer tables by hand, e.g. Model A = 3*25*96+96 + 96*25*192+192 + 192*9*192+192
/// + 192*192+192 + 192*10+10 = 839,242.
const EXPECTED: [(&str, usize); 12] = [
    ("model-a", 839_242),
    ("strided-cnn-a", 839_242),
    ("convpool-cnn-a", 1_254_250),
    ("all-cnn-a", 1_254_250),
    ("model-b", 885_610),
    ("strided-cnn-b", 885_610),
    ("convpool-cnn-b", 1_300_618),
    ("all-cnn-b", 1_300_618),
    ("model-c", 954_730),
    ("strided-cnn-c", 954_730),
    ("convpool-cnn-c", 1_369_738),
    ("all-cnn-c", 1_369_738),
];

#[test]
fn parameter_counts_match_paper_table() {
    let options = ModelOptions::default();
    for (name, expected) in EXPECTED {
        let s = spec(name, &options).unwrap();
        assert_eq!(s.parameter_count(), expected, "{name}");
        assert_eq!(built_parameters(name, &options), expected, "{name}, built");
    }
    assert_eq!(MODEL_NAMES.len(), EXPECTED.len());
}

#[test]
fn hundred_classes_change_only_the_last_layer() {
    let options = ModelOptions {
        num_classes: 100,
        ..ModelOptions::default()
    };
    // Every network's last 1x1 conv has 192*100+100 = 19,300 instead of 192*10+10 = 1,930
    // parameters; nothing else changes.
    for (name, ten_classes) in EXPECTED {
        let expected = ten_classes - 1_930 + 19_300;
        assert_eq!(
            spec(name, &options).unwrap().parameter_count(),
            expected,
            "{name}"
        );
        assert_eq!(built_parameters(name, &options), expected, "{name}, built");
    }
}

#[test]
fn names_are_case_insensitive_and_canonical() {
    let s = spec("All-CNN-C", &ModelOptions::default()).unwrap();
    assert_eq!(s.name, "all-cnn-c");
    let s = spec("CONVPOOL-CNN-B", &ModelOptions::default()).unwrap();
    assert_eq!(s.name, "convpool-cnn-b");
}

#[test]
fn unknown_name_lists_all_valid_names() {
    let err = spec("all-cnn-d", &ModelOptions::default()).unwrap_err();
    assert!(matches!(err, ModelError::UnknownModel { .. }));
    let message = err.to_string();
    assert!(message.contains("all-cnn-d"), "{message}");
    for name in MODEL_NAMES {
        assert!(message.contains(name), "{message} lacks {name}");
    }
}

#[test]
fn out_of_range_options_are_rejected_with_their_key() {
    let options = ModelOptions {
        pool_dropout: 1.0,
        ..ModelOptions::default()
    };
    let message = spec("model-a", &options).unwrap_err().to_string();
    assert!(message.contains("pool_dropout"), "{message}");
    let options = ModelOptions {
        num_classes: 0,
        ..ModelOptions::default()
    };
    let message = spec("model-a", &options).unwrap_err().to_string();
    assert!(message.contains("num_classes"), "{message}");
}
