//! The padded 3x3/2 max-pool: PyTorch `MaxPool2d(3, 2, padding=1)` values, gradient routing to
//! the arg-max, finite differences, and the composed fallback used on other devices.

use allconv_models::ops::{max_pool2d_padded, max_pool2d_reference};
mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::random;

/// Channel 0 has ties and a shared arg-max; channel 1 is all negative, where zero padding
/// would wrongly give 0 at the borders.
fn fixed_input() -> Tensor {
    #[rustfmt::skip]
    let channel0 = [
        1., 5., 2., 0., 3.,
        4., 5., 1., 7., 2.,
        0., 2., 9., 9., 1.,
        6., 3., 8., 4., -1.,
        2., 7., 1., 6., 5.,
    ];
    let channel1: Vec<f64> = (1..=25).map(|v| -(v as f64)).collect();
    let values: Vec<f64> = channel0.iter().copied().chain(channel1).collect();
    Tensor::from_vec(values, (1, 2, 5, 5), &Device::Cpu).unwrap()
}

#[test]
fn forward_equals_pytorch_maxpool2d_3_2_1() {
    // Expected values of torch.nn.MaxPool2d(3, 2, padding=1) on fixed_input(), computed by hand:
    // output (i, j) is the max over rows 2i-1..=2i+1 and columns 2j-1..=2j+1, clipped to the
    // image (PyTorch pads with -inf). Channel 0, e.g. (0,0) = max{1,5,4,5} = 5,
    // (1,1) = max{5,1,7,2,9,9,3,8,4} = 9, (2,2) = max{4,-1,6,5} = 6.
    // Channel 1 (-1..-25 row-major): the top-left element of each clipped window.
    for dtype in [DType::F32, DType::F64] {
        let y = max_pool2d_padded(&fixed_input().to_dtype(dtype).unwrap()).unwrap();
        assert_eq!(y.dims(), &[1, 2, 3, 3]);
        let y = y
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        #[rustfmt::skip]
        let expected = [
            5., 7., 7.,
            6., 9., 9.,
            7., 8., 6.,
            -1., -2., -4.,
            -6., -7., -9.,
            -16., -17., -19.,
        ];
        assert_eq!(y, expected, "{dtype:?}");
    }
}

#[test]
fn backward_routes_gradient_to_first_argmax() {
    let x = Var::from_tensor(&fixed_input()).unwrap();
    // Output gradient 1..9 in channel 0 and 10..18 in channel 1.
    let dy = Tensor::arange(1f64, 19.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 2, 3, 3))
        .unwrap();
    let grads = (max_pool2d_padded(&x).unwrap() * &dy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let dx = common::to_f64(grads.get(&x).unwrap());
    // Channel 0 arg-maxes (first in row-major window order, as PyTorch): (0,0)->[0,1] (tie with
    // [1,1]), (0,1) and (0,2)->[1,3] (2+3), (1,0)->[3,0], (1,1)->[2,2] (tie with [2,3]),
    // (1,2)->[2,3], (2,0)->[4,1], (2,1)->[3,2], (2,2)->[4,3].
    #[rustfmt::skip]
    let expected0 = [
        0., 1., 0., 0., 0.,
        0., 0., 0., 5., 0.,
        0., 0., 5., 6., 0.,
        4., 0., 8., 0., 0.,
        0., 7., 0., 9., 0.,
    ];
    // Channel 1: the window's top-left element: [0,0] [0,1] [0,3] [1,0] [1,1] [1,3] [3,0]
    // [3,1] [3,3] receive 10..18.
    #[rustfmt::skip]
    let expected1 = [
        10., 11., 0., 12., 0.,
        13., 14., 0., 15., 0.,
        0., 0., 0., 0., 0.,
        16., 17., 0., 18., 0.,
        0., 0., 0., 0., 0.,
    ];
    assert_eq!(&dx[..25], &expected0);
    assert_eq!(&dx[25..], &expected1);
}

#[test]
fn gradient_matches_finite_differences() {
    // Random continuous values: no ties, so the max is differentiable at this point.
    let x = Var::from_tensor(&random(&[2, 3, 8, 7], 1, DType::F64)).unwrap();
    let r = random(&[2, 3, 4, 4], 2, DType::F64);
    let loss = |x: &Tensor| {
        (max_pool2d_padded(x).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss(x.as_tensor()).backward().unwrap();
    let analytic = common::to_f64(grads.get(&x).unwrap());
    let original = common::to_f64(x.as_tensor());
    let eps = 1e-6;
    for i in 0..original.len() {
        let mut values = original.clone();
        values[i] += eps;
        let plus = loss(&Tensor::from_vec(values.clone(), x.shape(), &Device::Cpu).unwrap());
        values[i] -= 2.0 * eps;
        let minus = loss(&Tensor::from_vec(values, x.shape(), &Device::Cpu).unwrap());
        let numeric =
            (plus.to_scalar::<f64>().unwrap() - minus.to_scalar::<f64>().unwrap()) / (2.0 * eps);
        assert!(
            (analytic[i] - numeric).abs() < 1e-7,
            "{i}: {} vs {numeric}",
            analytic[i]
        );
    }
}

#[test]
fn composed_fallback_equals_custom_op() {
    // The fallback for devices without the custom kernel, run on the CPU.
    let x = Var::from_tensor(&random(&[2, 3, 32, 32], 3, DType::F64)).unwrap();
    let r = random(&[2, 3, 16, 16], 4, DType::F64);
    let ours = max_pool2d_padded(&x).unwrap();
    let composed = max_pool2d_reference(&x, 3, 2, 1).unwrap();
    assert_eq!(composed.dims(), &[2, 3, 16, 16]);
    let a = common::to_f64(&ours);
    let b = common::to_f64(&composed);
    assert_eq!(a, b);
    let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let g2 = (composed * &r)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g1 = common::to_f64(g1.get(&x).unwrap());
    let g2 = common::to_f64(g2.get(&x).unwrap());
    assert_eq!(g1, g2);
    // Sizes of the paper: 32 -> 16 -> 8.
    let eight = max_pool2d_reference(&max_pool2d_padded(&x).unwrap(), 3, 2, 1).unwrap();
    assert_eq!(eight.dims(), &[2, 3, 8, 8]);
}
