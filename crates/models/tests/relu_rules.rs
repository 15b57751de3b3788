//! The three ReLU backward rules of the visualisation (docs/protocol.md, "Visualising what the
//! networks learned"): by hand on a tiny network, and plain backpropagation against candle's
//! own autograd on a real one.

mod common;

use allconv_models::{
    spec, Init, LayerSpec, Mode, ModelOptions, ModelSpec, Network, ReluBackward, Target,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

fn conv(kernel: usize, out: usize, relu: bool) -> LayerSpec {
    LayerSpec::Conv {
        kernel,
        out,
        stride: 1,
        pad: 0,
        relu,
    }
}

/// Input -> 1x1 conv to 3 ReLU units -> 1x1 conv to 1 logit (no ReLU) -> global average pool,
/// in f64 with the weights below.
fn tiny() -> Network {
    let spec = ModelSpec {
        name: "tiny".into(),
        layers: vec![
            conv(1, 3, true),
            conv(1, 1, false),
            LayerSpec::GlobalAvgPool,
        ],
        init: Init::Xavier,
        bias_init: 0.0,
    };
    let mut varmap = VarMap::new();
    let net = Network::with_dtype(&spec, &varmap, &Device::Cpu, DType::F64, 0).unwrap();
    let mut set = |name: &str, v: &[f64], shape: &[usize]| {
        let t = Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
        varmap.set_one(name, t).unwrap();
    };
    // Hidden unit k reads input channel: h1 <- x0, h2 <- x2, h3 <- x1.
    set(
        "conv1.weight",
        &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        &[3, 3, 1, 1],
    );
    set("conv1.bias", &[0.0; 3], &[3]);
    // logit = -h1 + h2 + h3.
    set("conv2.weight", &[-1.0, 1.0, 1.0], &[1, 3, 1, 1]);
    set("conv2.bias", &[0.0], &[1]);
    net
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn each_rule_gives_the_hand_computed_input_gradient() {
    let net = tiny();
    // x = (1, 2, -1): pre-activations h = (x0, x2, x1) = (1, -1, 2); the logit's gradient at
    // h is (-1, 1, 1). So unit 1 is open forward but gets a negative gradient, unit 2 is
    // closed forward but gets a positive one, unit 3 is open both ways.
    let x = Tensor::from_slice(&[1.0f64, 2.0, -1.0], (1, 3, 1, 1), &Device::Cpu).unwrap();
    // Gradient reaching the pre-activations, then dx = W1^T g (h1 -> x0, h2 -> x2, h3 -> x1):
    // backprop  (mask h <= 0):      g = (-1, 0, 1) -> dx = (-1, 1, 0)
    // deconvnet (mask dh <= 0):     g = (0, 1, 1)  -> dx = (0, 1, 1)
    // guided    (mask either):      g = (0, 0, 1)  -> dx = (0, 1, 0)
    let expected = [
        (ReluBackward::Backprop, [-1.0, 1.0, 0.0]),
        (ReluBackward::Deconvnet, [0.0, 1.0, 1.0]),
        (ReluBackward::Guided, [0.0, 1.0, 0.0]),
    ];
    for (rule, want) in expected {
        let dx = net.input_gradient(&x, Target::Class(0), rule).unwrap();
        assert_eq!(dx.dims(), &[1, 3, 1, 1]);
        assert_eq!(flat(&dx), want, "{}", rule.name());
    }
}

#[test]
fn a_unit_target_follows_its_largest_position() {
    let net = tiny();
    // Two positions: p0 = (1, 2, -1), p1 = (0, 0, 3). Unit 1 of conv1 reads x2: relu(-1) = 0
    // at p0, relu(3) = 3 at p1, so its largest activation is at p1 and the gradient is 1 on
    // channel 2 at p1 only (the gradient 1 is positive and the unit open: every rule agrees).
    let x = Tensor::from_slice(
        &[1.0f64, 0.0, 2.0, 0.0, -1.0, 3.0],
        (1, 3, 1, 2),
        &Device::Cpu,
    )
    .unwrap();
    for rule in ReluBackward::ALL {
        let dx = net
            .input_gradient(&x, Target::Unit { conv: 1, unit: 1 }, rule)
            .unwrap();
        assert_eq!(flat(&dx), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "{}", rule.name());
    }
}

#[test]
fn targets_the_network_lacks_are_named() {
    let net = tiny();
    let x = Tensor::zeros((1, 3, 1, 1), DType::F64, &Device::Cpu).unwrap();
    let cases = [
        (Target::Class(1), "class 1: the network has classes 0..1"),
        (
            Target::Unit { conv: 3, unit: 0 },
            "conv3: the network has conv1..conv2",
        ),
        (
            Target::Unit { conv: 0, unit: 0 },
            "conv0: the network has conv1..conv2",
        ),
        (
            Target::Unit { conv: 1, unit: 3 },
            "unit 3 of conv1: it has units 0..3",
        ),
    ];
    for (target, message) in cases {
        let err = net
            .input_gradient(&x, target, ReluBackward::Guided)
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{err}");
    }
}

/// The same network with candle's plain ops (`conv2d`, `relu`, `mean`), whose autograd is an
/// independent route to the backpropagation gradient. Returns every conv output and the logits.
fn plain_forward(spec: &ModelSpec, varmap: &VarMap, x: &Tensor) -> (Vec<Tensor>, Tensor) {
    let data = varmap.data().lock().unwrap();
    let mut h = x.clone();
    let mut outputs = Vec::new();
    for layer in &spec.layers {
        h = match *layer {
            LayerSpec::Dropout { .. } => h,
            LayerSpec::Conv {
                stride, pad, relu, ..
            } => {
                let i = outputs.len() + 1;
                let w = data[&format!("conv{i}.weight")].as_tensor();
                let b = data[&format!("conv{i}.bias")].as_tensor();
                let y = h
                    .conv2d(w, pad, stride, 1, 1)
                    .unwrap()
                    .broadcast_add(&b.reshape((1, (), 1, 1)).unwrap())
                    .unwrap();
                let y = if relu { y.relu().unwrap() } else { y };
                outputs.push(y.clone());
                y
            }
            LayerSpec::MaxPool { .. } => panic!("the reference network has no pool"),
            LayerSpec::GlobalAvgPool => h.mean((2, 3)).unwrap(),
        };
    }
    (outputs, h)
}

fn max_relative_difference(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn backprop_on_all_cnn_c_equals_candle_autograd_and_guided_differs() {
    // All-CNN-C has no max-pool (candle's own pool has no padding), eight ReLU convolutions and
    // input and pool dropout, which this mode must leave out.
    let spec = spec("all-cnn-c", &ModelOptions::default()).unwrap();
    let varmap = VarMap::new();
    let net = Network::with_dtype(&spec, &varmap, &Device::Cpu, DType::F64, 3).unwrap();
    let x = common::random(&[2, 3, 32, 32], 16, DType::F64);

    // Dropout off: the traced forward gives the evaluation logits.
    let traced = net.forward_traced(&x, ReluBackward::Guided).unwrap();
    let eval = net.forward(&x, Mode::Eval).unwrap();
    assert!(max_relative_difference(&flat(&traced.logits), &flat(&eval)) < 1e-12);

    let targets = [Target::Class(3), Target::Unit { conv: 6, unit: 17 }];
    for target in targets {
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let (outputs, logits) = plain_forward(&spec, &varmap, xv.as_tensor());
        let objective = match target {
            Target::Class(k) => logits.narrow(1, k, 1).unwrap().sum_all().unwrap(),
            Target::Unit { conv, unit } => {
                let plane = outputs[conv - 1]
                    .narrow(1, unit, 1)
                    .unwrap()
                    .flatten_from(1)
                    .unwrap();
                // The largest position of each image, found here on the host.
                let rows: Vec<Vec<f64>> = plane.to_vec2().unwrap();
                let mut mask = vec![0.0f64; rows.len() * rows[0].len()];
                for (b, row) in rows.iter().enumerate() {
                    let best = (0..row.len()).fold(0, |m, i| if row[i] > row[m] { i } else { m });
                    assert!(row[best] > 0.0, "the unit must be active for a useful test");
                    mask[b * row.len() + best] = 1.0;
                }
                let mask = Tensor::from_vec(mask, plane.shape(), &Device::Cpu).unwrap();
                (plane * mask).unwrap().sum_all().unwrap()
            }
        };
        let reference = flat(objective.backward().unwrap().get(xv.as_tensor()).unwrap());
        let backprop = flat(
            &net.input_gradient(&x, target, ReluBackward::Backprop)
                .unwrap(),
        );
        let deconvnet = flat(
            &net.input_gradient(&x, target, ReluBackward::Deconvnet)
                .unwrap(),
        );
        let guided = flat(
            &net.input_gradient(&x, target, ReluBackward::Guided)
                .unwrap(),
        );
        let err = max_relative_difference(&backprop, &reference);
        assert!(err < 1e-9, "{target:?}: backprop vs candle autograd {err}");
        // Through eight ReLUs the three rules keep different paths: guided is neither.
        let vs_backprop = max_relative_difference(&guided, &backprop);
        let vs_deconvnet = max_relative_difference(&guided, &deconvnet);
        assert!(
            vs_backprop > 0.1,
            "{target:?}: guided vs backprop {vs_backprop}"
        );
        assert!(
            vs_deconvnet > 0.1,
            "{target:?}: guided vs deconvnet {vs_deconvnet}"
        );
        // The target unit is active, so its own ReLU passes a gradient of 1: not all zero.
        assert!(
            guided.iter().any(|v| *v != 0.0),
            "{target:?}: guided is all zero"
        );
    }
}
