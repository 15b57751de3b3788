//! Which implementation runs the convolutions: our own ([`ConvEngine::Own`]) or candle's
//! ([`ConvEngine::Candle`]), chosen process-wide like TF32 ([`set_conv_engine`]).
//!
//! Why a second engine: on CUDA our own convolutions are cuDNN calls, and a cuDNN version or
//! card whose results fail the device check (`docs/protocol.md`, Device check) would otherwise
//! leave that GPU unusable. candle's `Tensor::conv2d` (im2col + cuBLAS on CUDA, no cuDNN: the
//! `cuda` feature leaves candle's own `cudnn` feature off) with a broadcast bias add and
//! `relu`, differentiated by candle's autograd (`conv_transpose2d` for the input gradient,
//! a convolution of the transposed tensors for the weight gradient), shares none of that code.
//! It is slower (a prototype trained All-CNN-C at ~3,500 img/s on an H200 with TF32, against
//! PyTorch's ~48,000), but it lets a user train where cuDNN fails. Pooling, dropout and the SGD
//! update stay our own kernels in both engines (they are checked bit for bit on the host).
//!
//! On the CPU the candle engine is candle's CPU `conv2d`, so the CPU device check compares it
//! with the direct loops too.

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// An implementation of the convolution (forward with bias and optional ReLU, and its three
/// gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvEngine {
    /// Ours: im2col + GEMM in both directions on the CPU; cuDNN with fused bias + ReLU and
    /// timed algorithm choice on CUDA.
    Own,
    /// candle's `conv2d` + bias + `relu` through candle's autograd, on any device (im2col +
    /// cuBLAS on CUDA, no cuDNN).
    Candle,
}

/// Both engines, in the order the device gate tries them.
pub const ALL_CONV_ENGINES: [ConvEngine; 2] = [ConvEngine::Own, ConvEngine::Candle];

impl ConvEngine {
    /// `own` or `candle`, as configs and flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::Candle => "candle",
        }
    }

    /// Parses `own` or `candle` (case-insensitive); the error names what was given.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "own" => Ok(Self::Own),
            "candle" => Ok(Self::Candle),
            _ => Err(format!("conv engine '{s}': expected own or candle")),
        }
    }

    /// What the engine is on `device`, in words (for messages).
    pub fn describe(self, cuda: bool) -> &'static str {
        match (self, cuda) {
            (Self::Own, false) => "own (im2col + GEMM)",
            (Self::Own, true) => "own (cuDNN)",
            (Self::Candle, false) => "candle (candle's CPU conv2d)",
            (Self::Candle, true) => "candle (candle's im2col + cuBLAS conv2d, no cuDNN)",
        }
    }
}

impl std::fmt::Display for ConvEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a training configuration asks for (`training.conv_engine`): one engine, or `auto`,
/// where the device check decides (CUDA: our own engine if it passes the check, else candle's
/// if that passes; the CPU: our own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvEngineChoice {
    /// Decided by the device check (see the type's documentation).
    #[default]
    Auto,
    /// Always [`ConvEngine::Own`].
    Own,
    /// Always [`ConvEngine::Candle`].
    Candle,
}

impl ConvEngineChoice {
    /// The engine asked for, or `None` for `auto`.
    pub fn fixed(self) -> Option<ConvEngine> {
        match self {
            Self::Auto => None,
            Self::Own => Some(ConvEngine::Own),
            Self::Candle => Some(ConvEngine::Candle),
        }
    }

    /// The engines to try, in order: `auto` tries ours, then candle's.
    pub fn candidates(self) -> Vec<ConvEngine> {
        match self.fixed() {
            Some(engine) => vec![engine],
            None => ALL_CONV_ENGINES.to_vec(),
        }
    }

    /// `auto`, `own` or `candle`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Own => "own",
            Self::Candle => "candle",
        }
    }
}

static ENGINE: AtomicU8 = AtomicU8::new(0);

/// Makes every later convolution run on `engine` (process-wide, like [`crate::ops::set_tf32`]);
/// [`ConvEngine::Own`] by default. The visualisation's deconvnet and guided-backpropagation
/// ReLU rules exist in our own kernels only and keep using them.
pub fn set_conv_engine(engine: ConvEngine) {
    ENGINE.store(
        match engine {
            ConvEngine::Own => 0,
            ConvEngine::Candle => 1,
        },
        Ordering::Relaxed,
    );
}

/// The engine [`set_conv_engine`] chose.
pub fn conv_engine() -> ConvEngine {
    match ENGINE.load(Ordering::Relaxed) {
        0 => ConvEngine::Own,
        _ => ConvEngine::Candle,
    }
}

/// The candle engine: `relu?(conv2d(x, weight) + bias)` from candle's own ops, differentiated
/// by candle's autograd.
///
/// candle 0.11's `conv2d` backward takes the input gradient's output padding from the height
/// alone, so an input whose last rows or columns no window reaches, by a remainder that
/// differs between height and width (a stride-2 convolution of a 7x10 input), gets an input
/// gradient of the wrong shape. Those rows and columns take no part in the output: here the
/// input is then padded explicitly and they are dropped, so that both remainders are zero;
/// their gradient is zero through `narrow`'s backward, as it should be.
pub(super) fn candle_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
    relu: bool,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (out_channels, _, kh, kw) = weight.dims4()?;
    if stride == 0 || h + 2 * pad < kh || w + 2 * pad < kw {
        candle_core::bail!(
            "conv2d: kernel {kh}x{kw} stride {stride} pad {pad} does not fit input {h}x{w}"
        )
    }
    let (rem_h, rem_w) = ((h + 2 * pad - kh) % stride, (w + 2 * pad - kw) % stride);
    let y = if rem_h == 0 && rem_w == 0 {
        x.conv2d(weight, pad, stride, 1, 1)?
    } else {
        x.pad_with_zeros(2, pad, pad)?
            .pad_with_zeros(3, pad, pad)?
            .narrow(2, 0, h + 2 * pad - rem_h)?
            .narrow(3, 0, w + 2 * pad - rem_w)?
            .conv2d(weight, 0, stride, 1, 1)?
    };
    let y = y.broadcast_add(&bias.reshape((1, out_channels, 1, 1))?)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}
