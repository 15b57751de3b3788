//! 2-D convolution with bias as im2col + GEMM in both directions on the CPU.
//!
//! Why by hand: candle 0.11 computes the input gradient of `conv2d` with a direct
//! `conv_transpose2d` loop that made a training step ~6x slower than PyTorch on the CPU. Here the
//! forward pass is `W [O, C*kh*kw] x cols [C*kh*kw, Ho*Wo]` per image, and the backward pass is
//! `dW += dY cols^T`, `dcols = W^T dY` followed by col2im (the adjoint of im2col): three GEMMs
//! (the `gemm` crate, which candle's matmul also uses) and two memory rearrangements.
//!
//! Layout choice: the batch is split into one contiguous chunk per rayon thread and every image
//! is one single-threaded GEMM, writing NCHW directly (no transposes). Images with few output
//! positions (6x6, 8x8) go several to one GEMM, side by side, so that it has at least
//! [`GROUP_COLUMNS`] columns; their outputs are copied back to NCHW. The columns of one group
//! are reused from cache and never kept for the backward pass (it recomputes them), so memory
//! stays at one `C*kh*kw x columns` buffer per thread instead of the whole batch. Per-thread
//! weight gradients are summed in chunk order, so results do not depend on thread scheduling
//! (only on the thread count, which sets the chunks and groups).
//!
//! With a fused ReLU the backward op masks the output gradient itself, while copying a group's
//! gradient into its GEMM operand, instead of a separate pass over the whole gradient. Outputs
//! are allocated uninitialised and zeroed by the thread that fills them, never serially. A
//! dropout after the ReLU can be fused too ([`conv2d_relu_dropout`]): the mask is applied to
//! each output row in cache, and the backward masks the gradient with the dropped output.
//! A strided convolution's im2col / col2im read and write the input's polyphase components
//! (`phases.rs`), so that every row of its column matrix is a contiguous window, as at stride 1.
//! A single image whose column matrix would not fit in L2 (96 channels at 32x32) is done in
//! blocks of output rows ([`Geom::block_rows`]); for same-size stride-1 convolutions im2col
//! copies each row of the column matrix as one shifted run of the input plane.
//!
//! Here: the candle ops and the public functions. The CPU side is `geom.rs` (shapes and how the
//! work is split), `phases.rs` and `im2col.rs`, `gemm.rs` (every GEMM call), `forward.rs` and
//! `backward.rs` (the two passes) and `relu.rs` (the ReLU's backward); the CUDA side is
//! `ops/cuda/cudnn`.

mod backward;
mod engine;
mod forward;
mod gemm;
mod geom;
mod im2col;
mod phases;
mod relu;
#[cfg(test)]
mod tests;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Device, Layout, Result, Shape, Storage, Tensor};

use super::buffers::{contiguous, float_storage, own_kernel_runs, Float, Kernels};
use super::dropout::Dropout;
use backward::conv_backward;
pub use engine::{conv_engine, set_conv_engine, ConvEngine, ConvEngineChoice, ALL_CONV_ENGINES};
use forward::conv_forward;
use geom::Geom;
pub use relu::ReluBackward;
use relu::ReluBackwardOp;

