//! Network weights (names, layouts, initialisation) and forward modes (dropout).

mod common;

use allconv_models::{dropout, spec, Init, Mode, ModelOptions, Network};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

fn build(name: &str, options: &ModelOptions, seed: u64) -> (Network, VarMap) {
    let s = spec(name, options).unwrap();
    let varmap = VarMap::new();
    let net = Network::new(&s, &varmap, &Device::Cpu, seed).unwrap();
    (net, varmap)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn weights_have_pytorch_names_and_layouts() {
    let (_, varmap) = build("model-b", &ModelOptions::default(), 0);
    let data = varmap.data().lock().unwrap();
    // Model B: 5x5 96, 1x1 96, 5x5 192, 1x1 192, 3x3 192, 1x1 192, 1x1 10.
    let expected: [(usize, usize, usize); 7] = [
        (96, 3, 5),
        (96, 96, 1),
        (192, 96, 5),
        (192, 192, 1),
        (192, 192, 3),
        (192, 192, 1),
        (10, 192, 1),
    ];
    assert_eq!(data.len(), 2 * expected.len());
    for (i, (out, inp, k)) in expected.into_iter().enumerate() {
        let w = &data[&format!("conv{}.weight", i + 1)];
        assert_eq!(w.dims(), &[out, inp, k, k]);
        assert_eq!(data[&format!("conv{}.bias", i + 1)].dims(), &[out]);
    }
}

#[test]
fn checkpoint_round_trips_through_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let (net, varmap) = build("all-cnn-a", &ModelOptions::default(), 7);
    varmap.save(&path).unwrap();
    let x = common::random(&[2, 3, 32, 32], 12, DType::F32);
    let before = values(&net.forward(&x, Mode::Eval).unwrap());
    // Another seed, then load: the network reads the loaded values in place.
    let (other, mut other_map) = build("all-cnn-a", &ModelOptions::default(), 8);
    assert_ne!(values(&other.forward(&x, Mode::Eval).unwrap()), before);
    other_map.load(&path).unwrap();
    assert_eq!(values(&other.forward(&x, Mode::Eval).unwrap()), before);
    let names = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert!(names.contains_key("conv1.weight") && names.contains_key("conv7.bias"));
}

#[test]
fn xavier_init_is_caffe_uniform_and_seeded() {
    let options = ModelOptions {
        bias_init: 0.1,
        ..ModelOptions::default()
    };
    let (_, a) = build("model-a", &options, 3);
    let (_, b) = build("model-a", &options, 3);
    let (_, c) = build("model-a", &options, 4);
    let (a, b, c) = (
        a.data().lock().unwrap(),
        b.data().lock().unwrap(),
        c.data().lock().unwrap(),
    );
    let w = values(&a["conv2.weight"]);
    assert_eq!(w, values(&b["conv2.weight"]), "same seed, same weights");
    assert_ne!(w, values(&c["conv2.weight"]), "other seed, other weights");
    // conv2 of Model A: fan_in = 96*5*5 = 2400, Caffe bound sqrt(3/2400) = 0.035355;
    // a uniform variable on [-a, a] has variance a^2/3 = 1/2400.
    let bound = (3.0f32 / 2400.0).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.99 * bound, "{max}");
    let variance = w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
    assert!((variance * 2400.0 - 1.0).abs() < 0.02, "{variance}");
    assert!(values(&a["conv2.bias"]).iter().all(|&v| v == 0.1));
}

#[test]
fn he_and_gaussian_init_have_their_standard_deviation() {
    for (init, std) in [
        (Init::He, (2.0f32 / 2400.0).sqrt()),
        (Init::Gaussian { sigma: 0.05 }, 0.05),
    ] {
        let options = ModelOptions {
            init,
            ..ModelOptions::default()
        };
        let (_, map) = build("model-a", &options, 1);
        let w = values(&map.data().lock().unwrap()["conv2.weight"]);
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
        // 460,800 samples: the estimate is within 1% with overwhelming probability.
        assert!((sd / std - 1.0).abs() < 0.01, "{init:?}: {sd} vs {std}");
        assert!(mean.abs() < 0.01 * std, "{init:?}: mean {mean}");
    }
}

