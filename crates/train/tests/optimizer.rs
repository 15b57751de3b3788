//! `Sgd` against hand computations of `v = m*v + g + wd*w; w -= lr*v`.

use std::collections::BTreeMap;

use allconv_train::checkpoint::{load_momentum, save_momentum};
use allconv_train::{Sgd, SgdConfig};
use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer;

/// A loss whose gradient with respect to `var` is exactly `grad`: sum(var * grad).
fn step_with_gradient(sgd: &mut Sgd, vars: &[(&Var, &[f32])]) {
    let mut loss: Option<Tensor> = None;
    for (var, grad) in vars {
        let g = Tensor::new(*grad, &Device::Cpu).unwrap();
        let term = (var.as_tensor() * g).unwrap().sum_all().unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => (l + term).unwrap(),
        });
    }
    sgd.backward_step(&loss.unwrap()).unwrap();
}

fn values(var: &Var) -> Vec<f32> {
    var.as_tensor().to_vec1::<f32>().unwrap()
}

fn assert_close(got: &[f32], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            (f64::from(*g) - e).abs() < 1e-6,
            "{what}: got {got:?}, expected {expected:?}"
        );
    }
}

fn config(lr: f64, weight_decay: f64, weight_decay_bias: bool) -> SgdConfig {
    SgdConfig {
        lr,
        momentum: 0.9,
        weight_decay,
        weight_decay_bias,
    }
}

#[test]
fn momentum_and_weight_decay_over_two_steps_and_an_lr_change() {
    let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let mut sgd = Sgd::from_named(
        vec![("layer.weight".into(), w.clone())],
        config(0.1, 0.01, true),
    )
    .unwrap();
    let g: &[f32] = &[0.5, 0.25];

    step_with_gradient(&mut sgd, &[(&w, g)]);
    // v1 = g + wd*w = [0.5 + 0.01, 0.25 - 0.02] = [0.51, 0.23]; w1 = w - 0.1*v1 = [0.949, -2.023]
    assert_close(&values(&w), &[0.949, -2.023], "after step 1");

    step_with_gradient(&mut sgd, &[(&w, g)]);
    // d2 = g + 0.01*w1 = [0.50949, 0.22977]; v2 = 0.9*v1 + d2 = [0.96849, 0.43677];
    // w2 = w1 - 0.1*v2 = [0.852151, -2.066677]
    assert_close(&values(&w), &[0.852151, -2.066677], "after step 2");
    let v = sgd.momentum_buffers()["layer.weight"]
        .to_vec1::<f32>()
        .unwrap();
    assert_close(&v, &[0.96849, 0.43677], "velocity after step 2");

    sgd.set_learning_rate(0.01);
    assert_eq!(sgd.learning_rate(), 0.01);
    step_with_gradient(&mut sgd, &[(&w, g)]);
    // d3 = g + 0.01*w2 = [0.50852151, 0.22933323]; v3 = 0.9*v2 + d3 = [1.38016251, 0.62242623];
    // w3 = w2 - 0.01*v3 = [0.8383493749, -2.0729012623] (the velocity keeps its history across
    // the lr change, as in PyTorch)
    assert_close(
        &values(&w),
        &[0.8383493749, -2.0729012623],
        "after step 3 at lr 0.01",
    );
}

#[test]
fn without_weight_decay_velocity_accumulates_the_gradient() {
    let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let mut sgd = Sgd::from_named(vec![("w".into(), w.clone())], config(0.1, 0.0, true)).unwrap();
    let g: &[f32] = &[0.5, 0.25];
    step_with_gradient(&mut sgd, &[(&w, g)]);
    // v1 = g; w1 = w - 0.1*g = [0.95, -2.025]
    assert_close(&values(&w), &[0.95, -2.025], "after step 1");
    step_with_gradient(&mut sgd, &[(&w, g)]);
    // v2 = 0.9*g + g = 1.9*g = [0.95, 0.475]; w2 = w1 - 0.1*v2 = [0.855, -2.0725]
    assert_close(&values(&w), &[0.855, -2.0725], "after step 2");
}

#[test]
fn bias_decay_is_optional() {
    for (decay_bias, expected) in [
        // d = 1 + 0.01*0.5 = 1.005; b1 = 0.5 - 0.1*1.005 = 0.3995
        (true, 0.3995),
        // d = 1; b1 = 0.5 - 0.1 = 0.4
        (false, 0.4),
    ] {
        let w = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let b = Var::new(&[0.5f32], &Device::Cpu).unwrap();
        let mut sgd = Sgd::from_named(
            vec![
                ("conv1.weight".into(), w.clone()),
                ("conv1.bias".into(), b.clone()),
            ],
            config(0.1, 0.01, decay_bias),
        )
        .unwrap();
        step_with_gradient(&mut sgd, &[(&w, &[1.0]), (&b, &[1.0])]);
        assert_close(
            &values(&b),
            &[expected],
            &format!("bias with weight_decay_bias={decay_bias}"),
        );
        // the weight is decayed either way: 1 - 0.1*(1 + 0.01*1) = 0.899
        assert_close(&values(&w), &[0.899], "weight");
    }
}

#[test]
fn momentum_buffers_are_restored_by_name_whatever_the_parameter_order() {
    let cfg = config(0.1, 0.01, true);
    let ga: &[f32] = &[0.5, 0.25];
    let gb: &[f32] = &[-1.0];

    // Reference: three uninterrupted steps.
    let a = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let b = Var::new(&[0.5f32], &Device::Cpu).unwrap();
    let mut sgd =
        Sgd::from_named(vec![("a".into(), a.clone()), ("b".into(), b.clone())], cfg).unwrap();
    for _ in 0..3 {
        step_with_gradient(&mut sgd, &[(&a, ga), (&b, gb)]);
    }

    // Interrupted after one step: buffers saved to a file, restored into an optimizer that lists
    // the parameters in the other order.
    let a2 = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let b2 = Var::new(&[0.5f32], &Device::Cpu).unwrap();
    let mut first = Sgd::from_named(
        vec![("a".into(), a2.clone()), ("b".into(), b2.clone())],
        cfg,
    )
    .unwrap();
    step_with_gradient(&mut first, &[(&a2, ga), (&b2, gb)]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("momentum.safetensors");
    save_momentum(&file, &first).unwrap();
    let mut second = Sgd::from_named(
        vec![("b".into(), b2.clone()), ("a".into(), a2.clone())],
        cfg,
    )
    .unwrap();
    load_momentum(&file, &mut second).unwrap();
    for _ in 0..2 {
        step_with_gradient(&mut second, &[(&a2, ga), (&b2, gb)]);
    }
    assert_eq!(values(&a), values(&a2), "a after resume");
    assert_eq!(values(&b), values(&b2), "b after resume");
}

#[test]
fn momentum_buffers_of_another_model_are_refused() {
    let a = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let mut sgd = Sgd::from_named(vec![("a".into(), a)], config(0.1, 0.0, true)).unwrap();
    let mut wrong = BTreeMap::new();
    wrong.insert(
        "a".to_string(),
        Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu).unwrap(),
    );
    let err = sgd.set_momentum_buffers(&wrong).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
    let mut unknown = BTreeMap::new();
    unknown.insert(
        "z".to_string(),
        Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap(),
    );
    let err = sgd.set_momentum_buffers(&unknown).unwrap_err().to_string();
    assert!(err.contains("`z`"), "{err}");
}
