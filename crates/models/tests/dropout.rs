//! Dropout with a counter-based mask (`ops::Dropout`): reference hash values, statistics,
//! determinism, scaling, gradient and input checks, on the CPU.

use allconv_models::dropout;
use allconv_models::ops::{dropout_bits, Dropout};
use candle_core::{DType, Device, Tensor, Var};

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Deterministic, varied test inputs (no RNG needed).
fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37) % 101) as f32 / 7.0 - 6.0)
        .collect()
}

#[test]
fn the_hash_is_splitmix64() {
    // Seed 0, stream 0 gives key mix(mix(0) ^ 0) = 0, so the bits are the high halves of
    // SplitMix64's outputs from state 0, whose published first outputs are
    // 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f, 0xf88bb8a8724c81ec.
    let got: Vec<u32> = (0..4).map(|i| dropout_bits(0, 0, i)).collect();
    assert_eq!(got, [0xe220_a839, 0x6e78_9e6a, 0x06c4_5d18, 0xf88b_b8a8]);
    // Seed 42, streams 1 and 2: from a 10-line Python transcription of the definition
    // (mix = SplitMix64's finaliser, key = mix(mix(seed) ^ stream),
    //  bits = mix(key + (i+1)*0x9E3779B97F4A7C15) >> 32, all mod 2^64).
    let got: Vec<u32> = (0..4).map(|i| dropout_bits(42, 1, i)).collect();
    assert_eq!(got, [0x196e_01eb, 0xf9c2_c093, 0x1f16_2541, 0x6889_477f]);
    let got: Vec<u32> = (0..4).map(|i| dropout_bits(42, 2, i)).collect();
    assert_eq!(got, [0xbd33_ed7b, 0x9d4d_81cf, 0x90d7_aee0, 0x3940_b776]);
}

#[test]
fn the_mask_is_the_one_python_computes() {
    let x = Tensor::ones(16, DType::F32, &Device::Cpu).unwrap();
    // Python, same definition, seed 7 stream 3: keep iff bits >= round(rate * 2^32).
    // rate 0.5 (threshold 2147483648):
    let keep = [0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0];
    let expected: Vec<f32> = keep.iter().map(|&k| 2.0 * k as f32).collect();
    assert_eq!(values(&dropout(&x, 0.5, 7, 3).unwrap()), expected);
    // rate 0.2 (threshold 858993459), kept values 1/(1-0.2) = 1.25:
    let keep = [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1];
    let expected: Vec<f32> = keep.iter().map(|&k| 1.25 * k as f32).collect();
    assert_eq!(values(&dropout(&x, 0.2, 7, 3).unwrap()), expected);
    assert_eq!(Dropout::new(0.2, 7, 3).unwrap().threshold(), 858_993_459);
}

#[test]
fn the_dropped_fraction_is_the_rate() {
    let n = 1_000_000;
    let x = Tensor::ones(n, DType::F32, &Device::Cpu).unwrap();
    for (rate, seed, stream) in [(0.2, 1, 1), (0.5, 1, 2), (0.5, 99, 1), (0.9, 3, 3)] {
        let y = values(&dropout(&x, rate, seed, stream).unwrap());
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        // Binomial(n, rate): standard deviation of the fraction sqrt(rate (1-rate) / n).
        let sigma = (rate * (1.0 - rate) / n as f64).sqrt();
        assert!(
            (dropped - rate).abs() < 4.0 * sigma,
            "rate {rate} seed {seed} stream {stream}: dropped {dropped}, 4 sigma = {}",
            4.0 * sigma
        );
    }
}

#[test]
fn same_seed_same_mask_other_seed_or_stream_other_mask() {
    let x = Tensor::new(ramp(10_000), &Device::Cpu).unwrap();
    let a = values(&dropout(&x, 0.5, 11, 1).unwrap());
    assert_eq!(a, values(&dropout(&x, 0.5, 11, 1).unwrap()));
    assert_ne!(a, values(&dropout(&x, 0.5, 12, 1).unwrap()));
    assert_ne!(a, values(&dropout(&x, 0.5, 11, 2).unwrap()));
}

