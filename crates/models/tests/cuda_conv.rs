//! The cuDNN convolution (`ops::conv2d`, `ops::conv2d_relu` on a CUDA device) beyond what the
//! device check compares (`cuda_vs_cpu.rs` runs it: every network shape against the CPU in fp32
//! and TF32): a hand-computed case, the per-shape cache, offset inputs and deterministic mode
//! (whose results are compared with the CPU here as well). Compiled only with `--features cuda`;
//! run with `cargo test --release --features cuda -p allconv-models` on a GPU machine.
//!
//! The TF32 and determinism switches are process-wide and part of the cache key, so every test
//! holds [`precision`] while it runs.
#![cfg(feature = "cuda")]

use std::sync::{Mutex, MutexGuard};

use allconv_models::check::lcg_values;
use allconv_models::ops::{
    conv2d, conv2d_relu, cudnn_cache_len, cudnn_plans, set_deterministic, set_tf32, tf32,
};
use candle_core::{Device, Tensor, Var};

static PRECISION: Mutex<()> = Mutex::new(());

/// Holds the process-wide TF32 and determinism switches for one test and restores exact fp32
/// and the default algorithm choice when dropped (also when the test panics).
struct Precision(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for Precision {
    fn drop(&mut self) {
        set_tf32(false);
        set_deterministic(false);
    }
}

fn precision(tf32: bool) -> Precision {
    let guard = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    set_tf32(tf32);
    Precision(guard)
}

fn cuda() -> Device {
    Device::new_cuda(0).expect("a CUDA device")
}

/// [`lcg_values`] in f32.
fn random(n: usize, seed: u64) -> Vec<f32> {
    lcg_values(n, seed).into_iter().map(|v| v as f32).collect()
}

/// One convolution: `x [n, c, h, h]`, `w [o, c, k, k]`, stride, pad, fused ReLU, and whether the
/// input needs a gradient.
#[derive(Debug, Clone, Copy)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    relu: bool,
    input_grad: bool,
}

/// Every (kernel, stride, pad) of the 12 networks (3x3/1/1, 3x3/2/1, 5x5/1/2, 5x5/2/2, 3x3/1/0,
/// 1x1/1/0, 1x1/2/0), the first layer's 3 channels, the networks' 96 channels, odd sizes, and one
/// shape (3*3*7*7 inputs) whose weight gradient starts at an offset that is not 16-byte aligned.
const SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 10] = [
    // (n, c, h, o, k, stride, pad)
    (4, 3, 32, 16, 3, 1, 1),
    (4, 16, 16, 24, 3, 2, 1),
    (4, 8, 16, 16, 5, 1, 2),
    (4, 8, 15, 16, 5, 2, 2),
    (4, 16, 8, 24, 3, 1, 0),
    (4, 24, 6, 10, 1, 1, 0),
    (4, 16, 8, 16, 1, 2, 0),
    (3, 3, 7, 5, 3, 2, 1),
    (4, 96, 16, 96, 3, 1, 1),
    (4, 96, 8, 10, 1, 1, 0),
];

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (n, c, h, o, k, stride, pad) in SHAPES {
        for relu in [false, true] {
            for input_grad in [false, true] {
                out.push(Case {
                    n,
                    c,
                    h,
                    o,
                    k,
                    stride,
                    pad,
                    relu,
                    input_grad,
                });
            }
        }
    }
    out
}

