//! Times every convolution and pooling layer of Model A, Model C and All-CNN-C on the CPU at
//! batch 128 (f32): forward alone and forward + backward (the gradient seed is all ones, so the
//! backward pass does the same work as in training). Not a test: it prints timings, to show
//! where a training step's time goes.
//!
//! `cargo bench -p allconv-models --bench conv_layers [-- FILTER]` (FILTER: substring of the
//! layer names to run, e.g. `model-a`); `RAYON_NUM_THREADS=1` for single-core numbers,
//! `ALLCONV_CPU_KERNELS=avx512|avx2|portable` to time one kernel path. The CPU
//! time (all threads) is steadier than wall-clock on a shared machine; the backward column is
//! forward + backward minus forward.

use std::time::Instant;

use allconv_models::ops::{conv2d_relu, max_pool2d_padded};
use candle_core::{Device, Tensor, Var};

/// The environment variable that forces a kernel path, as for `allconv` (README, "CPU kernels").
const CPU_KERNELS_VAR: &str = "ALLCONV_CPU_KERNELS";

const BATCH: usize = 128;

/// One layer: input `[BATCH, c, size, size]`.
struct Layer {
    name: &'static str,
    c: usize,
    size: usize,
    kind: Kind,
}

enum Kind {
    /// Convolution with a fused ReLU: out channels, kernel, stride, pad.
    Conv(usize, usize, usize, usize),
    /// The paper's 3x3/2 pad-1 max-pool.
    Pool,
}

fn layers() -> Vec<Layer> {
    let conv = |name, c, size, out, k, s, p| Layer {
        name,
        c,
        size,
        kind: Kind::Conv(out, k, s, p),
    };
    let pool = |name, c, size| Layer {
        name,
        c,
        size,
        kind: Kind::Pool,
    };
    vec![
        conv("model-a conv1 5x5 3->96 @32", 3, 32, 96, 5, 1, 2),
        pool("model-a pool1 96 @32", 96, 32),
        conv("model-a conv2 5x5 96->192 @16", 96, 16, 192, 5, 1, 2),
        pool("model-a pool2 192 @16", 192, 16),
        conv(
            "model-a/c conv3 3x3 192->192 @8 unpadded",
            192,
            8,
            192,
            3,
            1,
            0,
        ),
        conv("model-a/c conv4 1x1 192->192 @6", 192, 6, 192, 1, 1, 0),
        conv("model-a/c conv5 1x1 192->10 @6", 192, 6, 10, 1, 1, 0),
        conv("model-c conv1 3x3 3->96 @32", 3, 32, 96, 3, 1, 1),
        conv("model-c conv2 3x3 96->96 @32", 96, 32, 96, 3, 1, 1),
        conv("model-c conv3 3x3 96->192 @16", 96, 16, 192, 3, 1, 1),
        conv("model-c conv4 3x3 192->192 @16", 192, 16, 192, 3, 1, 1),
        conv("all-cnn-c conv3 3x3/2 96->96 @32", 96, 32, 96, 3, 2, 1),
        conv("all-cnn-c conv6 3x3/2 192->192 @16", 192, 16, 192, 3, 2, 1),
    ]
}

/// CPU seconds used so far by all threads of this process (Linux: the first field of every
/// thread's `/proc/self/task/*/schedstat`, in nanoseconds); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 * 1e-9)
}

/// Minimum of `reps` wall-clock and CPU timings of `f`, in seconds, after one warm-up call: on a
/// machine shared with other work, interference only ever adds time.
fn time(
    reps: usize,
    mut f: impl FnMut() -> candle_core::Result<()>,
) -> candle_core::Result<(f64, f64)> {
    f()?;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        f()?;
        wall.push(start.elapsed().as_secs_f64());
        cpu.push(
            cpu_seconds()
                .zip(cpu_start)
                .map_or(f64::NAN, |(e, s)| e - s),
        );
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    Ok((min(&wall), min(&cpu)))
}

