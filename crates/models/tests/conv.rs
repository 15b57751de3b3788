//! The im2col + GEMM convolution: forward against candle's own conv2d, and f64
//! finite-difference gradient checks with respect to input, weight and bias; each on every
//! CPU kernel path this CPU runs (AVX-512, AVX2, portable).

use allconv_models::ops::{conv2d, conv2d_relu};
mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::random;

/// (kernel, stride, pad) of every convolution shape the 12 networks use: padded 3x3 and 5x5 with
/// stride 1 and 2, 1x1 with stride 1 and 2 (Strided-CNN-B), and the unpadded 3x3.
const CASES: [(usize, usize, usize); 7] = [
    (3, 1, 1),
    (3, 2, 1),
    (5, 1, 2),
    (5, 2, 2),
    (1, 1, 0),
    (1, 2, 0),
    (3, 1, 0),
];

#[test]
fn forward_equals_candle_conv2d() {
    common::on_every_cpu_path(|| {
        for dtype in [DType::F32, DType::F64] {
            for (k, stride, pad) in CASES {
                let x = random(&[3, 4, 9, 8], 1, dtype);
                let w = random(&[5, 4, k, k], 2, dtype);
                let b = random(&[5], 3, dtype);
                let ours = conv2d(&x, &w, &b, stride, pad).unwrap();
                let reference = x
                    .conv2d(&w, pad, stride, 1, 1)
                    .unwrap()
                    .broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap())
                    .unwrap();
                assert_eq!(ours.dims(), reference.dims(), "k{k} s{stride} p{pad}");
                let diff = (ours - reference)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                let tolerance = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
                assert!(diff < tolerance, "{dtype:?} k{k} s{stride} p{pad}: {diff}");
            }
        }
    });
}

#[test]
fn forward_on_a_hand_computed_case() {
    // x = 1..=9 as one 3x3 image, w = all ones 3x3, bias 0.5, pad 1, stride 2: outputs at
    // (0,0): 1+2+4+5 = 12, (0,1): 2+3+5+6 = 16, (1,0): 4+5+7+8 = 24, (1,1): 5+6+8+9 = 28, +0.5.
    let x = Tensor::arange(1f32, 10.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 3, 3))
        .unwrap();
    let w = Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
    let y = conv2d(&x, &w, &b, 2, 1).unwrap();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![12.5, 16.5, 24.5, 28.5]
    );
}