/// Forward output and gradients (`dx` only with `input_grad`) of `sum(conv(x) * upstream)`.
struct Run {
    y: Vec<f32>,
    dx: Option<Vec<f32>>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

fn run(case: &Case, device: &Device, upstream: &[f32]) -> Run {
    let Case {
        n,
        c,
        h,
        o,
        k,
        stride,
        pad,
        relu,
        input_grad,
    } = *case;
    let x = Tensor::from_vec(random(n * c * h * h, 1), (n, c, h, h), device).unwrap();
    let x = Var::from_tensor(&x).unwrap();
    let w = Var::from_tensor(
        &Tensor::from_vec(random(o * c * k * k, 2), (o, c, k, k), device).unwrap(),
    )
    .unwrap();
    let b = Var::from_tensor(&Tensor::from_vec(random(o, 3), o, device).unwrap()).unwrap();
    // A plain tensor (not a variable) has no gradient, so the op skips the input gradient.
    let input = if input_grad {
        x.as_tensor().clone()
    } else {
        x.as_tensor().detach()
    };
    let conv = if relu { conv2d_relu } else { conv2d };
    let y = conv(&input, w.as_tensor(), &b, stride, pad).unwrap();
    let r = Tensor::from_vec(upstream.to_vec(), y.shape(), device).unwrap();
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let dx = grads.get(x.as_tensor()).map(host);
    assert_eq!(
        dx.is_some(),
        input_grad,
        "{case:?}: input gradient present iff requested"
    );
    Run {
        y: host(&y),
        dx,
        dw: host(grads.get(w.as_tensor()).expect("weight gradient")),
        db: host(grads.get(&b).expect("bias gradient")),
    }
}

/// Largest difference relative to the largest reference magnitude; infinite if either side has
/// a NaN (`f32::max` would skip it, and uninitialised memory read as NaN would pass).
fn worst(reference: &[f32], other: &[f32]) -> f32 {
    assert_eq!(reference.len(), other.len());
    let scale = reference
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    reference
        .iter()
        .zip(other)
        .map(|(a, b)| {
            let d = (a - b).abs() / scale;
            if d.is_nan() {
                f32::INFINITY
            } else {
                d
            }
        })
        .fold(0f32, f32::max)
}

/// Runs every case on the CPU (the reference: im2col + GEMM, itself checked against candle's
/// conv2d and finite differences in tests/conv.rs) and on CUDA, and compares.
fn compare_all(tolerance: f32) {
    let gpu = cuda();
    for case in cases() {
        let out_h = (case.h + 2 * case.pad - case.k) / case.stride + 1;
        let len = case.n * case.o * out_h * out_h;
        // The upstream gradient is zeroed where the CPU's pre-ReLU output is near 0, so a
        // rounding difference that flips the ReLU there changes nothing that is compared.
        let pre = run(
            &Case {
                relu: false,
                ..case
            },
            &Device::Cpu,
            &vec![0.0; len],
        )
        .y;
        let upstream: Vec<f32> = random(len, 4)
            .into_iter()
            .zip(&pre)
            .map(|(r, y)| if y.abs() < 1e-3 { 0.0 } else { r })
            .collect();
        let cpu = run(&case, &Device::Cpu, &upstream);
        let cuda = run(&case, &gpu, &upstream);
        let mut checks = vec![
            ("output", worst(&cpu.y, &cuda.y)),
            ("weight gradient", worst(&cpu.dw, &cuda.dw)),
            ("bias gradient", worst(&cpu.db, &cuda.db)),
        ];
        if let (Some(a), Some(b)) = (&cpu.dx, &cuda.dx) {
            checks.push(("input gradient", worst(a, b)));
        }
        for (what, err) in checks {
            assert!(
                err <= tolerance,
                "{case:?}: {what} differs from the CPU by {err:e} (relative to its largest entry)"
            );
        }
    }
    report_plans(if tf32() { "tf32" } else { "fp32" });
}

/// Prints this thread's cuDNN plans (algorithm, math type, determinism, workspace, timed or
/// heuristic, fused ReLU refused) and, last, a one-line summary. Written to stdout directly: the
/// test harness captures only `print!`, and a GPU check wants to see what cuDNN chose.
fn report_plans(label: &str) {
    use std::io::Write;
    let plans = cudnn_plans();
    let lines_with = |pattern: &str| plans.iter().filter(|l| l.contains(pattern)).count();
    let mut out = std::io::stdout().lock();
    for line in &plans {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(
        out,
        "cuDNN plans {label}: {} shapes; lines with: heuristic {}, ReLU not fused {}, \
         TENSOR_OP {}, non-deterministic {}",
        plans.len(),
        lines_with("heuristic"),
        lines_with("ReLU not fused"),
        lines_with("TENSOR_OP"),
        lines_with("non-deterministic"),
    );
}

/// Deterministic mode: every shape gets a plan of its own (the switch is part of the key) whose
/// chosen algorithms are all deterministic (cuDNN's own flag for each, as `cudnn_plans` prints
/// it), the results still match the CPU as in fp32, and running a shape again gives the same
/// bits, input and weight gradients included (the ones atomic-add algorithms would change).
#[test]
fn deterministic_mode_chooses_deterministic_algorithms_only() {
    let _p = precision(false);
    set_deterministic(true);
    compare_all(1e-4);
    let plans = cudnn_plans();
    let restricted: Vec<&String> = plans
        .iter()
        .filter(|l| l.contains("deterministic-only"))
        .collect();
    assert_eq!(restricted.len(), SHAPES.len(), "{plans:#?}");
    for line in restricted {
        assert!(!line.contains("non-deterministic"), "{line}");
        assert!(!line.contains("not used yet"), "{line}");
    }
    let gpu = cuda();
    let case = cases()
        .into_iter()
        .find(|c| (c.c, c.h, c.input_grad) == (96, 16, true))
        .expect("a 96-channel 16x16 case with an input gradient");
    let out_h = (case.h + 2 * case.pad - case.k) / case.stride + 1;
    let upstream = random(case.n * case.o * out_h * out_h, 9);
    let (first, second) = (run(&case, &gpu, &upstream), run(&case, &gpu, &upstream));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&first.y), bits(&second.y), "{case:?}: output");
    assert_eq!(
        bits(&first.dw),
        bits(&second.dw),
        "{case:?}: weight gradient"
    );
    assert_eq!(bits(&first.db), bits(&second.db), "{case:?}: bias gradient");
    let (a, b) = (first.dx.expect("dx"), second.dx.expect("dx"));
    assert_eq!(bits(&a), bits(&b), "{case:?}: input gradient");
}