#[test]
fn eval_is_deterministic_train_depends_on_the_dropout_seed() {
    let (net, _) = build("all-cnn-c", &ModelOptions::default(), 11);
    let x = common::random(&[2, 3, 32, 32], 13, DType::F32);
    let eval1 = values(&net.forward(&x, Mode::Eval).unwrap());
    let eval2 = values(&net.forward(&x, Mode::Eval).unwrap());
    assert_eq!(eval1, eval2);
    let train1 = values(&net.forward(&x, Mode::Train { dropout_seed: 1 }).unwrap());
    let train1_again = values(&net.forward(&x, Mode::Train { dropout_seed: 1 }).unwrap());
    let train2 = values(&net.forward(&x, Mode::Train { dropout_seed: 2 }).unwrap());
    assert_eq!(train1, train1_again, "same dropout seed, same output");
    assert_ne!(train1, train2, "other dropout seed, other output");
    assert_ne!(train1, eval1, "dropout is off in eval mode only");
}

#[test]
fn no_dropout_makes_train_equal_eval() {
    let options = ModelOptions {
        input_dropout: 0.0,
        pool_dropout: 0.0,
        ..ModelOptions::default()
    };
    let (net, _) = build("model-a", &options, 2);
    let x = common::random(&[2, 3, 32, 32], 14, DType::F32);
    assert_eq!(
        values(&net.forward(&x, Mode::Eval).unwrap()),
        values(&net.forward(&x, Mode::Train { dropout_seed: 9 }).unwrap())
    );
}

#[test]
fn dropout_is_inverted_with_the_given_rate() {
    let x = Tensor::ones(200_000, DType::F32, &Device::Cpu).unwrap();
    let y = values(&dropout(&x, 0.5, 42, 1).unwrap());
    // Kept elements are scaled by 1/(1-0.5) = 2, dropped ones are 0.
    assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    let kept = y.iter().filter(|&&v| v == 2.0).count() as f64 / y.len() as f64;
    // Binomial(200000, 0.5): standard deviation of the fraction 0.0011; 0.01 is 9 sigma.
    assert!((kept - 0.5).abs() < 0.01, "{kept}");
    let y2 = values(&dropout(&x, 0.2, 42, 1).unwrap());
    let kept = y2.iter().filter(|&&v| v != 0.0).count() as f64 / y2.len() as f64;
    assert!((kept - 0.8).abs() < 0.01, "{kept}");
    assert!(y2.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
    // Another stream (layer) gives another mask.
    assert_ne!(values(&dropout(&x, 0.5, 42, 2).unwrap()), y);
}

#[test]
fn training_step_reduces_the_loss() {
    // One SGD step on a fixed batch with a small learning rate must lower the loss: checks that
    // every layer's gradient flows (a broken one would leave it unchanged or raise it).
    let options = ModelOptions {
        final_relu: false,
        input_dropout: 0.0,
        pool_dropout: 0.0,
        ..ModelOptions::default()
    };
    let (net, varmap) = build("all-cnn-a", &options, 5);
    let x = common::random(&[4, 3, 32, 32], 15, DType::F32);
    let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
    let loss = |net: &Network| {
        candle_nn::loss::cross_entropy(&net.forward(&x, Mode::Eval).unwrap(), &y).unwrap()
    };
    let before = loss(&net);
    let grads = before.backward().unwrap();
    for var in varmap.all_vars() {
        let g = grads
            .get(var.as_tensor())
            .expect("every weight has a gradient");
        var.set(&(var.as_tensor() - (g * 0.05).unwrap()).unwrap())
            .unwrap();
    }
    let after = loss(&net).to_scalar::<f32>().unwrap();
    let before = before.to_scalar::<f32>().unwrap();
    assert!(after < before, "{after} >= {before}");
}
