//! Our own CUDA kernels against the CPU code on the same inputs: padded max-pool forward and
//! backward, ReLU mask, dropout and the fused SGD step, on what the device check (`allconv
//! check`, run by `cuda_vs_cpu.rs`) leaves out: views with an offset and NaNs. Compiled only
//! with `--features cuda`; run with `cargo test --release --features cuda -p allconv-models` on
//! a GPU machine.
//!
//! The expected values are the CPU path's. The pool, dropout and SGD kernels do the same
//! floating-point operations in the same order as the CPU (no fused multiply-adds), so they must
//! agree bit for bit; the ReLU mask goes through the convolution (cuDNN), checked to 1e-6.
//! Inputs include the network's shapes (32x32 -> 16x16 with 96 channels, 16x16 -> 8x8 with 192),
//! views with a non-zero start offset, ties and a NaN.
#![cfg(feature = "cuda")]

mod common;

use allconv_models::ops::{conv2d_relu, dropout, max_pool2d, sgd_step};
use candle_core::{DType, Device, Tensor, Var};
use common::bits;

fn gpu() -> Device {
    Device::new_cuda(0).expect("these tests need a CUDA device")
}

fn assert_same_bits(cpu: &Tensor, cuda: &Tensor, what: &str) {
    let (a, b) = (bits(cpu), bits(cuda));
    assert_eq!(a.len(), b.len(), "{what}: sizes differ");
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        panic!(
            "{what}: element {i} differs: CPU bits {:#x}, CUDA bits {:#x}",
            a[i], b[i]
        );
    }
}

/// Deterministic values on 8 levels (so pooling windows have ties), some negative.
fn levels(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i.wrapping_mul(2_654_435_761) + salt) % 97 % 8) as f32 - 3.0)
        .collect()
}

/// Deterministic non-dyadic values.
fn varied(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 - 1001.0) / 313.0)
        .collect()
}

/// Pool output and the gradient of `sum(pool(x) * r)` with respect to the whole buffer, where
/// `x` is the buffer's images `offset..offset+n` (a view with a start offset when offset > 0).
fn pool_run(
    data: &[f32],
    dims: (usize, usize, usize, usize),
    offset: usize,
    geometry: (usize, usize, usize),
    device: &Device,
) -> (Tensor, Tensor) {
    let (n, c, h, w) = dims;
    let (kernel, stride, pad) = geometry;
    let base = Var::from_tensor(
        &Tensor::from_slice(data, (offset + n, c, h, w), &Device::Cpu)
            .unwrap()
            .to_device(device)
            .unwrap(),
    )
    .unwrap();
    let x = base.as_tensor().narrow(0, offset, n).unwrap();
    let y = max_pool2d(&x, kernel, stride, pad).unwrap();
    let r = Tensor::from_vec(varied(y.elem_count(), 5), y.shape(), &Device::Cpu)
        .unwrap()
        .to_device(device)
        .unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(base.as_tensor()).unwrap().clone();
    (y, dx)
}

#[test]
fn max_pool_forward_and_backward_equal_the_cpu_bit_for_bit() {
    let cuda = gpu();
    // (n, c, h, w), offset in images, (kernel, stride, pad)
    let cases = [
        ((2, 96, 32, 32), 1, (3, 2, 1)),
        ((2, 192, 16, 16), 1, (3, 2, 1)),
        ((3, 5, 7, 9), 0, (3, 2, 1)),
        ((1, 2, 6, 6), 2, (2, 2, 0)),
        ((2, 3, 7, 7), 1, (3, 1, 1)),
        ((1, 3, 5, 6), 0, (5, 3, 2)),
        ((1, 1, 1, 1), 0, (3, 2, 1)),
    ];
    for (case, ((n, c, h, w), offset, geometry)) in cases.into_iter().enumerate() {
        let mut data = levels((offset + n) * c * h * w, case);
        if case == 2 {
            // A NaN wins its windows and takes their whole gradient (first arg-max).
            data[offset * c * h * w + 10] = f32::NAN;
        }
        let (y_cpu, dx_cpu) = pool_run(&data, (n, c, h, w), offset, geometry, &Device::Cpu);
        let (y_gpu, dx_gpu) = pool_run(&data, (n, c, h, w), offset, geometry, &cuda);
        let what = format!("case {case}: {:?} {geometry:?}", (n, c, h, w));
        assert_eq!(y_cpu.dims(), y_gpu.dims(), "{what}");
        assert_same_bits(&y_cpu, &y_gpu, &format!("{what} forward"));
        assert_same_bits(&dx_cpu, &dx_gpu, &format!("{what} backward"));
    }
}

