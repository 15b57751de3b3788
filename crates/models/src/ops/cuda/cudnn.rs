//! cuDNN convolutions (scaffold: to be written).

use candle_core::{bail, CudaStorage, Layout, Result, Shape};

/// Forward convolution with bias (and ReLU when `relu`), same contract as the CPU `Conv2dOp`.
pub(crate) fn conv_forward(
    _stride: usize,
    _pad: usize,
    _relu: bool,
    _x: (&CudaStorage, &Layout),
    _w: (&CudaStorage, &Layout),
    _b: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    bail!("conv2d: the cuDNN path is not written yet")
}

/// `[dx (if input_grad) ; dw ; db]` flattened, same contract as the CPU `Conv2dBackwardOp`.
pub(crate) fn conv_backward(
    _stride: usize,
    _pad: usize,
    _input_grad: bool,
    _x: (&CudaStorage, &Layout),
    _w: (&CudaStorage, &Layout),
    _dy: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    bail!("conv2d backward: the cuDNN path is not written yet")
}
