//! `allconv bench`: forward and training-step throughput per model.
//!
//! The training step is the trainer's: forward (train mode, dropout on) + cross-entropy +
//! backward + the SGD update with momentum 0.9 and weight decay 0.001 (PyTorch's benchmark does
//! the same with `torch.optim.SGD`). On CUDA nothing is read back inside the timed loop: the
//! device is synchronised once at the end, as a real training loop that reads its loss only
//! every N steps. With `--augment`, the training step is measured a second time with the batch
//! augmented first (flip + shift on the device, as `data.augment` trains), for the cost of it.

use allconv_runs::{errln, outln};
use std::time::Instant;

use allconv_cifar::EpochAugmentation;
use allconv_models::ops::ConvEngine;
use allconv_models::{ops, spec, Mode, ModelOptions, Network, MODEL_NAMES};
use allconv_train::optim::{Sgd, SgdConfig};
use allconv_vocab::Precision;
use anyhow::Context;
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use candle_nn::VarMap;

/// Flags of `allconv bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Models to measure, comma-separated (case-insensitive); all 12 by default.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = super::choices::model())]
    models: Vec<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    // `--batch`, the previous name of `--batch-size` (`super::deprecated`).
    #[arg(long = "batch", hide = true, conflicts_with = "batch_size")]
    deprecated_batch: Option<usize>,
    /// Timed iterations per measurement (after one untimed warm-up iteration).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// `cpu`, or `cuda` / `cuda:N` (GPU 0 / GPU N; needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: allconv_vocab::Device,
    /// Arithmetic to measure, comma-separated: fp32 (exact), tf32 (tensor-core math in CUDA
    /// convolutions and matrix products). Default: fp32 on the CPU, both on CUDA.
    #[arg(long, value_delimiter = ',')]
    precision: Vec<Precision>,
    /// cuDNN's algorithm set, as `training.deterministic` sets it: true (deterministic
    /// algorithms only, training's default) or false (the free, fastest choice). No effect on
    /// the CPU.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    deterministic: bool,
    /// The convolution engine, as `training.conv_engine` chooses it: own (im2col + GEMM on the
    /// CPU, cuDNN on CUDA) or candle (candle's conv2d and autograd, no cuDNN).
    #[arg(long, default_value = "own", value_parser = super::choices::conv_engine())]
    conv_engine: ConvEngine,
    /// After the table, print what cuDNN chose for every convolution shape measured (algorithms,
    /// math type, whether bias + ReLU ran fused): CUDA only.
    #[arg(long)]
    plans: bool,
    /// Also measure the training step with data augmentation (flip + shift of the batch on the
    /// device before the forward pass, as `data.augment: true` trains).
    #[arg(long)]
    augment: bool,
    /// Instead of the table, build every model, warm each up once, then measure on request: read
    /// lines `MODEL eval` or `MODEL train` from standard input and answer each with
    /// `MODEL eval|train IMAGES_PER_SECOND` over `--iters` iterations. A driver can then
    /// alternate this process with another tool's measurements second by second
    /// (`scripts/compare_pytorch.py`), so that a host whose speed drifts affects both alike.
    #[arg(long, conflicts_with_all = ["augment", "plans"])]
    paced: bool,
}

