//! Tensor operations that candle lacks or does slowly on the CPU: an im2col + GEMM convolution
//! and a padded, differentiable max-pool; plus dropout with a device-independent mask and a
//! fused in-place SGD step.

mod buffers;
mod conv;
mod cpu_kernels;
#[cfg(feature = "cuda")]
mod cuda;
mod cudnn_codes;
mod dropout;
mod pool;
mod sgd;

pub use conv::{
    conv2d, conv2d_relu, conv2d_relu_dropout, conv2d_relu_rule, conv_engine, set_conv_engine,
    ConvEngine, ConvEngineChoice, ReluBackward, ALL_CONV_ENGINES,
};
pub use cpu_kernels::{
    cpu_kernels, cpu_model, cpu_threads, set_cpu_kernels, supported_cpu_kernels, use_cpu_kernels,
    CpuFeatures, CpuKernels, CpuKernelsChoice, ALL_CPU_KERNELS, ALL_CPU_KERNEL_CHOICES,
};
#[cfg(feature = "cuda")]
pub use cuda::{cudnn_cache_len, cudnn_plans};
pub use dropout::{dropout, dropout_bits, Dropout};
pub use pool::{max_pool2d, max_pool2d_dropout, max_pool2d_padded, max_pool2d_reference};
pub use sgd::sgd_step;

use std::sync::atomic::{AtomicBool, Ordering};

static TF32: AtomicBool = AtomicBool::new(false);

/// Allows TF32 tensor-core math (10-bit mantissa products, fp32 accumulation) in the CUDA
/// convolutions (cuDNN) and matrix products (cuBLAS); off by default, i.e. exact fp32. Has no
/// effect on the CPU. Process-wide, like PyTorch's `torch.backends.{cudnn,cuda.matmul}.allow_tf32`.
pub fn set_tf32(on: bool) {
    TF32.store(on, Ordering::Relaxed);
    #[cfg(feature = "cuda")]
    candle_core::cuda::set_gemm_reduced_precision_f32(on);
}

/// Whether [`set_tf32`] allowed TF32 math.
pub fn tf32() -> bool {
    TF32.load(Ordering::Relaxed)
}

static DETERMINISTIC: AtomicBool = AtomicBool::new(false);

/// Makes the CUDA convolutions use deterministic cuDNN algorithms only, so that they give the
/// same bits on every run on the same card and software; off by default, where cuDNN's timed
/// choice takes the fastest algorithm unless a deterministic one is within 10 % of it (the
/// weight- and input-gradient algorithms that add with atomics differ in the last bits from run
/// to run). Takes effect at the next convolution call: the switch is part of each shape's cached
/// plan, like TF32. Process-wide, like PyTorch's `torch.backends.cudnn.deterministic`.
///
/// On the CPU it changes nothing: our CPU ops are already deterministic for a given rayon
/// thread count (every reduction is summed in a fixed chunk order).
pub fn set_deterministic(on: bool) {
    DETERMINISTIC.store(on, Ordering::Relaxed);
}

/// Whether [`set_deterministic`] restricted cuDNN to deterministic algorithms.
pub fn deterministic() -> bool {
    DETERMINISTIC.load(Ordering::Relaxed)
}
