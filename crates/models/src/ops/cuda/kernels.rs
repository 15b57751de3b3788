//! Our own CUDA kernels (scaffold: to be written).

use candle_core::{bail, CudaStorage, Layout, Result, Shape};

/// Padded max-pool forward, same contract as the CPU `MaxPoolOp`.
pub(crate) fn max_pool_forward(
    _kernel: usize,
    _stride: usize,
    _pad: usize,
    _x: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    bail!("max_pool2d: the CUDA kernel is not written yet")
}

/// Max-pool backward (gradient to the first arg-max), same contract as `MaxPoolBackwardOp`.
pub(crate) fn max_pool_backward(
    _kernel: usize,
    _stride: usize,
    _pad: usize,
    _x: (&CudaStorage, &Layout),
    _dy: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    bail!("max_pool2d backward: the CUDA kernel is not written yet")
}

/// `dy * (y > 0)`, same contract as the CPU `ReluMaskOp`.
pub(crate) fn relu_mask(
    _dy: (&CudaStorage, &Layout),
    _y: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    bail!("relu mask: the CUDA kernel is not written yet")
}
