//! Tensor operations that candle lacks or does slowly on the CPU: an im2col + GEMM convolution
//! and a padded, differentiable max-pool.

mod conv;
#[cfg(feature = "cuda")]
mod cuda;
mod pool;

pub use conv::{conv2d, conv2d_relu};
pub use pool::{max_pool2d, max_pool2d_padded, max_pool2d_reference};
