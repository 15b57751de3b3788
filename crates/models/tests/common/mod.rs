//! Helpers shared by the integration tests of `allconv-models` (each test file includes this
//! module with `mod common;`, so not every file uses every helper).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor, Var};

pub use allconv_models::check::lcg_values;

/// A CPU tensor of [`lcg_values`] with this shape and dtype.
pub fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(lcg_values(n, seed), shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// [`random`] as a variable, for gradients.
pub fn random_var(shape: &[usize], seed: u64, dtype: DType) -> Var {
    Var::from_tensor(&random(shape, seed, dtype)).unwrap()
}

/// Every element as f64, in row-major order.
pub fn to_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Every element's bits (f32 or f64), in row-major order: for comparisons bit for bit.
pub fn bits(t: &Tensor) -> Vec<u64> {
    let t = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => t
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| u64::from(x.to_bits()))
            .collect(),
        DType::F64 => t
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// Runs `check` once on every CPU kernel path this CPU supports (see `ops::cpu_kernels`), each
/// time naming the path on stdout, which the test harness shows for a failing test. A lock keeps
/// the tests of one binary that switch paths from switching it under one another; the path is
/// left at the widest one afterwards.
pub fn on_every_cpu_path(check: impl Fn()) {
    use allconv_models::ops::{set_cpu_kernels, supported_cpu_kernels};
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let paths = supported_cpu_kernels();
    for &path in &paths {
        println!("CPU kernels: {path}");
        set_cpu_kernels(path).unwrap();
        check();
    }
    set_cpu_kernels(paths[0]).unwrap();
}
