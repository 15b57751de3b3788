//! The three ReLU backward rules on CUDA against the CPU: the input gradient of a unit of
//! All-CNN-C by plain backpropagation, the deconvnet rule and guided backpropagation
//! (docs/protocol.md, "Visualising what the networks learned"). Compiled only with
//! `--features cuda`; run on a GPU machine. Same weights (drawn on the host from one seed),
//! same image; fp32 on both, so the tolerance (1e-3 of the largest entry) allows for cuDNN's
//! summation order.
#![cfg(feature = "cuda")]

use allconv_models::{spec, ModelOptions, Network, ReluBackward, Target};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

fn gradient(device: &Device, rule: ReluBackward) -> Vec<f32> {
    let varmap = VarMap::new();
    let net = Network::new(
        &spec("all-cnn-c", &ModelOptions::default()).unwrap(),
        &varmap,
        device,
        3,
    )
    .unwrap();
    let x: Vec<f32> = (0..3 * 32 * 32)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(x, (1, 3, 32, 32), device).unwrap();
    net.input_gradient(&x, Target::Unit { conv: 6, unit: 5 }, rule)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn each_rule_on_cuda_equals_the_cpu() {
    let cuda = Device::new_cuda(0).unwrap();
    for rule in ReluBackward::ALL {
        let cpu = gradient(&Device::Cpu, rule);
        let gpu = gradient(&cuda, rule);
        let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{}: the CPU gradient is zero", rule.name());
        let err = cpu
            .iter()
            .zip(&gpu)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-3 * scale,
            "{}: {err} vs scale {scale}",
            rule.name()
        );
    }
}