/// Largest |analytic - numeric| / max(1, |numeric|) over every element of `var`.
fn max_gradient_error(var: &Var, analytic: &Tensor, loss: &dyn Fn() -> f64) -> f64 {
    let original = common::to_f64(var.as_tensor());
    let analytic = common::to_f64(analytic);
    let eps = 1e-6;
    let mut worst = 0f64;
    for i in 0..original.len() {
        let mut values = original.clone();
        values[i] = original[i] + eps;
        var.set(&Tensor::from_vec(values.clone(), var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let plus = loss();
        values[i] = original[i] - eps;
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let minus = loss();
        let numeric = (plus - minus) / (2.0 * eps);
        worst = worst.max((analytic[i] - numeric).abs() / numeric.abs().max(1.0));
    }
    var.set(&Tensor::from_vec(original, var.shape(), &Device::Cpu).unwrap())
        .unwrap();
    worst
}

#[test]
fn gradients_match_finite_differences() {
    common::on_every_cpu_path(|| {
        for (k, stride, pad) in CASES {
            let x = Var::from_tensor(&random(&[2, 3, 7, 6], 10, DType::F64)).unwrap();
            let w = Var::from_tensor(&random(&[4, 3, k, k], 11, DType::F64)).unwrap();
            let b = Var::from_tensor(&random(&[4], 12, DType::F64)).unwrap();
            let probe_shape = conv2d(&x, &w, &b, stride, pad).unwrap().dims().to_vec();
            // loss = sum(conv(x) * r): a random linear functional, so every output gradient differs.
            let r = random(&probe_shape, 13, DType::F64);
            let loss_tensor = || {
                (conv2d(&x, &w, &b, stride, pad).unwrap() * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
            };
            let loss = || loss_tensor().to_scalar::<f64>().unwrap();
            let grads = loss_tensor().backward().unwrap();
            for (name, var) in [("input", &x), ("weight", &w), ("bias", &b)] {
                let g = grads
                    .get(var)
                    .unwrap_or_else(|| panic!("no {name} gradient"));
                let error = max_gradient_error(var, g, &loss);
                assert!(error < 1e-7, "k{k} s{stride} p{pad} {name}: {error}");
            }
        }
    });
}

#[test]
fn gradients_equal_candle_conv2d_gradients_in_f32() {
    common::on_every_cpu_path(|| {
        // candle's own conv2d backward (slow, but independent) on a batch of 3.
        let x = Var::from_tensor(&random(&[3, 4, 8, 8], 20, DType::F32)).unwrap();
        let w = Var::from_tensor(&random(&[6, 4, 3, 3], 21, DType::F32)).unwrap();
        let b = Var::from_tensor(&random(&[6], 22, DType::F32)).unwrap();
        for (stride, pad) in [(1, 1), (2, 1)] {
            let r = random(&[3, 6, 8 / stride, 8 / stride], 23, DType::F32);
            let ours = (conv2d(&x, &w, &b, stride, pad).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let reference = (x
                .conv2d(&w, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, 6, 1, 1)).unwrap())
                .unwrap()
                * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for var in [&x, &w, &b] {
                let a = ours
                    .get(var)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let e = reference
                    .get(var)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                for (u, v) in a.iter().zip(&e) {
                    assert!((u - v).abs() < 1e-4, "stride {stride}: {u} vs {v}");
                }
            }
        }
    });
}

#[test]
fn no_input_gradient_for_a_plain_input() {
    // The network input is no variable: backward must not produce (or spend time on) its grad.
    let x = random(&[2, 3, 6, 6], 30, DType::F64);
    let w = Var::from_tensor(&random(&[4, 3, 3, 3], 31, DType::F64)).unwrap();
    let b = Var::from_tensor(&random(&[4], 32, DType::F64)).unwrap();
    let grads = conv2d(&x, &w, &b, 1, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(grads.get(&x).is_none());
    // d(sum)/d(bias_o) = number of output positions per channel times batch = 2 * 36 = 72.
    let db = grads.get(&b).unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(db, vec![72.0; 4]);
}

#[test]
fn fused_relu_equals_conv_then_candle_relu() {
    common::on_every_cpu_path(|| {
        // Random inputs never give an output of exactly 0, where candle's ReLU gradient (>= 0)
        // and PyTorch's (> 0) differ.
        for (k, stride, pad) in CASES {
            let x = Var::from_tensor(&random(&[2, 3, 7, 6], 40, DType::F64)).unwrap();
            let w = Var::from_tensor(&random(&[4, 3, k, k], 41, DType::F64)).unwrap();
            let b = Var::from_tensor(&random(&[4], 42, DType::F64)).unwrap();
            let fused = conv2d_relu(&x, &w, &b, stride, pad).unwrap();
            let reference = conv2d(&x, &w, &b, stride, pad).unwrap().relu().unwrap();
            let r = random(fused.dims(), 43, DType::F64);
            let a = common::to_f64(&fused);
            let e = common::to_f64(&reference);
            assert_eq!(a, e, "forward k{k} s{stride} p{pad}");
            assert!(a.contains(&0.0) && a.iter().any(|&v| v > 0.0));
            let g1 = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (reference * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for var in [&x, &w, &b] {
                let a = common::to_f64(g1.get(var).unwrap());
                let e = common::to_f64(g2.get(var).unwrap());
                for (u, v) in a.iter().zip(&e) {
                    assert!((u - v).abs() < 1e-12, "k{k} s{stride} p{pad}: {u} vs {v}");
                }
            }
        }
    });
}

#[test]
fn large_products_equal_candle_conv2d_on_every_path() {
    // Wider and deeper than the cases above, as in the networks: 100 output channels (past one
    // 96-row AVX-512 tile, so a partial tile too) and C*kh*kw = 64*9 = 576 (past the GEMM's
    // 512-deep blocks), against candle's own direct conv2d in f64.
    common::on_every_cpu_path(|| {
        for dtype in [DType::F32, DType::F64] {
            let x = random(&[2, 64, 10, 10], 50, dtype);
            let w = random(&[100, 64, 3, 3], 51, dtype);
            let b = random(&[100], 52, dtype);
            let ours = common::to_f64(&conv2d(&x, &w, &b, 1, 1).unwrap());
            let reference = x
                .to_dtype(DType::F64)
                .unwrap()
                .conv2d(&w.to_dtype(DType::F64).unwrap(), 1, 1, 1, 1)
                .unwrap()
                .broadcast_add(
                    &b.to_dtype(DType::F64)
                        .unwrap()
                        .reshape((1, 100, 1, 1))
                        .unwrap(),
                )
                .unwrap();
            let reference = common::to_f64(&reference);
            // Sums of 576 products of values in [-1, 1): f32 rounding stays far below 1e-3.
            let tolerance = if dtype == DType::F32 { 1e-3 } else { 1e-10 };
            for (i, (a, e)) in ours.iter().zip(&reference).enumerate() {
                assert!(
                    (a - e).abs() < tolerance,
                    "{dtype:?} element {i}: {a} vs {e}"
                );
            }
        }
    });
}