/// Forward convolution op on `(x [N,C,H,W], w [O,C,kh,kw], b [O])`, optionally followed by a
/// fused ReLU (saves candle's separate ReLU passes and their backward over the activations),
/// and after the ReLU by a fused dropout (CPU only; see [`conv2d_relu_dropout`]).
struct Conv2dOp {
    stride: usize,
    pad: usize,
    relu: bool,
    /// Dropout after the ReLU (only with `relu`, only on the CPU).
    dropout: Option<Dropout>,
    /// How the ReLU's backward pass masks the gradient (training: always `Backprop`).
    rule: ReluBackward,
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "allconv-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "conv2d";
        let g = Geom::new(xl, wl, self.stride, self.pad)?;
        if bl.shape().dims() != [g.out_channels] {
            bail!(
                "conv2d: bias shape {:?}, expected [{}]",
                bl.shape(),
                g.out_channels
            )
        }
        let shape = Shape::from((g.batch, g.out_channels, g.out_h, g.out_w));
        let storage = float_storage!(OP, xs.dtype(), T => conv_forward::<T>(
            contiguous(xs, xl, OP, "input")?,
            contiguous(ws, wl, OP, "weight")?,
            contiguous(bs, bl, OP, "bias")?,
            &g,
            self.relu,
            self.dropout.map(|d| d.mask()),
        ));
        Ok((storage, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if self.dropout.is_some() {
            // `conv2d_relu_dropout` runs the two ops unfused on CUDA.
            bail!("conv2d: the fused dropout runs on the CPU only")
        }
        crate::ops::cuda::conv_forward(
            self.stride,
            self.pad,
            self.relu,
            (xs, xl),
            (ws, wl),
            (bs, bl),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let input_grad = x.track_op();
        // On the CPU the backward op masks the gradient itself, image by image while it is in
        // cache, instead of a separate pass that writes a masked copy of the whole gradient.
        let cpu = matches!(res.device(), Device::Cpu);
        let backprop = self.rule == ReluBackward::Backprop;
        let grad = if self.relu && (!cpu || !backprop) {
            // On CUDA, and for the visualisation rules, a separate pass.
            grad.contiguous()?
                .apply_op2_no_bwd(res, &ReluBackwardOp(self.rule))?
        } else {
            grad.contiguous()?
        };
        let op = Conv2dBackwardOp {
            stride: self.stride,
            pad: self.pad,
            input_grad,
            relu_output: (self.relu && cpu && backprop).then(|| res.clone()),
            grad_scale: self.dropout.map(|d| d.scale()),
        };
        // One op computes all three gradients (they share the column matrices); its output is
        // their concatenation, split here without copying.
        let flat = x.apply_op3_no_bwd(w, &grad, &op)?;
        let (nx, nw) = (if input_grad { x.elem_count() } else { 0 }, w.elem_count());
        let dx = if input_grad {
            Some(flat.narrow(0, 0, nx)?.reshape(x.shape())?)
        } else {
            None
        };
        let dw = flat.narrow(0, nx, nw)?.reshape(w.shape())?;
        let db = flat
            .narrow(0, nx + nw, b.elem_count())?
            .reshape(b.shape())?;
        Ok((dx, Some(dw), Some(db)))
    }
}

/// Backward op on `(x, w, dy)`: returns `[dx (if input_grad) ; dw ; db]` flattened.
struct Conv2dBackwardOp {
    stride: usize,
    pad: usize,
    input_grad: bool,
    /// The output of a fused ReLU (CPU only): the gradient counts where it is positive.
    relu_output: Option<Tensor>,
    /// With a fused dropout after the ReLU (then `relu_output` is the dropout's output): its
    /// `1 / (1 - rate)`, applied to the kept gradients.
    grad_scale: Option<f64>,
}

impl CustomOp3 for Conv2dBackwardOp {
    fn name(&self) -> &'static str {
        "allconv-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        const OP: &str = "conv2d backward";
        let g = Geom::new(xl, wl, self.stride, self.pad)?;
        fn run<T: Float>(
            op: &Conv2dBackwardOp,
            g: &Geom,
            (xs, xl): (&CpuStorage, &Layout),
            (ws, wl): (&CpuStorage, &Layout),
            (gs, gl): (&CpuStorage, &Layout),
        ) -> Result<Vec<T>> {
            let relu_output = op.relu_output.as_ref().map(|y| y.storage_and_layout());
            let y = match &relu_output {
                Some((storage, yl)) => match &**storage {
                    Storage::Cpu(ys) if yl.shape() == gl.shape() => {
                        Some(contiguous(ys, yl, OP, "relu output")?)
                    }
                    _ => bail!("conv2d backward: the ReLU output must be a CPU tensor like dy"),
                },
                None => None,
            };
            let scale = op.grad_scale.map(T::from_f64);
            Ok(conv_backward::<T>(
                contiguous(xs, xl, OP, "input")?,
                contiguous(ws, wl, OP, "weight")?,
                contiguous(gs, gl, OP, "output gradient")?,
                y.map(|y| (y, scale)),
                g,
                op.input_grad,
            ))
        }
        let expected = [g.batch, g.out_channels, g.out_h, g.out_w];
        if gl.shape().dims() != expected {
            bail!(
                "conv2d backward: gradient shape {:?}, expected {expected:?}",
                gl.shape()
            )
        }
        let storage =
            float_storage!(OP, xs.dtype(), T => run::<T>(self, &g, (xs, xl), (ws, wl), (gs, gl))?);
        // `[dx (if input_grad); dw; db]`, as `conv_backward` concatenates them.
        let dx_len = if self.input_grad {
            g.batch * g.in_len()
        } else {
            0
        };
        let len = dx_len + g.out_channels * g.k() + g.out_channels;
        Ok((storage, Shape::from(len)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::ops::cuda::conv_backward(
            self.stride,
            self.pad,
            self.input_grad,
            (xs, xl),
            (ws, wl),
            (gs, gl),
        )
    }
}

/// 2-D convolution with bias: `x [N, C, H, W]`, `weight [O, C, kh, kw]` (PyTorch layout),
/// `bias [O]`, the same `stride` and zero padding `pad` in both directions -> `[N, O, Ho, Wo]`.
///
/// With the [`ConvEngine::Own`] engine (the default) on the CPU with f32 or f64 this is
/// im2col + GEMM with a GEMM backward pass (see the module documentation), on CUDA in f32 cuDNN;
/// with [`ConvEngine::Candle`], and on other devices or dtypes, it is candle's own `conv2d` plus
/// a bias.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    conv2d_impl(x, weight, bias, stride, pad, false, ReluBackward::Backprop)
}

/// `relu(conv2d(x, weight, bias, stride, pad))`, fused on the CPU (the backward pass masks the
/// gradient with `output > 0`, as PyTorch's ReLU).
pub fn conv2d_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    conv2d_impl(x, weight, bias, stride, pad, true, ReluBackward::Backprop)
}

/// [`conv2d_relu`] whose backward pass masks the gradient by `rule` (see [`ReluBackward`]):
/// plain backpropagation, the deconvnet rule or guided backpropagation, for visualising what a
/// unit responds to. The rules other than `Backprop` need our own kernels (f32 or f64 on the
/// CPU, f32 on CUDA); elsewhere they are an error.
pub fn conv2d_relu_rule(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    rule: ReluBackward,
) -> Result<Tensor> {
    conv2d_impl(x, weight, bias, stride, pad, true, rule)
}

/// `dropout(relu(conv2d(x, weight, bias, stride, pad)))` with [`Dropout`]'s mask: the same
/// values and gradients as [`conv2d_relu`] followed by [`super::dropout()`].
///
/// Why fused: on the CPU (f32, f64) the mask is applied to each output row while the
/// convolution has it in cache, and the ReLU output is never a graph node: candle's backward
/// would otherwise allocate a zeroed gradient for it, add the dropout's gradient into it and
/// regenerate the mask, whole passes over the tensor per step. The backward masks the gradient
/// with `output > 0` (positive exactly where the ReLU output is positive and the element was
/// kept) and scales it by `1 / (1 - rate)`, as the two backward passes would. Elsewhere (CUDA,
/// other dtypes, rate 0) the two ops unfused.
pub fn conv2d_relu_dropout(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    dropout: Dropout,
) -> Result<Tensor> {
    let dropout = Dropout::new(dropout.rate, dropout.seed, dropout.stream)?;
    if conv_engine() == ConvEngine::Candle
        || !own_kernel_runs(x, Kernels::CpuOnly)
        || dropout.rate == 0.0
    {
        let y = conv2d_relu(x, weight, bias, stride, pad)?;
        return crate::ops::dropout(&y, dropout.rate, dropout.seed, dropout.stream);
    }
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        Conv2dOp {
            stride,
            pad,
            relu: true,
            dropout: Some(dropout),
            rule: ReluBackward::Backprop,
        },
    )
}

fn conv2d_impl(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    relu: bool,
    rule: ReluBackward,
) -> Result<Tensor> {
    // The visualisation's rules exist in our own kernels only (see `set_conv_engine`).
    let candle_engine = conv_engine() == ConvEngine::Candle && rule == ReluBackward::Backprop;
    if !candle_engine && own_kernel_runs(x, Kernels::CpuAndCudaF32) {
        x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            Conv2dOp {
                stride,
                pad,
                relu,
                dropout: None,
                rule,
            },
        )
    } else if relu && rule != ReluBackward::Backprop {
        bail!(
            "conv2d relu: the {} backward rule needs f32/f64 on the CPU or f32 on CUDA, got {:?} \
             on {:?}",
            rule.name(),
            x.dtype(),
            x.device().location()
        )
    } else {
        engine::candle_conv2d(x, weight, bias, stride, pad, relu)
    }
}