#[test]
fn relu_mask_equals_the_cpu() {
    // A 1x1 convolution with identity weights and zero bias passes x through unchanged, so the
    // gradient of sum(relu(x) * r) with respect to x is r * (x > 0): the ReLU mask kernel.
    let cuda = gpu();
    let (n, c, h, w) = (2, 8, 6, 6);
    let x_data = levels(n * c * h * w, 3);
    let mut eye = vec![0f32; c * c];
    for i in 0..c {
        eye[i * c + i] = 1.0;
    }
    let run = |device: &Device| {
        let x = Var::from_tensor(
            &Tensor::from_slice(&x_data, (n, c, h, w), &Device::Cpu)
                .unwrap()
                .to_device(device)
                .unwrap(),
        )
        .unwrap();
        let wt = Tensor::from_slice(&eye, (c, c, 1, 1), device).unwrap();
        let b = Tensor::zeros(c, DType::F32, device).unwrap();
        let y = conv2d_relu(x.as_tensor(), &wt, &b, 1, 0).unwrap();
        let r = Tensor::from_vec(varied(y.elem_count(), 1), y.shape(), device).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (cpu, gpu) = (run(&Device::Cpu), run(&cuda));
    let r = varied(n * c * h * w, 1);
    for i in 0..cpu.len() {
        // Independent expectation: r where x > 0, else 0.
        let expected = if x_data[i] > 0.0 { r[i] } else { 0.0 };
        assert!((cpu[i] - expected).abs() <= 1e-6, "CPU element {i}");
        assert!(
            (gpu[i] - cpu[i]).abs() <= 1e-6,
            "element {i}: CPU {} CUDA {}",
            cpu[i],
            gpu[i]
        );
    }
}

#[test]
fn dropout_masks_and_gradients_equal_the_cpu_bit_for_bit() {
    let cuda = gpu();
    let (n, offset) = (1_000_000, 3);
    let data = varied(offset + n, 9);
    for dtype in [DType::F32, DType::F64] {
        for (rate, seed, stream) in [(0.5, 17, 1), (0.2, 17, 2), (0.5, 18, 3)] {
            let run = |device: &Device| {
                let base = Var::from_tensor(
                    &Tensor::from_slice(&data, offset + n, &Device::Cpu)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap()
                        .to_device(device)
                        .unwrap(),
                )
                .unwrap();
                // A view with a start offset, as the op sees it.
                let x = base.as_tensor().narrow(0, offset, n).unwrap();
                let y = dropout(&x, rate, seed, stream).unwrap();
                let c = x.affine(0.5, 1.0).unwrap().detach();
                let grads = (&y * &c).unwrap().sum_all().unwrap().backward().unwrap();
                (y, grads.get(base.as_tensor()).unwrap().clone())
            };
            let (y_cpu, g_cpu) = run(&Device::Cpu);
            let (y_gpu, g_gpu) = run(&cuda);
            let what = format!("{dtype:?} rate {rate} seed {seed} stream {stream}");
            assert_same_bits(&y_cpu, &y_gpu, &format!("{what} forward"));
            assert_same_bits(&g_cpu, &g_gpu, &format!("{what} gradient"));
        }
    }
}

#[test]
fn sgd_step_equals_the_cpu_bit_for_bit() {
    let cuda = gpu();
    // A 192x192x3x3 convolution weight, a bias-sized one and an odd size; parameters, buffers
    // and gradients are views with a start offset (as the convolution's dw/db are).
    for dtype in [DType::F32, DType::F64] {
        for (count, wd) in [(192 * 192 * 9, 5e-4), (192, 0.0), (1001, 1e-3)] {
            let make = |salt: usize, device: &Device| {
                Tensor::from_vec(varied(count + 7, salt), count + 7, &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
                    .to_device(device)
                    .unwrap()
            };
            let run = |device: &Device| {
                let (w_all, v_all) = (make(1, device), make(2, device));
                let (w, v) = (
                    w_all.narrow(0, 7, count).unwrap(),
                    v_all.narrow(0, 3, count).unwrap(),
                );
                for step in 0..3 {
                    let g_all = make(10 + step, device);
                    let g = g_all.narrow(0, 5, count).unwrap();
                    sgd_step(&w, &v, &g, 0.05, 0.9, wd).unwrap();
                }
                (w_all, v_all)
            };
            let (w_cpu, v_cpu) = run(&Device::Cpu);
            let (w_gpu, v_gpu) = run(&cuda);
            let what = format!("{dtype:?} {count} elements wd {wd}");
            assert_same_bits(&w_cpu, &w_gpu, &format!("{what}: weights"));
            assert_same_bits(&v_cpu, &v_gpu, &format!("{what}: velocity"));
            // The elements outside the views were left alone on the GPU too.
            assert_same_bits(
                &w_gpu.narrow(0, 0, 7).unwrap(),
                &make(1, &Device::Cpu).narrow(0, 0, 7).unwrap(),
                &format!("{what}: weights before the view"),
            );
        }
    }
}
