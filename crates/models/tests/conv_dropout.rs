//! The fused convolution + ReLU + dropout (`ops::conv2d_relu_dropout`) against the two steps
//! done separately: `ops::conv2d_relu` followed by `ops::dropout` (same seed and stream, so the
//! same mask), values and the gradients of input, weight and bias, in f64 and f32; plus the
//! mask itself against `Dropout::keeps` (whose hash `tests/dropout.rs` pins to Python's values).

use allconv_models::ops::{conv2d_relu, conv2d_relu_dropout, dropout, Dropout};
mod common;

use candle_core::{DType, Device, Tensor};
use common::{random_var, to_f64};

fn assert_close(what: &str, got: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in got.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tol, "{what}[{i}]: {a} vs {e}");
    }
}

/// Values and the gradients `(dx, dw, db)` of `sum(out * weights)` for both ways.
#[test]
fn fused_values_and_gradients_equal_conv_relu_then_dropout() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        // Stride 2 (All-CNN's layers) and 1; 8x8 and 7x7 inputs give outputs of 16, 64 and 49
        // positions, so several images share one GEMM; 5 images split unevenly over threads.
        for (kernel, stride, pad, size) in [(3, 2, 1, 8), (3, 1, 1, 8), (3, 2, 1, 7), (1, 1, 0, 7)]
        {
            for (rate, seed, stream) in [(0.5, 11, 2), (0.2, 3, 1), (0.0, 1, 1)] {
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let case = format!(
                        "{dtype:?} k{kernel} s{stride} p{pad} {size}x{size} rate {rate}, \
                         {threads} threads"
                    );
                    pool.install(|| {
                        let x = random_var(&[5, 3, size, size], 1, dtype);
                        let w = random_var(&[4, 3, kernel, kernel], 2, dtype);
                        let b = random_var(&[4], 3, dtype);
                        let op = Dropout::new(rate, seed, stream).unwrap();
                        let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
                        let fused = conv2d_relu_dropout(xt, wt, bt, stride, pad, op).unwrap();
                        let relu = conv2d_relu(xt, wt, bt, stride, pad).unwrap();
                        let unfused = dropout(&relu, rate, seed, stream).unwrap();
                        assert_eq!(fused.dims(), unfused.dims(), "{case}");
                        assert_close(&case, &to_f64(&fused), &to_f64(&unfused), tol);

                        // The mask is `Dropout::keeps` of the row-major index, times the
                        // ReLU output.
                        let relu = to_f64(&relu);
                        for (i, (&got, &r)) in to_f64(&fused).iter().zip(&relu).enumerate() {
                            let want = if op.keeps(i as u64) {
                                r * op.scale()
                            } else {
                                0.0
                            };
                            assert!((got - want).abs() <= tol, "{case} mask [{i}]");
                        }

                        // A weighted sum, so each output's gradient differs.
                        let n = fused.elem_count();
                        let g: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 2.5).collect();
                        let g = Tensor::from_vec(g, fused.shape(), &Device::Cpu)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap();
                        let grads = |out: &Tensor| {
                            let grads = out.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
                            [xt, wt, bt].map(|v| to_f64(grads.get(v).unwrap()))
                        };
                        let (got, want) = (grads(&fused), grads(&unfused));
                        for (name, (a, e)) in ["dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
                            assert_close(&format!("{case} {name}"), a, e, tol);
                            // Not a vacuous comparison.
                            assert!(a.iter().any(|&v| v != 0.0), "{case} {name} all zero");
                        }
                    });
                }
            }
        }
    }
}

#[test]
fn fused_op_refuses_an_invalid_rate() {
    let x = random_var(&[1, 1, 4, 4], 1, DType::F32);
    let w = random_var(&[1, 1, 3, 3], 2, DType::F32);
    let b = random_var(&[1], 3, DType::F32);
    let op = Dropout {
        rate: 1.0,
        seed: 1,
        stream: 1,
    };
    let result = conv2d_relu_dropout(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1, 1, op);
    assert!(result.is_err());
}
