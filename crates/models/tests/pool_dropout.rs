//! The fused max-pool + dropout (`ops::max_pool2d_dropout`) against the two steps done
//! separately with independent code: candle's composed pooling (`max_pool2d_reference`) and a
//! mask from `Dropout::keeps` (whose hash `tests/dropout.rs` pins to Python's values).

use allconv_models::ops::{max_pool2d_dropout, max_pool2d_reference, Dropout};
mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::to_f64;

/// Distinct values (no ties, so every window has one arg-max), some negative.
fn input(shape: (usize, usize, usize, usize), dtype: DType) -> Var {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7919) % n) as f64 / 13.0 - 20.0)
        .collect();
    Var::from_tensor(
        &Tensor::from_vec(v, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn fused_values_and_gradients_are_pool_then_mask() {
    for dtype in [DType::F32, DType::F64] {
        for (kernel, stride, pad) in [(3, 2, 1), (2, 2, 0), (3, 1, 1)] {
            for (rate, seed, stream) in [(0.5, 11, 2), (0.2, 3, 1), (0.0, 1, 1)] {
                let x = input((2, 3, 8, 8), dtype);
                let op = Dropout::new(rate, seed, stream).unwrap();
                let y = max_pool2d_dropout(x.as_tensor(), kernel, stride, pad, op).unwrap();

                let pooled = max_pool2d_reference(x.as_tensor(), kernel, stride, pad).unwrap();
                assert_eq!(y.dims(), pooled.dims());
                let mask: Vec<f64> = (0..pooled.elem_count() as u64)
                    .map(|i| if op.keeps(i) { op.scale() } else { 0.0 })
                    .collect();
                let mask = Tensor::from_vec(mask, pooled.shape(), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let expected = pooled.mul(&mask).unwrap();
                let case = format!("{dtype:?} k{kernel} s{stride} p{pad} rate {rate}");
                assert_eq!(to_f64(&y), to_f64(&expected), "{case}");

                // A weighted sum, so each output's gradient differs.
                let w: Vec<f64> = (0..y.elem_count()).map(|i| (i % 5) as f64 - 1.5).collect();
                let w = Tensor::from_vec(w, y.shape(), &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let grad = |out: &Tensor| {
                    let grads = out.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
                    to_f64(grads.get(x.as_tensor()).unwrap())
                };
                let got = grad(&y);
                assert_eq!(got, grad(&expected), "{case}");
                // Some input gradients are nonzero (not a vacuous comparison).
                assert!(got.iter().any(|&g| g != 0.0), "{case}");
            }
        }
    }
}
