//! The CUDA side of the ops (feature `cuda`): cuDNN convolutions with descriptors, algorithms and
//! workspace cached per shape (`cudnn`), and our own kernels for what cuDNN does not do the way
//! the CPU path does (`kernels`: padded max-pool with first-arg-max backward, ReLU mask, ...).
//! Every function here takes and returns candle CUDA storage, so the ops' `cuda_fwd` methods
//! only delegate and the model code never asks which device it runs on.

mod cudnn;
mod kernels;

pub(crate) use cudnn::{conv_backward, conv_forward};
pub use cudnn::{cudnn_cache_len, cudnn_plans};
pub(crate) use kernels::{dropout, max_pool_backward, max_pool_forward, relu_backward, sgd_step};
