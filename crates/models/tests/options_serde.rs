//! `ModelOptions` as the trainer's config embeds it: defaults, unknown keys, init variants.

use allconv_models::{Init, ModelOptions};

#[test]
fn empty_section_gives_paper_defaults() {
    let options: ModelOptions = serde_json::from_str("{}").unwrap();
    // Defaults from docs/protocol.md, Networks: 10 classes, final ReLU, dropout 0.2 / 0.5, Caffe
    // xavier, bias 0.
    assert_eq!(options.num_classes, 10);
    assert!(options.final_relu);
    assert_eq!(options.input_dropout, 0.2);
    assert_eq!(options.pool_dropout, 0.5);
    assert_eq!(options.init, Init::Xavier);
    assert_eq!(options.bias_init, 0.0);
}

#[test]
fn init_variants_parse() {
    let options: ModelOptions =
        serde_json::from_str(r#"{"init": {"gaussian": {"sigma": 0.01}}, "final_relu": false}"#)
            .unwrap();
    assert_eq!(options.init, Init::Gaussian { sigma: 0.01 });
    assert!(!options.final_relu);
    let options: ModelOptions = serde_json::from_str(r#"{"init": "he"}"#).unwrap();
    assert_eq!(options.init, Init::He);
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let err = serde_json::from_str::<ModelOptions>(r#"{"final_reul": false}"#).unwrap_err();
    assert!(err.to_string().contains("final_reul"), "{err}");
}

#[test]
fn round_trip() {
    let options = ModelOptions {
        num_classes: 100,
        init: Init::Gaussian { sigma: 0.05 },
        bias_init: 0.1,
        ..ModelOptions::default()
    };
    let text = serde_json::to_string(&options).unwrap();
    assert_eq!(
        serde_json::from_str::<ModelOptions>(&text).unwrap(),
        options
    );
}

#[test]
fn init_is_written_in_the_documented_form() {
    // docs/configuration.md: `xavier`, `he`, or `{gaussian: {sigma: S}}`, in every format.
    assert_eq!(
        serde_json::to_value(Init::Gaussian { sigma: 0.01 }).unwrap(),
        serde_json::json!({"gaussian": {"sigma": 0.01}})
    );
    assert_eq!(serde_json::to_value(Init::He).unwrap(), "he");
    assert_eq!(serde_json::to_value(Init::Xavier).unwrap(), "xavier");
    // Two choices in one map, or gaussian without its sigma, are refused.
    assert!(serde_json::from_str::<Init>(r#"{"he": null, "xavier": null}"#).is_err());
    assert!(serde_json::from_str::<Init>(r#""gaussian""#).is_err());
}