/// Runs `allconv bench`.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    let batch_flag = match args.deprecated_batch {
        Some(batch) => {
            args.batch_size = batch;
            "--batch"
        }
        None => "--batch-size",
    };
    anyhow::ensure!(args.batch_size > 0, "{batch_flag} must be at least 1");
    // Recycle activation buffers instead of page-faulting fresh ones every step.
    allconv_models::tune_allocator();
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    let device = allconv_models::open_device(args.device).with_context(|| {
        format!(
            "--device {}: opening the device (is this binary built with --features cuda, on a \
             machine with that GPU?)",
            args.device
        )
    })?;
    let names: Vec<&str> = if args.models.is_empty() {
        MODEL_NAMES.to_vec()
    } else {
        args.models.iter().map(String::as_str).collect()
    };
    let options = ModelOptions::default();
    let specs = names
        .iter()
        .map(|name| spec(name, &options).with_context(|| format!("--models: '{name}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if device.is_cpu() {
        for s in &specs {
            allconv_train::memory::check_cpu_batch(s, args.batch_size, batch_flag)
                .map_err(anyhow::Error::msg)?;
        }
    }

    let precisions = match (args.precision.is_empty(), &device) {
        (false, _) => args.precision.clone(),
        (true, Device::Cpu) => vec![Precision::Fp32],
        (true, _) => vec![Precision::Fp32, Precision::Tf32],
    };
    if device.is_cpu() && precisions.contains(&Precision::Tf32) {
        anyhow::bail!("--precision tf32: TF32 exists only on CUDA; use --device cuda");
    }
    if args.plans && device.is_cpu() {
        anyhow::bail!("--plans lists cuDNN's choices, which exist only on CUDA; use --device cuda");
    }

    ops::set_deterministic(args.deterministic);
    ops::set_conv_engine(args.conv_engine);
    let settings = format!(
        "cuDNN algorithms {} (training.deterministic: {}), conv engine {}",
        if args.deterministic {
            "deterministic only"
        } else {
            "free"
        },
        args.deterministic,
        args.conv_engine.describe(device.is_cuda())
    );
    if args.paced {
        errln!("bench --paced: {settings}");
        anyhow::ensure!(
            precisions.len() == 1,
            "--paced measures one precision; give --precision fp32 or --precision tf32"
        );
        return paced(&specs, &device, precisions[0], args.batch_size, args.iters);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    outln!(
        "device {}, batch {}, {} timed iterations, {threads} CPU threads; {settings}",
        args.device,
        args.batch_size,
        args.iters
    );
    let kernels = ops::cpu_kernels().context("choosing the CPU kernels")?;
    let supported: Vec<&str> = ops::supported_cpu_kernels()
        .iter()
        .map(|k| k.name())
        .collect();
    outln!(
        "CPU {}; CPU kernels {kernels} (this CPU runs: {}; {} forces one)",
        ops::cpu_model(),
        supported.join(", "),
        ops::CPU_KERNELS_ENV
    );
    outln!(
        "{:<16} {:>9} {:>12} {:>24} {:>24}{}",
        "model",
        "precision",
        "parameters",
        "eval img/s",
        "train img/s",
        if args.augment {
            format!(" {:>24}", "train+augment img/s")
        } else {
            String::new()
        }
    );
    let (images, labels) = synthetic_batch(args.batch_size, &device)?;
    let order: Vec<usize> = (0..args.batch_size).collect();
    let augmentation = EpochAugmentation::new(0, 0, &order, args.batch_size, &device)?;
    for s in &specs {
        for &precision in &precisions {
            ops::set_tf32(precision == Precision::Tf32);
            let mut subject = Subject::new(s, &device)?;
            let forward = |_: usize| subject.forward(&images);
            let forward_rate = images_per_second(&device, args.batch_size, args.iters, forward)?;
            let mut step = |i: usize| subject.step(&images, &labels, i);
            let step_rate = images_per_second(&device, args.batch_size, args.iters, &mut step)?;
            let augmented_rate = if args.augment {
                let mut augmented_step = |i: usize| -> anyhow::Result<()> {
                    let x = augmentation.apply(&images, 0)?;
                    subject.step(&x, &labels, i)
                };
                let rate =
                    images_per_second(&device, args.batch_size, args.iters, &mut augmented_step)?;
                format!(" {:>24}", rate.to_string())
            } else {
                String::new()
            };
            outln!(
                "{:<16} {:>9} {:>12} {:>24} {:>24}{augmented_rate}",
                s.name,
                precision.to_string(),
                s.parameter_count(),
                forward_rate.to_string(),
                step_rate.to_string()
            );
        }
    }
    ops::set_tf32(false);
    if args.plans {
        print_cudnn_plans();
    }
    Ok(())
}

/// cuDNN's choices on this thread (the one that ran every measurement), one line per shape.
#[cfg(feature = "cuda")]
fn print_cudnn_plans() {
    let plans = allconv_models::ops::cudnn_plans();
    outln!("cuDNN plans ({}):", plans.len());
    for line in plans {
        outln!("  {line}");
    }
}

/// A model ready to measure: its network and the trainer's optimizer over its weights.
struct Subject {
    net: Network,
    sgd: Sgd,
}

impl Subject {
    fn new(spec: &allconv_models::ModelSpec, device: &Device) -> anyhow::Result<Self> {
        let varmap = VarMap::new();
        let net = Network::new(spec, &varmap, device, 0)?;
        let sgd = Sgd::from_varmap(
            &varmap,
            SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 0.001,
                weight_decay_bias: true,
            },
        )?;
        Ok(Self { net, sgd })
    }

    /// One forward pass in eval mode (no dropout).
    fn forward(&self, images: &Tensor) -> anyhow::Result<()> {
        self.net.forward(images, Mode::Eval)?;
        Ok(())
    }

    /// One training step: forward with dropout (seeded by `i`), cross-entropy, backward, SGD.
    fn step(&mut self, images: &Tensor, labels: &Tensor, i: usize) -> anyhow::Result<()> {
        let logits = self.net.forward(
            images,
            Mode::Train {
                dropout_seed: i as u64,
            },
        )?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        self.sgd.backward_step(&loss)?;
        Ok(())
    }
}

/// `--paced`: every model built and warmed up, then one measurement per line of standard input
/// (`MODEL eval|train`), answered on standard output as soon as it is done.
fn paced(
    specs: &[allconv_models::ModelSpec],
    device: &Device,
    precision: Precision,
    batch: usize,
    iters: usize,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    ops::set_tf32(precision == Precision::Tf32);
    let (images, labels) = synthetic_batch(batch, device)?;
    let mut subjects = Vec::new();
    for s in specs {
        let mut subject = Subject::new(s, device)?;
        for i in 0..warm_up_calls(device) {
            subject.forward(&images)?;
            subject.step(&images, &labels, i)?;
        }
        subjects.push((s.name.to_ascii_lowercase(), subject));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", ops::cpu_kernels()?)?;
    out.flush()?;
    let mut steps = 0;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading a --paced request from standard input")?;
        let request: Vec<&str> = line.split_whitespace().collect();
        let [model, mode] = request[..] else {
            anyhow::bail!(
                "--paced request {}: expected 'MODEL eval' or 'MODEL train', got '{line}'",
                number + 1
            );
        };
        let Some((_, subject)) = subjects
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(model))
        else {
            anyhow::bail!(
                "--paced request {}: model '{model}' is not among --models",
                number + 1
            );
        };
        let rate = match mode {
            "eval" => timed(device, batch, iters, |_| subject.forward(&images))?,
            "train" => timed(device, batch, iters, |_| {
                steps += 1;
                subject.step(&images, &labels, steps)
            })?,
            other => anyhow::bail!(
                "--paced request {}: expected 'eval' or 'train', got '{other}'",
                number + 1
            ),
        };
        writeln!(out, "{model} {mode} {:.2}", rate.wall)?;
        out.flush()?;
    }
    ops::set_tf32(false);
    Ok(())
}

