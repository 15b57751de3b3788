//! Output size after every layer, and the logits of a forward pass.

mod common;

use allconv_models::{spec, LayerSpec, Mode, ModelOptions, Network, MODEL_NAMES};
use candle_core::{DType, Device};
use candle_nn::VarMap;

/// Spatial size after each layer that changes it, skipping dropout.
fn spatial_trace(name: &str) -> Vec<usize> {
    let s = spec(name, &ModelOptions::default()).unwrap();
    let mut trace = vec![32];
    for shape in s.shapes() {
        if *trace.last().unwrap() != shape[1] {
            trace.push(shape[1]);
        }
    }
    trace
}

#[test]
fn every_model_goes_32_16_8_6_1() {
    // docs/protocol.md, Networks: two down-samplings 32 -> 16 -> 8, the unpadded 3x3 conv 8 -> 6,
    // global average.
    for name in MODEL_NAMES {
        assert_eq!(spatial_trace(name), vec![32, 16, 8, 6, 1], "{name}");
        let s = spec(name, &ModelOptions::default()).unwrap();
        assert_eq!(*s.shapes().last().unwrap(), [10, 1, 1], "{name}");
    }
}

/// (kernel, out, stride, pad) of every conv, and the output `[c, h, w]` of every layer.
fn table(name: &str) -> Vec<(String, [usize; 3])> {
    let s = spec(name, &ModelOptions::default()).unwrap();
    s.layers
        .iter()
        .map(|l| l.to_string())
        .zip(s.shapes())
        .collect()
}

#[test]
fn all_cnn_c_layer_table() {
    // docs/protocol.md, Networks (the paper's Table 2), All-CNN-C: input dropout, 3x3 96,
    // 3x3 96, 3x3 96 stride 2, dropout, 3x3 192, 3x3 192, 3x3 192 stride 2, dropout, 3x3 192
    // unpadded, 1x1 192, 1x1 10, global average.
    let expected: Vec<(&str, [usize; 3])> = vec![
        ("dropout 0.2", [3, 32, 32]),
        ("3x3 conv 96 pad 1 + ReLU", [96, 32, 32]),
        ("3x3 conv 96 pad 1 + ReLU", [96, 32, 32]),
        ("3x3 conv 96 stride 2 pad 1 + ReLU", [96, 16, 16]),
        ("dropout 0.5", [96, 16, 16]),
        ("3x3 conv 192 pad 1 + ReLU", [192, 16, 16]),
        ("3x3 conv 192 pad 1 + ReLU", [192, 16, 16]),
        ("3x3 conv 192 stride 2 pad 1 + ReLU", [192, 8, 8]),
        ("dropout 0.5", [192, 8, 8]),
        ("3x3 conv 192 pad 0 + ReLU", [192, 6, 6]),
        ("1x1 conv 192 pad 0 + ReLU", [192, 6, 6]),
        ("1x1 conv 10 pad 0 + ReLU", [10, 6, 6]),
        ("global average pool", [10, 1, 1]),
    ];
    let got = table("all-cnn-c");
    let got: Vec<(&str, [usize; 3])> = got.iter().map(|(s, d)| (s.as_str(), *d)).collect();
    assert_eq!(got, expected);
}

#[test]
fn strided_b_strides_the_1x1_conv() {
    // docs/protocol.md, Networks: "the conv just before it gets stride 2 (for B that is a 1x1)".
    let s = spec("strided-cnn-b", &ModelOptions::default()).unwrap();
    let strided: Vec<LayerSpec> = s
        .layers
        .iter()
        .copied()
        .filter(|l| matches!(l, LayerSpec::Conv { stride: 2, .. }))
        .collect();
    assert_eq!(
        strided,
        vec![
            LayerSpec::Conv {
                kernel: 1,
                out: 96,
                stride: 2,
                pad: 0,
                relu: true
            },
            LayerSpec::Conv {
                kernel: 1,
                out: 192,
                stride: 2,
                pad: 0,
                relu: true
            },
        ]
    );
    assert!(!s
        .layers
        .iter()
        .any(|l| matches!(l, LayerSpec::MaxPool { .. })));
}

#[test]
fn convpool_a_inserts_3x3_before_each_pool() {
    // ConvPool-CNN-A: 5x5 96, 3x3 96, pool, dropout, 5x5 192, 3x3 192, pool, dropout, top.
    let got = table("convpool-cnn-a");
    let names: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dropout 0.2",
            "5x5 conv 96 pad 2 + ReLU",
            "3x3 conv 96 pad 1 + ReLU",
            "3x3 max-pool stride 2 pad 1",
            "dropout 0.5",
            "5x5 conv 192 pad 2 + ReLU",
            "3x3 conv 192 pad 1 + ReLU",
            "3x3 max-pool stride 2 pad 1",
            "dropout 0.5",
            "3x3 conv 192 pad 0 + ReLU",
            "1x1 conv 192 pad 0 + ReLU",
            "1x1 conv 10 pad 0 + ReLU",
            "global average pool",
        ]
    );
    assert_eq!(got[3].1, [96, 16, 16]);
    assert_eq!(got[7].1, [192, 8, 8]);
}

#[test]
fn final_relu_option_reaches_the_last_conv() {
    let options = ModelOptions {
        final_relu: false,
        input_dropout: 0.0,
        ..ModelOptions::default()
    };
    let s = spec("model-c", &options).unwrap();
    let convs: Vec<bool> = s
        .layers
        .iter()
        .filter_map(|l| match l {
            LayerSpec::Conv { relu, .. } => Some(*relu),
            _ => None,
        })
        .collect();
    assert_eq!(convs, vec![true, true, true, true, true, true, false]);
    // input_dropout 0 removes the input dropout layer.
    assert!(matches!(s.layers[0], LayerSpec::Conv { .. }));
}

#[test]
fn forward_gives_batch_by_classes_logits() {
    let device = Device::Cpu;
    for (name, classes) in [("all-cnn-c", 10), ("model-b", 100)] {
        let options = ModelOptions {
            num_classes: classes,
            ..ModelOptions::default()
        };
        let s = spec(name, &options).unwrap();
        let varmap = VarMap::new();
        let net = Network::new(&s, &varmap, &device, 1).unwrap();
        let x = common::random(&[3, 3, 32, 32], 17, DType::F32);
        let logits = net.forward(&x, Mode::Eval).unwrap();
        assert_eq!(logits.dims(), &[3, classes], "{name}");
        let logits = net.forward(&x, Mode::Train { dropout_seed: 5 }).unwrap();
        assert_eq!(logits.dims(), &[3, classes], "{name}");
    }
}
