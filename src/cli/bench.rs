//! `allconv bench`: forward and training-step throughput per model.
//!
//! The training step is forward (train mode, dropout on) + cross-entropy + backward + a plain
//! SGD update `w -= lr * g` of every weight, the work of one step of the real trainer without
//! momentum and weight decay.

use std::time::Instant;

use allconv_models::{spec, Mode, ModelOptions, Network, MODEL_NAMES};
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

/// Flags of `allconv bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Models to measure, comma-separated (case-insensitive); all 12 by default.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Timed iterations per measurement (after one untimed warm-up iteration).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// `cpu`, or `cuda` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Runs `allconv bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    // Recycle activation buffers instead of page-faulting fresh ones every step.
    allconv_models::tune_allocator();
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    let device = match args.device.to_ascii_lowercase().as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)
            .context("opening CUDA device 0 (is this binary built with --features cuda?)")?,
        other => anyhow::bail!("--device: expected 'cpu' or 'cuda', got '{other}'"),
    };
    let names: Vec<String> = if args.models.is_empty() {
        MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        args.models.clone()
    };
    let options = ModelOptions::default();
    let specs = names
        .iter()
        .map(|name| spec(name, &options).with_context(|| format!("--models: '{name}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "device {}, batch {}, {} timed iterations, f32, {threads} CPU threads",
        args.device, args.batch, args.iters
    );
    println!(
        "{:<16} {:>12} {:>24} {:>24}",
        "model", "parameters", "forward img/s", "fwd+bwd+SGD img/s"
    );
    let images = Tensor::randn(0f32, 1.0, (args.batch, 3, 32, 32), &device)?;
    let labels: Vec<u32> = (0..args.batch as u32).map(|i| i % 10).collect();
    let labels = Tensor::from_vec(labels, args.batch, &device)?;
    for s in &specs {
        let varmap = VarMap::new();
        let net = Network::new(s, &varmap, &device, 0)?;
        let vars = varmap.all_vars();

        let forward = |_: usize| -> anyhow::Result<()> {
            let logits = net.forward(&images, Mode::Eval)?;
            // Reading one value forces the computation on asynchronous devices.
            logits.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            Ok(())
        };
        let step = |i: usize| -> anyhow::Result<()> {
            let logits = net.forward(
                &images,
                Mode::Train {
                    dropout_seed: i as u64,
                },
            )?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            let grads = loss.backward()?;
            for var in &vars {
                if let Some(g) = grads.get(var.as_tensor()) {
                    var.set(&(var.as_tensor() - (g * 0.01)?)?)?;
                }
            }
            loss.to_scalar::<f32>()?;
            Ok(())
        };
        let forward_rate = images_per_second(args.batch, args.iters, &forward)?;
        let step_rate = images_per_second(args.batch, args.iters, &step)?;
        println!(
            "{:<16} {:>12} {:>24} {:>24}",
            s.name,
            s.parameter_count(),
            forward_rate.to_string(),
            step_rate.to_string()
        );
    }
    Ok(())
}

/// Images per wall-clock second and per CPU-second of `work` over `iters` timed calls after one
/// warm-up call.
fn images_per_second(
    batch: usize,
    iters: usize,
    work: &dyn Fn(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Rate> {
    work(0)?;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for i in 1..=iters {
        work(i)?;
    }
    let images = (batch * iters) as f64;
    Ok(Rate {
        wall: images / start.elapsed().as_secs_f64(),
        cpu: cpu_seconds()
            .zip(cpu_start)
            .map(|(end, start)| images / (end - start).max(1e-9)),
    })
}

/// A measured throughput.
struct Rate {
    /// Images per wall-clock second.
    wall: f64,
    /// Images per CPU-second of this process (Linux only): on a busy machine, where the
    /// wall-clock rate understates what an idle one gives, `cpu * cores` bounds it from above.
    cpu: Option<f64>,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cpu {
            Some(cpu) => write!(f, "{:.1} ({:.1}/cpu-s)", self.wall, cpu),
            None => write!(f, "{:.1}", self.wall),
        }
    }
}

/// User + system CPU seconds of this process (from `/proc/self/stat`; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 ("state").
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on every Linux platform this runs on (USER_HZ).
    Some((user + system) / 100.0)
}