fn main() -> candle_core::Result<()> {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    // As `allconv bench` and the trainer: recycle buffers instead of page-faulting fresh ones.
    allconv_models::tune_allocator();
    let dev = Device::Cpu;
    // This program, like the `allconv` binary, reads the request; the library reads none.
    let request = match std::env::var(CPU_KERNELS_VAR) {
        Ok(name) => allconv_models::ops::CpuKernelsChoice::parse(&name)
            .map_err(|e| candle_core::Error::Msg(format!("{CPU_KERNELS_VAR}={name}: {e}")))?,
        Err(_) => allconv_models::ops::CpuKernelsChoice::Auto,
    };
    let kernels = allconv_models::ops::use_cpu_kernels(request)
        .map_err(|e| candle_core::Error::Msg(format!("{CPU_KERNELS_VAR}: {e}")))?;
    println!(
        "{}; CPU kernels {kernels} (set {CPU_KERNELS_VAR} to compare paths)",
        allconv_models::ops::cpu_model(),
    );
    println!(
        "batch {BATCH}, f32, {} rayon threads; best of 7; ms per batch wall / CPU (GFLOP/s \
         from wall)",
        rayon::current_num_threads()
    );
    println!("{:<44} {:>24} {:>24}", "layer", "forward", "backward");
    let (mut total_f, mut total_b) = ((0.0, 0.0), (0.0, 0.0));
    for layer in layers().iter().filter(|l| l.name.contains(&filter)) {
        let x = Var::from_tensor(&Tensor::randn(
            0f32,
            1.0,
            (BATCH, layer.c, layer.size, layer.size),
            &dev,
        )?)?;
        let (fwd, both, flop) = match layer.kind {
            Kind::Conv(out, k, s, p) => {
                let w = Var::from_tensor(
                    &(Tensor::randn(0f32, 1.0, (out, layer.c, k, k), &dev)? * 0.05)?,
                )?;
                let b = Var::from_tensor(&Tensor::randn(0f32, 0.1, out, &dev)?)?;
                let o = (layer.size + 2 * p - k) / s + 1;
                let flop = 2.0 * (BATCH * out * o * o * layer.c * k * k) as f64;
                let fwd = time(7, || conv2d_relu(&x, &w, &b, s, p).map(|_| ()))?;
                let both = time(7, || conv2d_relu(&x, &w, &b, s, p)?.backward().map(|_| ()))?;
                // Forward, weight gradient and input gradient: three products of equal size.
                (fwd, both, Some(flop))
            }
            Kind::Pool => {
                let fwd = time(7, || max_pool2d_padded(&x).map(|_| ()))?;
                let both = time(7, || max_pool2d_padded(&x)?.backward().map(|_| ()))?;
                (fwd, both, None)
            }
        };
        let bwd = ((both.0 - fwd.0).max(0.0), (both.1 - fwd.1).max(0.0));
        total_f = (total_f.0 + fwd.0, total_f.1 + fwd.1);
        total_b = (total_b.0 + bwd.0, total_b.1 + bwd.1);
        let show = |(wall, cpu): (f64, f64), f: Option<f64>| {
            let rate = f.map_or(String::new(), |f| format!(" ({:.0})", f / wall / 1e9));
            format!("{:.1} / {:.1}{rate}", wall * 1e3, cpu * 1e3)
        };
        println!(
            "{:<44} {:>24} {:>24}",
            layer.name,
            show(fwd, flop),
            show(bwd, flop.map(|f| 2.0 * f))
        );
    }
    println!(
        "{:<44} {:>24} {:>24}",
        "total",
        show_total(total_f),
        show_total(total_b)
    );
    Ok(())
}

fn show_total((wall, cpu): (f64, f64)) -> String {
    format!("{:.1} / {:.1}", wall * 1e3, cpu * 1e3)
}