/// `actual == expected` up to 1e-5 relative: the hand values are small integers, exact in fp32,
/// but a Winograd or FFT algorithm may round its transforms.
fn assert_near(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-5 * e.abs().max(1.0),
            "{what}[{i}]: {a}, expected {e} (all: {actual:?})"
        );
    }
}

#[test]
fn hand_computed_all_ones_convolution() {
    let _p = precision(false);
    let gpu = cuda();
    // x = 1 [1, 2, 4, 4], w = 1 [1, 2, 3, 3], b = -10, 3x3 pad 1: an output sums 2 channels
    // times the 9, 6 or 4 window cells inside the image (interior, edge, corner): 18, 12, 8.
    let x = Var::from_tensor(&Tensor::ones((1, 2, 4, 4), candle_core::DType::F32, &gpu).unwrap())
        .unwrap();
    let w = Var::from_tensor(&Tensor::ones((1, 2, 3, 3), candle_core::DType::F32, &gpu).unwrap())
        .unwrap();
    let b = Var::from_tensor(&Tensor::new(&[-10f32], &gpu).unwrap()).unwrap();
    let y = conv2d(x.as_tensor(), w.as_tensor(), &b, 1, 1).unwrap();
    let expected: [f32; 16] = [
        -2., 2., 2., -2., //
        2., 8., 8., 2., //
        2., 8., 8., 2., //
        -2., 2., 2., -2.,
    ];
    let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_near(&host(&y), &expected, "conv2d");
    let relu: Vec<f32> = expected.iter().map(|v| v.max(0.0)).collect();
    let yr = conv2d_relu(x.as_tensor(), w.as_tensor(), &b, 1, 1).unwrap();
    assert_near(&host(&yr), &relu, "conv2d_relu");

    // d sum(y) / d b = 16 outputs; d / d w[c, i, j] = (output rows reading kernel row i) *
    // (output columns reading kernel column j) = [3, 4, 3] x [3, 4, 3]; d / d x[c, p, q] =
    // (windows covering row p) * (windows covering column q) = [2, 3, 3, 2] x [2, 3, 3, 2].
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert_near(&host(grads.get(&b).unwrap()), &[16.0], "bias gradient");
    let rows = [3f32, 4., 3.];
    let dw: Vec<f32> = (0..2)
        .flat_map(|_| rows.iter().flat_map(|r| rows.iter().map(move |c| r * c)))
        .collect();
    assert_near(
        &host(grads.get(w.as_tensor()).unwrap()),
        &dw,
        "weight gradient",
    );
    let cover = [2f32, 3., 3., 2.];
    let dx: Vec<f32> = (0..2)
        .flat_map(|_| cover.iter().flat_map(|r| cover.iter().map(move |c| r * c)))
        .collect();
    assert_near(
        &host(grads.get(x.as_tensor()).unwrap()),
        &dx,
        "input gradient",
    );
}