/// Unreachable without CUDA (`--plans` is refused on the CPU, the only device of this build).
#[cfg(not(feature = "cuda"))]
fn print_cudnn_plans() {}

/// The benchmark's input: `batch` standard-normal 3 x 32 x 32 images and labels cycling 0-9.
fn synthetic_batch(batch: usize, device: &Device) -> anyhow::Result<(Tensor, Tensor)> {
    let images = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), device)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let labels = Tensor::from_vec(labels, batch, device)?;
    Ok((images, labels))
}

/// Untimed calls before a measurement: one on the CPU (first-touch page faults); three on
/// CUDA, where the first calls also choose the cuDNN algorithms and fill the allocator.
fn warm_up_calls(device: &Device) -> usize {
    if device.is_cpu() {
        1
    } else {
        3
    }
}

/// Images per wall-clock second and per CPU-second of `work` over `iters` timed calls after
/// [`warm_up_calls`] untimed ones. The device is synchronised before the clock starts and
/// before it stops, so queued GPU work is counted.
fn images_per_second(
    device: &Device,
    batch: usize,
    iters: usize,
    mut work: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Rate> {
    let warm_up = warm_up_calls(device);
    for i in 0..warm_up {
        work(i)?;
    }
    timed(device, batch, iters, |i| work(warm_up + i))
}

/// [`images_per_second`] without the warm-up: `iters` timed calls of `work`.
fn timed(
    device: &Device,
    batch: usize,
    iters: usize,
    mut work: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Rate> {
    device.synchronize()?;
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    for i in 0..iters {
        work(i)?;
    }
    device.synchronize()?;
    let images = batch as f64 * iters as f64; // As floats: the product of two flags may overflow.
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
