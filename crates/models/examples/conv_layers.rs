//! Times the convolution shapes of All-CNN-C (forward, and forward + backward) at batch 128 and
//! prints GFLOP per CPU-second, a measure of GEMM efficiency that stays meaningful on a busy
//! machine. `cargo run --release -p allconv-models --example conv_layers`.

use allconv_models::ops::conv2d_relu;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Batch size of every timed call.
const BATCH: usize = 128;
/// Timed calls per measurement (after one untimed warm-up call).
const ITERS: usize = 3;

/// (in, out, size, kernel, stride, pad) of All-CNN-C's convolutions (and Model A's 5x5 ones).
const LAYERS: [(usize, usize, usize, usize, usize, usize); 10] = [
    (3, 96, 32, 5, 1, 2),
    (3, 96, 32, 3, 1, 1),
    (96, 96, 32, 3, 1, 1),
    (96, 96, 32, 3, 2, 1),
    (96, 192, 16, 3, 1, 1),
    (192, 192, 16, 3, 1, 1),
    (192, 192, 16, 3, 2, 1),
    (192, 192, 8, 3, 1, 0),
    (192, 192, 6, 1, 1, 0),
    (96, 192, 16, 5, 1, 2),
];

/// Wall and CPU seconds of [`ITERS`] calls of `f`.
fn timed(mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<(f64, f64)> {
    let (t0, c0) = (Instant::now(), cpu_seconds());
    for _ in 0..ITERS {
        f()?;
    }
    Ok((t0.elapsed().as_secs_f64(), cpu_seconds() - c0))
}

fn main() -> candle_core::Result<()> {
    if std::env::var("TUNE").is_ok() {
        println!("tune_allocator: {}", allconv_models::tune_allocator());
    }
    let dev = Device::Cpu;
    // ONLY=i restricts the run to layer i (for profiling).
    let only: Option<usize> = std::env::var("ONLY").ok().and_then(|v| v.parse().ok());
    for (index, layer) in LAYERS.into_iter().enumerate() {
        if only.is_none_or(|o| o == index) {
            conv_layer(layer, &dev)?;
        }
    }
    if only.is_none() {
        for (c, size) in [(96, 32), (192, 16)] {
            max_pool(c, size, &dev)?;
        }
    }
    Ok(())
}

/// Times the fused convolution + ReLU of one layer, forward and forward + backward.
fn conv_layer(
    (cin, cout, size, k, s, p): (usize, usize, usize, usize, usize, usize),
    dev: &Device,
) -> candle_core::Result<()> {
    // The network input needs no gradient (as in a network's first layer).
    let x = Tensor::randn(0f32, 1.0, (BATCH, cin, size, size), dev)?;
    let x = if cin == 3 {
        x
    } else {
        Var::from_tensor(&x)?.as_tensor().clone()
    };
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, k, k), dev)?)?;
    let b = Var::from_tensor(&Tensor::zeros(cout, candle_core::DType::F32, dev)?)?;
    let out = (size + 2 * p - k) / s + 1;
    let macs = (BATCH * cout * out * out * cin * k * k) as f64;
    conv2d_relu(&x, &w, &b, s, p)?;
    let (fwd_wall, fwd_cpu) = timed(|| conv2d_relu(&x, &w, &b, s, p).map(drop))?;
    let (bwd_wall, bwd_cpu) = timed(|| {
        conv2d_relu(&x, &w, &b, s, p)?
            .sum_all()?
            .backward()
            .map(drop)
    })?;
    let gf = 2.0 * macs * ITERS as f64 / 1e9;
    println!(
        "{cin:>3}->{cout:>3} {size:>2}x{size:<2} k{k} s{s} p{p}: fwd {:6.1} ms {:6.1} cpu-ms {:5.1} GF/cpu-s | fwd+bwd {:6.1} ms {:6.1} cpu-ms {:5.1} GF/cpu-s",
        fwd_wall * 1e3 / ITERS as f64,
        fwd_cpu * 1e3 / ITERS as f64,
        gf / fwd_cpu.max(1e-9),
        bwd_wall * 1e3 / ITERS as f64,
        bwd_cpu * 1e3 / ITERS as f64,
        3.0 * gf / bwd_cpu.max(1e-9),
    );
    Ok(())
}

/// Times the paper's padded max-pool on `c` planes of `size x size`, forward and forward +
/// backward.
fn max_pool(c: usize, size: usize, dev: &Device) -> candle_core::Result<()> {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (BATCH, c, size, size), dev)?)?;
    allconv_models::ops::max_pool2d_padded(&x)?;
    let (fwd_wall, fwd_cpu) = timed(|| allconv_models::ops::max_pool2d_padded(&x).map(drop))?;
    let (bwd_wall, bwd_cpu) = timed(|| {
        allconv_models::ops::max_pool2d_padded(&x)?
            .sum_all()?
            .backward()
            .map(drop)
    })?;
    println!(
        "max-pool {c}x{size}x{size}: fwd {:6.1} ms ({:6.1} cpu-ms) | fwd+bwd {:6.1} ms ({:6.1} cpu-ms)",
        fwd_wall * 1e3 / ITERS as f64,
        fwd_cpu * 1e3 / ITERS as f64,
        bwd_wall * 1e3 / ITERS as f64,
        bwd_cpu * 1e3 / ITERS as f64,
    );
    Ok(())
}