#[test]
fn one_plan_per_shape_and_precision() {
    let gpu = cuda();
    // The cache is per thread and this test's thread starts with none of its shapes.
    let x = Tensor::from_vec(random(2 * 5 * 9 * 9, 5), (2, 5, 9, 9), &gpu).unwrap();
    let w = Var::from_tensor(&Tensor::from_vec(random(7 * 5 * 9, 6), (7, 5, 3, 3), &gpu).unwrap())
        .unwrap();
    let b = Var::from_tensor(&Tensor::from_vec(random(7, 7), 7, &gpu).unwrap()).unwrap();
    let start = cudnn_cache_len();
    {
        let _p = precision(false);
        let y = conv2d_relu(&x, w.as_tensor(), &b, 1, 1).unwrap();
        assert_eq!(cudnn_cache_len(), start + 1, "first call creates one plan");
        conv2d(&x, w.as_tensor(), &b, 1, 1).unwrap();
        assert_eq!(
            cudnn_cache_len(),
            start + 1,
            "same shape, ReLU or not: same plan"
        );
        y.sum_all().unwrap().backward().unwrap();
        assert_eq!(cudnn_cache_len(), start + 1, "the backward pass reuses it");
        conv2d(&x, w.as_tensor(), &b, 2, 1).unwrap();
        assert_eq!(
            cudnn_cache_len(),
            start + 2,
            "another stride is another plan"
        );
        conv2d(&x.narrow(0, 0, 1).unwrap(), w.as_tensor(), &b, 1, 1).unwrap();
        assert_eq!(cudnn_cache_len(), start + 3, "another batch size too");
    }
    {
        let _p = precision(true);
        conv2d(&x, w.as_tensor(), &b, 1, 1).unwrap();
        assert_eq!(cudnn_cache_len(), start + 4, "TF32 is part of the key");
    }
    let plans = cudnn_plans();
    let described = plans
        .iter()
        .filter(|l| l.starts_with("x [2, 5, 9, 9] w [7, 5, 3, 3] stride 1 pad 1"))
        .count();
    assert_eq!(described, 2, "fp32 and tf32 plans of the shape: {plans:#?}");
}

/// Inputs that start inside a larger tensor (`narrow`), at offsets that are not 16-byte aligned
/// (image 1 of `[3, 3, 7, 7]` starts at byte 588, output channel 1 of `[6, 3, 3, 3]` at byte
/// 108, bias entry 1 at byte 4), after the same shape ran from aligned offsets: the layout's
/// start offset must be applied, and the gradients must land in the right part of the full
/// tensors.
#[test]
fn offset_inputs_match_the_cpu() {
    let _p = precision(false);
    let gpu = cuda();
    let (n, c, h, o, k) = (3, 3, 7, 5, 3);
    let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // (y, dx, dw, db) of sum(conv(narrowed x, w, b) * upstream), the gradients of the full
    // tensors; no gradients without an upstream.
    let step = |device: &Device, relu: bool, start: usize, upstream: Option<&[f32]>| {
        let var = |data: Vec<f32>, shape: &[usize]| {
            Var::from_tensor(&Tensor::from_vec(data, shape, device).unwrap()).unwrap()
        };
        let x = var(random(n * c * h * h, 11), &[n, c, h, h]);
        let w = var(random((o + 1) * c * k * k, 12), &[o + 1, c, k, k]);
        let b = var(random(o + 1, 13), &[o + 1]);
        let conv = if relu { conv2d_relu } else { conv2d };
        let y = conv(
            &x.narrow(0, start, 2).unwrap(),
            &w.narrow(0, start, o).unwrap(),
            &b.narrow(0, start, o).unwrap(),
            1,
            1,
        )
        .unwrap();
        let Some(upstream) = upstream else {
            return (host(&y), vec![], vec![], vec![]);
        };
        let r = Tensor::from_vec(upstream.to_vec(), y.shape(), device).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g = |v: &Var| host(grads.get(v.as_tensor()).expect("a gradient"));
        (host(&y), g(&x), g(&w), g(&b))
    };
    for relu in [false, true] {
        // Start 0 first: the plan of the shape is made (and timed) on aligned buffers.
        for start in [0, 1] {
            // As in compare_all: no upstream gradient where the pre-ReLU output is near 0.
            let pre = step(&Device::Cpu, false, start, None).0;
            let upstream: Vec<f32> = random(pre.len(), 14)
                .into_iter()
                .zip(&pre)
                .map(|(r, y)| if y.abs() < 1e-3 { 0.0 } else { r })
                .collect();
            let cpu = step(&Device::Cpu, relu, start, Some(&upstream));
            let cuda = step(&gpu, relu, start, Some(&upstream));
            for (what, a, b) in [
                ("output", &cpu.0, &cuda.0),
                ("input gradient", &cpu.1, &cuda.1),
                ("weight gradient", &cpu.2, &cuda.2),
                ("bias gradient", &cpu.3, &cuda.3),
            ] {
                let err = worst(a, b);
                assert!(
                    err <= 1e-4,
                    "relu {relu} start {start}: {what} differs from the CPU by {err:e}"
                );
            }
        }
    }
}
