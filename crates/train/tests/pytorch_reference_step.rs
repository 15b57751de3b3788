//! One training step of Model C and ConvPool-CNN-C (their max-pools included) against PyTorch:
//! logits, loss, every parameter's gradient and every parameter after one SGD step, compared
//! with a fixture that `scripts/pytorch_reference_step.py` wrote with PyTorch from the paper's
//! layer tables (docs/protocol.md, Networks and Training). Both sides draw the weights and the
//! batch from the same counter-based generator; the fixture holds the md5 of every weight
//! tensor PyTorch used, so the comparison starts from the same numbers.
//!
//! The other tests compare our ops with loops of our own (f32 against f64); this one is the
//! network-level check against an outside implementation.

use std::collections::BTreeMap;

use allconv_models::{spec, Mode, ModelOptions, Network};
use allconv_train::optim::{Sgd, SgdConfig};
use candle_core::{Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use md5::{Digest, Md5};
use serde::Deserialize;

const FIXTURE: &str = include_str!("fixtures/pytorch_reference_step.json");

#[derive(Deserialize)]
struct Fixture {
    provenance: Provenance,
    models: BTreeMap<String, Reference>,
}

#[derive(Deserialize)]
struct Provenance {
    torch: String,
    step: Step,
}

#[derive(Deserialize)]
struct Step {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    weight_decay_bias: bool,
    batch: usize,
}

#[derive(Deserialize)]
struct Reference {
    input_md5: String,
    labels: Vec<u32>,
    weights_md5: BTreeMap<String, String>,
    logits: Vec<f64>,
    loss: f64,
    grad: BTreeMap<String, Summary>,
    after_step: BTreeMap<String, Summary>,
}

/// A tensor as the fixture keeps it: its shape, max |value|, sum, sum of squares (float64)
/// and the values at some flat indices.
#[derive(Deserialize)]
struct Summary {
    shape: Vec<usize>,
    max_abs: f64,
    sum: f64,
    sum_sq: f64,
    index: Vec<usize>,
    value: Vec<f64>,
}

/// The fixture's generator (see the script): value `i` of stream `s` is the top 24 bits of
/// SplitMix64's `(i+1)`-th output from the state `mix(s)`, as `u` in [0, 1), then
/// `(2u - 1) * bound` in f64, rounded once to f32.
fn uniform(stream: u64, n: usize, bound: f64) -> Vec<f32> {
    let key = allconv_splitmix::mix(stream);
    (0..n as u64)
        .map(|i| {
            let bits = allconv_splitmix::output(key, i) >> 40;
            let u = bits as f64 / (1u64 << 24) as f64;
            ((2.0 * u - 1.0) * bound) as f32
        })
        .collect()
}

fn md5_hex(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    format!("{:x}", Md5::digest(&bytes))
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Sets every parameter `conv{k}.weight|bias` of the network to the fixture's generated values
/// (weight stream 2k, bias stream 2k+1; bounds sqrt(3 / fan_in) and a tenth of it) and checks
/// each against the md5 of what PyTorch used.
fn load_generated_weights(varmap: &VarMap, expected_md5: &BTreeMap<String, String>) {
    let data = varmap.data().lock().unwrap();
    assert_eq!(data.len(), expected_md5.len(), "parameter count");
    for k in 1..=data.len() / 2 {
        let weight = &data[&format!("conv{k}.weight")];
        let dims = weight.dims().to_vec();
        let fan_in = dims[1] * dims[2] * dims[3];
        let bound = (3.0 / fan_in as f64).sqrt();
        let w = uniform(2 * k as u64, weight.elem_count(), bound);
        let b = uniform(2 * k as u64 + 1, dims[0], 0.1 * bound);
        for (name, values, var) in [
            (format!("conv{k}.weight"), w, weight),
            (format!("conv{k}.bias"), b, &data[&format!("conv{k}.bias")]),
        ] {
            assert_eq!(
                md5_hex(&values),
                expected_md5[&name],
                "{name}: generated weights"
            );
            let t = Tensor::from_vec(values, var.dims(), &Device::Cpu).unwrap();
            var.set(&t).unwrap();
        }
    }
}

/// `ours` against the fixture's summary of PyTorch's tensor: shape, every sampled value within
/// `tol * max_abs` (f32 sums in another order differ by a few ulps of the largest terms), and
/// the f64 sum and sum of squares within the same scale.
fn assert_close(what: &str, ours: &Tensor, reference: &Summary, tol: f64) {
    assert_eq!(ours.dims(), reference.shape.as_slice(), "{what}: shape");
    let values = flat(ours);
    let scale = reference.max_abs.max(1e-30);
    for (&i, &expected) in reference.index.iter().zip(&reference.value) {
        let got = values[i] as f64;
        assert!(
            (got - expected).abs() <= tol * scale,
            "{what}[{i}]: ours {got:e}, PyTorch {expected:e} (max |value| {scale:e})"
        );
    }
    let max_abs = values.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    assert!(
        (max_abs - reference.max_abs).abs() <= tol * scale,
        "{what}: max |value| ours {max_abs:e}, PyTorch {:e}",
        reference.max_abs
    );
    let n = values.len() as f64;
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    assert!(
        (sum - reference.sum).abs() <= tol * scale * n.sqrt() + 1e-12,
        "{what}: sum ours {sum:e}, PyTorch {:e}",
        reference.sum
    );
    let sum_sq: f64 = values.iter().map(|&v| (v as f64) * (v as f64)).sum();
    assert!(
        (sum_sq - reference.sum_sq).abs() <= 2.0 * tol * reference.sum_sq + 1e-30,
        "{what}: sum of squares ours {sum_sq:e}, PyTorch {:e}",
        reference.sum_sq
    );
}

fn one_step_matches_pytorch(model: &str) {
    let fixture: Fixture = serde_json::from_str(FIXTURE).unwrap();
    let step = &fixture.provenance.step;
    let reference = &fixture.models[model];
    let torch = &fixture.provenance.torch;

    // Dropout off on both sides: the step is then the same function (dropout has its own tests).
    let options = ModelOptions {
        input_dropout: 0.0,
        pool_dropout: 0.0,
        ..ModelOptions::default()
    };
    let net_spec = spec(model, &options).unwrap();
    let varmap = VarMap::new();
    let net = Network::new(&net_spec, &varmap, &Device::Cpu, 0).unwrap();
    load_generated_weights(&varmap, &reference.weights_md5);

    let x = uniform(1000, step.batch * 3 * 32 * 32, 2.0);
    assert_eq!(md5_hex(&x), reference.input_md5, "generated batch");
    let x = Tensor::from_vec(x, (step.batch, 3, 32, 32), &Device::Cpu).unwrap();
    let labels = Tensor::new(reference.labels.as_slice(), &Device::Cpu).unwrap();

    let logits = net.forward(&x, Mode::Eval).unwrap();
    let max_logit = reference.logits.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (&ours, &theirs)) in flat(&logits).iter().zip(&reference.logits).enumerate() {
        assert!(
            (ours as f64 - theirs).abs() <= 1e-4 * max_logit,
            "{model} logit {i}: ours {ours:e}, PyTorch {torch} {theirs:e}"
        );
    }
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let loss_value = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (loss_value - reference.loss).abs() <= 1e-5 * reference.loss,
        "{model} loss: ours {loss_value}, PyTorch {torch} {}",
        reference.loss
    );

    let grads = loss.backward().unwrap();
    let vars = allconv_train::vars::named_vars(&varmap).unwrap();
    for (name, var) in &vars {
        let grad = grads
            .get(var.as_tensor())
            .expect("every parameter has a gradient");
        assert_close(
            &format!("{model} grad {name}"),
            grad,
            &reference.grad[name],
            1e-5,
        );
    }

    let mut sgd = Sgd::from_named(
        vars.clone(),
        SgdConfig {
            lr: step.lr,
            momentum: step.momentum,
            weight_decay: step.weight_decay,
            weight_decay_bias: step.weight_decay_bias,
        },
    )
    .unwrap();
    sgd.step(&grads).unwrap();
    for (name, var) in &vars {
        assert_close(
            &format!("{model} after one step {name}"),
            var.as_tensor(),
            &reference.after_step[name],
            1e-5,
        );
    }
}

#[test]
fn model_c_step_matches_pytorch() {
    one_step_matches_pytorch("model-c");
}

#[test]
fn convpool_cnn_c_step_matches_pytorch() {
    one_step_matches_pytorch("convpool-cnn-c");
}
