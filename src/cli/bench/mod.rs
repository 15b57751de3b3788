//! `allconv bench`: forward and training-step throughput per model.
//!
//! The training step is the trainer's: forward (train mode, dropout on) + cross-entropy +
//! backward + the SGD update with momentum 0.9 and weight decay 0.001 (PyTorch's benchmark does
//! the same with `torch.optim.SGD`). On CUDA nothing is read back inside the timed loop: the
//! device is synchronised once at the end, as a real training loop that reads its loss only
//! every N steps. With `--augment`, the training step is measured a second time with the batch
//! augmented first (flip + shift on the device, as `data.augment` trains), for the cost of it.

mod paced;
mod subject;
mod timing;

use allconv_runs::{errln, outln};

use allconv_cifar::EpochAugmentation;
use allconv_models::ops::ConvEngine;
use allconv_models::{ops, spec, ModelOptions, MODEL_NAMES};
use allconv_vocab::Precision;
use anyhow::Context;
use candle_core::Device;

use paced::paced;
use subject::{synthetic_batch, Subject};
use timing::images_per_second;

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
    /// The CPU kernel path (over ALLCONV_CPU_KERNELS), as `training.cpu_kernels` chooses it
    /// for training.
    #[arg(long, value_name = "PATH", value_parser = super::choices::cpu_kernels())]
    cpu_kernels: Option<allconv_models::ops::CpuKernelsChoice>,
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
    let batch_flag = take_deprecated_batch(&mut args);
    anyhow::ensure!(args.batch_size > 0, "{batch_flag} must be at least 1");
    // Recycle activation buffers instead of page-faulting fresh ones every step.
    allconv_models::tune_allocator();
    anyhow::ensure!(args.iters > 0, "--iters must be at least 1");
    super::cpu_kernels::choose(args.cpu_kernels, None)?;
    let device = allconv_models::open_device(args.device).with_context(|| {
        format!(
            "--device {}: opening the device (is this binary built with --features cuda, on a \
             machine with that GPU?)",
            args.device
        )
    })?;
    let specs = model_specs(&args, &device, batch_flag)?;
    let precisions = precisions(&args, &device)?;
    ops::set_deterministic(args.deterministic);
    ops::set_conv_engine(args.conv_engine);
    let settings = settings_words(&args, &device);
    if args.paced {
        errln!("bench --paced: {settings}");
        anyhow::ensure!(
            precisions.len() == 1,
            "--paced measures one precision; give --precision fp32 or --precision tf32"
        );
        return paced(&specs, &device, precisions[0], args.batch_size, args.iters);
    }
    print_header(&args, &settings);
    measure_table(&args, &specs, &precisions, &device)?;
    if args.plans {
        print_cudnn_plans();
    }
    Ok(())
}

/// Moves a value given to `--batch` (the previous name) into `--batch-size`; returns the flag
/// the user wrote, for the errors about it.
fn take_deprecated_batch(args: &mut Args) -> &'static str {
    match args.deprecated_batch {
        Some(batch) => {
            args.batch_size = batch;
            "--batch"
        }
        None => "--batch-size",
    }
}

/// The networks of `--models` (all 12 without it); on the CPU, each refused when a batch of its
/// activations would not fit in this machine's memory.
fn model_specs(
    args: &Args,
    device: &Device,
    batch_flag: &str,
) -> anyhow::Result<Vec<allconv_models::ModelSpec>> {
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
    Ok(specs)
}

/// The precisions to measure (`--precision`, else fp32 on the CPU and both on CUDA); TF32 and
/// `--plans` on the CPU are refused with the reason.
fn precisions(args: &Args, device: &Device) -> anyhow::Result<Vec<Precision>> {
    let precisions = match (args.precision.is_empty(), device) {
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
    Ok(precisions)
}

/// The measured settings in words: cuDNN's algorithm set and the convolution engine.
fn settings_words(args: &Args, device: &Device) -> String {
    format!(
        "cuDNN algorithms {} (training.deterministic: {}), conv engine {}",
        if args.deterministic {
            "deterministic only"
        } else {
            "free"
        },
        args.deterministic,
        args.conv_engine.describe(device.is_cuda())
    )
}

/// The lines above the table: device, batch, iterations, threads and settings; the CPU and its
/// kernels; the table's header.
fn print_header(args: &Args, settings: &str) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    outln!(
        "device {}, batch {}, {} timed iterations, {threads} CPU threads; {settings}",
        args.device,
        args.batch_size,
        args.iters
    );
    let supported: Vec<&str> = ops::supported_cpu_kernels()
        .iter()
        .map(|k| k.name())
        .collect();
    outln!(
        "CPU {}; CPU kernels {} (this CPU runs: {}; --cpu-kernels or {} forces one)",
        ops::cpu_model(),
        ops::cpu_kernels(),
        supported.join(", "),
        super::cpu_kernels::CPU_KERNELS_VAR
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
}

/// One table row per model and precision: evaluation, training and (with `--augment`)
/// augmented training rates on one synthetic batch.
fn measure_table(
    args: &Args,
    specs: &[allconv_models::ModelSpec],
    precisions: &[Precision],
    device: &Device,
) -> anyhow::Result<()> {
    let (batch, iters) = (args.batch_size, args.iters);
    let (images, labels) = synthetic_batch(batch, device)?;
    let order: Vec<usize> = (0..batch).collect();
    let augmentation = EpochAugmentation::new(0, 0, &order, batch, device)?;
    for s in specs {
        for &precision in precisions {
            ops::set_tf32(precision == Precision::Tf32);
            let mut subject = Subject::new(s, device)?;
            let forward = |_: usize| subject.forward(&images);
            let forward_rate = images_per_second(device, batch, iters, forward)?;
            let mut step = |i: usize| subject.step(&images, &labels, i);
            let step_rate = images_per_second(device, batch, iters, &mut step)?;
            let augmented_rate = if args.augment {
                let mut augmented_step = |i: usize| -> anyhow::Result<()> {
                    let x = augmentation.apply(&images, 0)?;
                    subject.step(&x, &labels, i)
                };
                let rate = images_per_second(device, batch, iters, &mut augmented_step)?;
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

/// Unreachable without CUDA (`--plans` is refused on the CPU, the only device of this build).
#[cfg(not(feature = "cuda"))]
fn print_cudnn_plans() {}
