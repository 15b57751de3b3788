//! One training step of every network on CUDA against the same step on the CPU (the GPU path's
//! correctness check). Compiled only with `--features cuda`; run it on a GPU machine from the
//! carried test binary (`cargo test -p allconv-models --features cuda --release --no-run` builds it).
//!
//! Same weights (the initialisation is drawn on the host from the same seed), same batch, dropout
//! off (`Mode::Eval`): the loss must agree to 1e-5 relative and every gradient to 1e-3 relative
//! (to the largest entry of that gradient) in fp32, a tolerance that allows for a
//! different summation order in the GPU's convolution and reduction kernels.
#![cfg(feature = "cuda")]

use allconv_models::{spec, Mode, ModelOptions, Network};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};

fn batch(device: &Device) -> (Tensor, Tensor) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let n = 16;
    let x: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0u32..10)).collect();
    (
        Tensor::from_vec(x, (n, 3, 32, 32), device).unwrap(),
        Tensor::from_vec(y, n, device).unwrap(),
    )
}

/// Loss and gradients (by parameter name) of one forward + backward pass.
fn step(name: &str, device: &Device) -> (f32, Vec<(String, Vec<f32>)>) {
    // No final ReLU: with it most class scores are zero at initialisation and the gradient of
    // the early layers can be zero on both devices, which would compare nothing.
    let options = ModelOptions {
        final_relu: false,
        ..ModelOptions::default()
    };
    let varmap = VarMap::new();
    let net = Network::new(&spec(name, &options).unwrap(), &varmap, device, 3).unwrap();
    let (x, y) = batch(device);
    let loss = candle_nn::loss::cross_entropy(&net.forward(&x, Mode::Eval).unwrap(), &y).unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = data
        .iter()
        .map(|(k, v)| {
            let g = grads
                .get(v.as_tensor())
                .expect("every parameter has a gradient");
            (
                k.clone(),
                g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (loss.to_scalar::<f32>().unwrap(), out)
}

#[test]
fn one_training_step_on_cuda_equals_the_cpu() {
    let cuda = Device::new_cuda(0).expect("a CUDA device");
    for name in allconv_models::MODEL_NAMES {
        let (loss_cpu, grads_cpu) = step(name, &Device::Cpu);
        let (loss_gpu, grads_gpu) = step(name, &cuda);
        let rel = ((loss_cpu - loss_gpu) / loss_cpu).abs();
        assert!(
            rel <= 1e-5,
            "{name}: loss cpu {loss_cpu} cuda {loss_gpu} (rel {rel:e})"
        );
        // zip would stop at the shorter list and compare nothing past it.
        let names = |g: &[(String, Vec<f32>)]| g.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(&grads_cpu), names(&grads_gpu), "{name}: parameters");
        for ((k, gc), (_, gg)) in grads_cpu.iter().zip(&grads_gpu) {
            assert_eq!(gc.len(), gg.len(), "{name} {k}: gradient length");
            let scale = gc.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
            let worst = gc
                .iter()
                .zip(gg)
                // A NaN counts as infinitely wrong (f32::max would skip it).
                .map(|(a, b)| {
                    let d = (a - b).abs() / scale;
                    if d.is_nan() {
                        f32::INFINITY
                    } else {
                        d
                    }
                })
                .fold(0f32, f32::max);
            assert!(
                worst <= 1e-3,
                "{name} {k}: gradient differs by {worst:e} (relative)"
            );
        }
        println!("{name}: loss {loss_cpu} (cpu) {loss_gpu} (cuda), gradients agree");
    }
    // What cuDNN chose for the networks' shapes: the unusual lines in full, then a summary.
    // Written to stdout directly, as the test harness captures only `print!`.
    use std::io::Write;
    let plans = allconv_models::ops::cudnn_plans();
    let unusual = |l: &&String| l.contains("heuristic") || l.contains("ReLU not fused");
    let mut out = std::io::stdout().lock();
    for line in plans.iter().filter(unusual) {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "cuDNN plans of the 12 networks (batch 16, fp32): {} shapes, {} with a heuristic \
         choice or an unfused ReLU",
        plans.len(),
        plans.iter().filter(unusual).count()
    );
}
