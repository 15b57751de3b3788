//! The fused in-place SGD step (`ops::sgd_step`) against hand computations and against the
//! unfused candle expression it replaces, on the CPU.

mod common;

use allconv_models::ops::sgd_step;
use candle_core::{DType, Device, Tensor, Var};
use common::bits;

fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn two_steps_with_weight_decay_by_hand() {
    // lr 0.5, momentum 0.5, wd 0.25: all values below are dyadic, so f32 holds them exactly.
    let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
    let v = t(&[0.0, 0.0]);
    let g = t(&[0.5, 0.25]);
    sgd_step(&w, &v, &g, 0.5, 0.5, 0.25).unwrap();
    // d1 = g + 0.25*w = [0.5 + 0.25, 0.25 - 0.5] = [0.75, -0.25]; v1 = 0.5*0 + d1 = d1;
    // w1 = w - 0.5*v1 = [1 - 0.375, -2 + 0.125] = [0.625, -1.875]
    assert_eq!(values(&v), [0.75, -0.25]);
    assert_eq!(values(&w), [0.625, -1.875]);
    sgd_step(&w, &v, &g, 0.5, 0.5, 0.25).unwrap();
    // d2 = g + 0.25*w1 = [0.5 + 0.15625, 0.25 - 0.46875] = [0.65625, -0.21875];
    // v2 = 0.5*v1 + d2 = [0.375 + 0.65625, -0.125 - 0.21875] = [1.03125, -0.34375];
    // w2 = w1 - 0.5*v2 = [0.625 - 0.515625, -1.875 + 0.171875] = [0.109375, -1.703125]
    assert_eq!(values(&v), [1.03125, -0.34375]);
    assert_eq!(values(&w), [0.109375, -1.703125]);
}

#[test]
fn two_steps_without_weight_decay_by_hand() {
    for dtype in [DType::F32, DType::F64, DType::BF16] {
        // BF16 has no fused op and takes the candle-ops path: the same hand values (all need
        // at most 6 significant bits).
        let w = Var::from_tensor(&t(&[1.0, -2.0]).to_dtype(dtype).unwrap()).unwrap();
        let v = t(&[0.0, 0.0]).to_dtype(dtype).unwrap();
        let g = t(&[0.5, 0.25]).to_dtype(dtype).unwrap();
        sgd_step(&w, &v, &g, 0.5, 0.5, 0.0).unwrap();
        // v1 = g = [0.5, 0.25]; w1 = w - 0.5*v1 = [0.75, -2.125]
        assert_eq!(values(&v), [0.5, 0.25], "{dtype:?}");
        assert_eq!(values(&w), [0.75, -2.125], "{dtype:?}");
        sgd_step(&w, &v, &g, 0.5, 0.5, 0.0).unwrap();
        // v2 = 0.5*v1 + g = [0.75, 0.375]; w2 = w1 - 0.5*v2 = [0.375, -2.3125]
        assert_eq!(values(&v), [0.75, 0.375], "{dtype:?}");
        assert_eq!(values(&w), [0.375, -2.3125], "{dtype:?}");
    }
}

/// Deterministic non-dyadic inputs.
fn data(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + salt * 104_729) % 2003) as f32 - 1001.0) / 313.0)
        .collect()
}

/// The unfused candle expression that `sgd_step` replaces (and `Sgd::step` used before it).
fn reference(w: &Tensor, v: &Tensor, g: &Tensor, lr: f64, m: f64, wd: f64) -> (Tensor, Tensor) {
    let d = if wd != 0.0 {
        (g + w.affine(wd, 0.0).unwrap()).unwrap()
    } else {
        g.clone()
    };
    let v = (v.affine(m, 0.0).unwrap() + d).unwrap();
    let w = (w - v.affine(lr, 0.0).unwrap()).unwrap();
    (w, v)
}

#[test]
fn bit_identical_to_the_unfused_candle_expression() {
    let n = 100_003;
    for dtype in [DType::F32, DType::F64] {
        for wd in [5e-4, 0.0] {
            let w = t(&data(n, 1)).to_dtype(dtype).unwrap();
            let v = t(&data(n, 2)).to_dtype(dtype).unwrap();
            let (mut w_ref, mut v_ref) = (w.copy().unwrap(), v.copy().unwrap());
            for step in 0..3 {
                let g = t(&data(n, 3 + step)).to_dtype(dtype).unwrap();
                (w_ref, v_ref) = reference(&w_ref, &v_ref, &g, 0.01, 0.9, wd);
                sgd_step(&w, &v, &g, 0.01, 0.9, wd).unwrap();
            }
            assert!(
                bits(&w) == bits(&w_ref),
                "{dtype:?} wd {wd}: weights differ"
            );
            assert!(
                bits(&v) == bits(&v_ref),
                "{dtype:?} wd {wd}: velocity differs"
            );
        }
    }
}

#[test]
fn views_with_a_start_offset_update_only_their_elements() {
    // Parameters and gradients can be views into larger buffers (the convolution's backward
    // returns dw and db as narrowed slices of one flat tensor).
    let w_all = t(&[9.0, 1.0, -2.0, 9.0]);
    let v_all = t(&[7.0, 0.0, 0.0, 7.0, 7.0]);
    let g_all = t(&[3.0, 3.0, 0.5, 0.25]);
    let (w, v, g) = (
        w_all.narrow(0, 1, 2).unwrap(),
        v_all.narrow(0, 1, 2).unwrap(),
        g_all.narrow(0, 2, 2).unwrap(),
    );
    sgd_step(&w, &v, &g, 0.5, 0.5, 0.25).unwrap();
    // The first step of `two_steps_with_weight_decay_by_hand`; the neighbours stay.
    assert_eq!(values(&w_all), [9.0, 0.625, -1.875, 9.0]);
    assert_eq!(values(&v_all), [7.0, 0.75, -0.25, 7.0, 7.0]);
    assert_eq!(values(&g_all), [3.0, 3.0, 0.5, 0.25]);
}

#[test]
fn mismatched_or_aliased_operands_are_refused() {
    let w = t(&[1.0, 2.0]);
    let v = t(&[0.0, 0.0]);
    let err = |r: candle_core::Result<()>| r.unwrap_err().to_string();
    let e = err(sgd_step(&w, &v, &t(&[1.0, 2.0, 3.0]), 0.1, 0.9, 0.0));
    assert!(e.contains("gradient has shape [3]"), "{e}");
    let e = err(sgd_step(
        &w,
        &v.to_dtype(DType::F64).unwrap(),
        &t(&[1.0, 2.0]),
        0.1,
        0.9,
        0.0,
    ));
    assert!(e.contains("momentum buffer is F64"), "{e}");
    let e = err(sgd_step(&w, &w.clone(), &t(&[1.0, 2.0]), 0.1, 0.9, 0.0));
    assert!(e.contains("must not share storage"), "{e}");
    let e = err(sgd_step(&w, &v, &w.narrow(0, 0, 2).unwrap(), 0.1, 0.9, 0.0));
    assert!(e.contains("must not share storage"), "{e}");
    let square = t(&[1.0, 2.0, 3.0, 4.0]).reshape((2, 2)).unwrap();
    let e = err(sgd_step(
        &square.t().unwrap(),
        &Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
        &Tensor::ones((2, 2), DType::F32, &Device::Cpu).unwrap(),
        0.1,
        0.9,
        0.0,
    ));
    assert!(e.contains("must be contiguous"), "{e}");
    // Nothing was written by the refused calls.
    assert_eq!(values(&w), [1.0, 2.0]);
    assert_eq!(values(&v), [0.0, 0.0]);
}