#[test]
fn kept_values_are_scaled_exactly() {
    let xs = ramp(50_000);
    let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
    // 1/(1-0.5) = 2 and 1/(1-0.75) = 4 are exact, so kept values are exactly x/(1-rate); for 0.2
    // the scale 1/0.8 rounds to exactly 1.25 in f32.
    for (rate, scale) in [(0.5, 2.0f32), (0.75, 4.0), (0.2, 1.25)] {
        let op = Dropout::new(rate, 5, 1).unwrap();
        let y = values(&dropout(&x, rate, 5, 1).unwrap());
        let mut kept = 0;
        for (i, (&yi, &xi)) in y.iter().zip(&xs).enumerate() {
            if op.keeps(i as u64) {
                kept += 1;
                assert_eq!(yi, xi * scale, "rate {rate} element {i}");
                if rate != 0.2 {
                    assert_eq!(f64::from(yi), f64::from(xi) / (1.0 - rate));
                }
            } else {
                assert_eq!(yi, 0.0, "rate {rate} element {i}");
            }
        }
        assert!(kept > 0 && kept < xs.len());
    }
}

#[test]
fn f64_and_the_fallback_dtypes_get_the_same_mask() {
    let x = Tensor::new(ramp(4096), &Device::Cpu).unwrap();
    let y32 = values(&dropout(&x, 0.5, 8, 2).unwrap());
    let x64 = x.to_dtype(DType::F64).unwrap();
    let y64 = dropout(&x64, 0.5, 8, 2).unwrap().to_vec1::<f64>().unwrap();
    // x * 2 is exact in both dtypes.
    let y64_as_32: Vec<f32> = y64.iter().map(|&v| v as f32).collect();
    assert_eq!(y32, y64_as_32);
    // f16 has no op of its own: mask from the f32 op, multiplied in. ones * {0, 2} is exact.
    let ones = Tensor::ones(4096, DType::F16, &Device::Cpu).unwrap();
    let y16 = values(
        &dropout(&ones, 0.5, 8, 2)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
    );
    let expected: Vec<f32> = (0..4096)
        .map(|i| {
            if Dropout::new(0.5, 8, 2).unwrap().keeps(i) {
                2.0
            } else {
                0.0
            }
        })
        .collect();
    assert_eq!(y16, expected);
}

#[test]
fn views_are_masked_by_their_own_element_index() {
    // A view with a start offset (narrow) and a non-contiguous one (transpose) get the mask of
    // their own row-major order, as if they had been copied first.
    let big = Tensor::new(ramp(64 * 10), &Device::Cpu)
        .unwrap()
        .reshape((64, 10))
        .unwrap();
    let narrowed = big.narrow(0, 5, 20).unwrap();
    assert_eq!(
        values(&dropout(&narrowed, 0.5, 3, 1).unwrap()),
        values(&dropout(&narrowed.copy().unwrap(), 0.5, 3, 1).unwrap())
    );
    let transposed = big.t().unwrap();
    assert_eq!(
        values(&dropout(&transposed, 0.5, 3, 1).unwrap()),
        values(&dropout(&transposed.contiguous().unwrap(), 0.5, 3, 1).unwrap())
    );
}

#[test]
fn the_gradient_is_the_mask_times_the_scale() {
    let n = 5000;
    let x = Var::from_tensor(&Tensor::new(ramp(n), &Device::Cpu).unwrap()).unwrap();
    let c = Tensor::new(
        ramp(n).iter().map(|v| v * 0.5 + 1.0).collect::<Vec<_>>(),
        &Device::Cpu,
    )
    .unwrap();
    let y = dropout(x.as_tensor(), 0.5, 21, 4).unwrap();
    // loss = sum(c * y) => dloss/dx_i = c_i * keep_i * 2.
    let loss = (y * &c).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let got = values(grads.get(x.as_tensor()).unwrap());
    let op = Dropout::new(0.5, 21, 4).unwrap();
    let cs = values(&c);
    for (i, (&g, &ci)) in got.iter().zip(&cs).enumerate() {
        let expected = if op.keeps(i as u64) { ci * 2.0 } else { 0.0 };
        assert_eq!(g, expected, "element {i}");
    }
}

#[test]
fn rate_zero_is_the_identity_and_rates_outside_0_1_are_refused() {
    let x = Tensor::new(ramp(100), &Device::Cpu).unwrap();
    assert_eq!(values(&dropout(&x, 0.0, 1, 1).unwrap()), ramp(100));
    for rate in [1.0, 1.5, -0.1, f64::NAN] {
        let err = dropout(&x, rate, 1, 1).unwrap_err().to_string();
        assert!(err.contains("rate must be in [0, 1)"), "rate {rate}: {err}");
    }
}
