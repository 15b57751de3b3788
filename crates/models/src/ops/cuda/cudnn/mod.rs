//! cuDNN convolutions: forward (with bias, and ReLU when asked), input gradient, weight gradient
//! and bias gradient, for the ops' CUDA side.
//!
//! Why not candle's own cuDNN path: it creates descriptors, asks for an algorithm and allocates a
//! workspace on every call (measured ~3x slower than im2col). This module keeps all of
//! that per thread (cuDNN handles are neither `Send` nor `Sync`) and per CUDA device:
//!
//! - one cuDNN handle bound to candle's stream of that device, so our calls are ordered with
//!   candle's kernels without any synchronisation;
//! - one [`state::Plan`] per (N, C, H, W, O, kh, kw, stride, pad, TF32, deterministic): the
//!   tensor, filter, convolution and activation descriptors and, chosen once on first use, the forward, backward-data and
//!   backward-filter algorithms;
//! - one workspace buffer, grown to the largest need of any chosen algorithm, and one zero
//!   buffer (the fused call's `z`), grown to the largest ReLU output.
//!
//! Algorithm choice (once per plan and direction): `cudnnFind*AlgorithmEx` times every algorithm
//! whose workspace fits [`algo::WORKSPACE_LIMIT`] on the real buffers of that first call, the
//! approach of PyTorch's `cudnn.benchmark = True` (which its reference numbers used). Among the
//! results we take the fastest, except that a deterministic algorithm within
//! [`algo::DETERMINISTIC_SLACK`] of it is preferred: the backward passes' atomic-add algorithms
//! make runs irreproducible, and a few percent of one kernel is a cheap price for repeatable runs.
//! With [`crate::ops::set_deterministic`] only deterministic algorithms are candidates at all
//! (the switch is part of the plan's key, like TF32). If timing is impossible (no memory for its
//! workspace, or cuDNN refuses) the first fitting algorithm of the `cudnnGet*_v7` heuristics is
//! used instead (deterministic too in deterministic mode). [`cudnn_plans`] lists what was chosen.
//!
//! Fusion: with ReLU the forward pass is one `cudnnConvolutionBiasActivationForward` call
//! (`relu(conv(x, w) + 0 * z + b)`, with `z` a zero buffer shared by all plans, so that nothing
//! undefined is ever multiplied by zero). cuDNN documents the identity activation as limited to
//! IMPLICIT_PRECOMP_GEMM, not ReLU, so without ReLU the forward pass is the convolution with the
//! timed algorithm followed by `cudnnAddTensor` for the bias. Should cuDNN refuse the fused call
//! for a shape, that plan falls back to convolution, bias and activation as three calls
//! ([`cudnn_plans`] says so). The ReLU's backward mask is applied before [`conv_backward`]
//! (`ReluBackwardOp`), which therefore sees the masked output gradient.
//!
//! cuDNN's own integers: every cuDNN function is declared in `ffi.rs` with its status, and the
//! algorithm and math type it writes into its performance structs, as plain integers, decoded by
//! `ops::cudnn_codes` (an unknown value is an error naming it, or a timing result left out), so
//! that no Rust enum ever holds a value a newer cuDNN invented.
//!
//! Precision: exact fp32 (`CUDNN_FMA_MATH`, which also keeps cuDNN from using TF32 on its own
//! for fp32 data on Ampere and newer, as `CUDNN_DEFAULT_MATH` may) unless
//! [`crate::ops::set_tf32`] allowed TF32; then the convolutions are described with
//! `CUDNN_DEFAULT_MATH` (tensor cores with TF32 allowed, no down-conversion to fp16) and every
//! direction runs with the math type its timing chose, as PyTorch does.

mod algo;
mod backward;
mod desc;
mod ffi;
mod forward;
mod state;
mod workspace;

use std::ffi::{c_int, c_void, CStr};
use std::fmt;

use candle_core::backend::BackendStorage;
use candle_core::cuda::CudaDevice;
use candle_core::{bail, CudaStorage, DType, Layout, Result, Shape};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, DevicePtr};

use ffi::{Code, STATUS_SUCCESS};

pub(crate) use backward::conv_backward;
pub(crate) use forward::conv_forward;
pub use state::{cudnn_cache_len, cudnn_plans};

/// Alignment (bytes, enough for 16-byte vector accesses) of every pointer given to cuDNN: the
/// weight and bias gradients sit at arbitrary offsets of one output buffer, an input may start
/// inside a larger tensor, and we do not rely on every cuDNN kernel accepting a pointer that is
/// only 4-byte aligned.
pub(super) const ALIGN: usize = 16;

/// One convolution geometry; the cache key of a [`Plan`] (per device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) n: usize,
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) o: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) tf32: bool,
    /// Deterministic algorithms only ([`crate::ops::set_deterministic`]).
    pub(super) deterministic: bool,
}

impl Key {
    /// Validates the shapes of `x [N,C,H,W]` and `w [O,C,kh,kw]` and builds the key.
    pub(super) fn new(op: &str, x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<Self> {
        let (n, c, h, width) = x.shape().dims4()?;
        let (o, wc, kh, kw) = w.shape().dims4()?;
        if wc != c {
            bail!("{op}: input has {c} channels, weight expects {wc}")
        }
        if stride == 0 || h + 2 * pad < kh || width + 2 * pad < kw {
            bail!("{op}: kernel {kh}x{kw} stride {stride} pad {pad} does not fit input {h}x{width}")
        }
        let key = Self {
            n,
            c,
            h,
            w: width,
            o,
            kh,
            kw,
            stride,
            pad,
            tf32: crate::ops::tf32(),
            deterministic: crate::ops::deterministic(),
        };
        let largest = [n, c, h, width, o, kh, kw, stride, pad]
            .into_iter()
            .max()
            .unwrap_or(0);
        if largest > c_int::MAX as usize {
            bail!("{op}: {key} has a dimension beyond cuDNN's 32-bit limit")
        }
        // cuDNN's legacy convolutions index each tensor with 32-bit integers (PyTorch splits the
        // batch above this); refuse rather than let cuDNN fail or index out of range.
        let most = [[n, c, h, width], key.y_dims(), [o, c, kh, kw]]
            .iter()
            .map(|d| d.iter().fold(1usize, |a, &b| a.saturating_mul(b)))
            .max()
            .unwrap_or(0);
        if most > c_int::MAX as usize {
            bail!("{op}: {key} has a tensor of {most} elements, beyond cuDNN's 32-bit indexing")
        }
        Ok(key)
    }

    pub(super) fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }

    pub(super) fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }

    pub(super) fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub(super) fn w_len(&self) -> usize {
        self.o * self.c * self.kh * self.kw
    }

    pub(super) fn y_len(&self) -> usize {
        self.n * self.o * self.out_h() * self.out_w()
    }

    pub(super) fn y_dims(&self) -> [usize; 4] {
        [self.n, self.o, self.out_h(), self.out_w()]
    }

    /// Refuses a zero-size kernel or channel count with a non-empty output, which cuDNN cannot
    /// describe (an empty output is handled before: its gradients are empty sums, [`zeros`]).
    pub(super) fn check_kernel(&self, op: &str) -> Result<()> {
        if self.w_len() == 0 {
            bail!("{op}: {self}: the CUDA path needs at least one channel and a non-empty kernel")
        }
        Ok(())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "x [{}, {}, {}, {}] w [{}, {}, {}, {}] stride {} pad {} {}{}",
            self.n,
            self.c,
            self.h,
            self.w,
            self.o,
            self.c,
            self.kh,
            self.kw,
            self.stride,
            self.pad,
            if self.tf32 { "tf32" } else { "fp32" },
            if self.deterministic {
                " deterministic-only"
            } else {
                ""
            }
        )
    }
}

/// A status cuDNN returned, in words: its number and cuDNN's own text for it (which cuDNN
/// gives for any value, known to this build or not).
pub(super) fn status_text(status: Code) -> String {
    // SAFETY: cudnnGetErrorString returns a pointer to a static NUL-terminated string (for an
    // unknown value, cuDNN's text saying so); a null pointer is handled.
    let text = unsafe {
        let p = ffi::cudnnGetErrorString(status);
        if p.is_null() {
            String::from("no text")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    format!("status {status} ({text})")
}

/// A failed cuDNN call as a candle error naming the operation, the step and the shape.
pub(super) fn cudnn_error(op: &str, step: &str, key: &Key, status: Code) -> candle_core::Error {
    candle_core::Error::Msg(format!(
        "{op}: cuDNN {step} failed for {key}: {}",
        status_text(status)
    ))
    .bt()
}

/// `status` as a result, with [`cudnn_error`]'s context.
pub(super) fn check(op: &str, step: &str, key: &Key, status: Code) -> Result<()> {
    if status == STATUS_SUCCESS {
        Ok(())
    } else {
        Err(cudnn_error(op, step, key, status))
    }
}

/// A CUDA driver error (allocation, copy) as a candle error with context.
pub(super) fn driver_error(
    op: &str,
    step: &str,
    key: &Key,
) -> impl Fn(cudarc::driver::DriverError) -> candle_core::Error {
    let context = format!("{op}: {step} failed for {key}");
    move |e| candle_core::Error::Msg(format!("{context}: {e:?}")).bt()
}

/// A tensor argument's f32 data: a view of its storage, or an aligned copy of it.
pub(super) enum Arg<'a> {
    View(CudaView<'a, f32>),
    Copy(CudaSlice<f32>),
}

impl Arg<'_> {
    /// The device pointer, with its use-tracking guard (see [`DevicePtr::device_ptr`]).
    pub(super) fn ptr<'s>(
        &'s self,
        stream: &'s CudaStream,
    ) -> (u64, cudarc::driver::SyncOnDrop<'s>) {
        match self {
            Arg::View(v) => v.device_ptr(stream),
            Arg::Copy(c) => c.device_ptr(stream),
        }
    }
}

/// The f32 data of a contiguous CUDA tensor argument. A tensor that starts at an offset which
/// is not [`ALIGN`]-byte aligned (a narrow of a larger tensor) is copied (on candle's stream,
/// so in order) to a fresh buffer: the algorithms are chosen on aligned buffers, and cuDNN
/// does not document which of them accept a pointer that is only 4-byte aligned.
pub(super) fn input<'a>(s: &'a CudaStorage, l: &Layout, op: &str, what: &str) -> Result<Arg<'a>> {
    if s.dtype() != DType::F32 {
        bail!(
            "{op}: the CUDA path takes f32 only, {what} is {:?}",
            s.dtype()
        )
    }
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: {what} must be contiguous (strides {:?})", l.stride())
    };
    let view = s.as_cuda_slice::<f32>()?.slice(start..end);
    let stream = s.device.cuda_stream();
    let aligned = {
        let (p, _guard) = view.device_ptr(&stream);
        p % ALIGN as u64 == 0
    };
    if aligned || view.is_empty() {
        return Ok(Arg::View(view));
    }
    let copy = stream.clone_dtod(&view).map_err(|e| {
        candle_core::Error::Msg(format!("{op}: copying the unaligned {what}: {e:?}")).bt()
    })?;
    Ok(Arg::Copy(copy))
}

pub(super) const ONE: f32 = 1.0;
pub(super) const ZERO: f32 = 0.0;

pub(super) fn scalar(v: &f32) -> *const c_void {
    v as *const f32 as *const c_void
}

/// Empty result (cuDNN rejects zero-sized descriptors): zeros, as sums over nothing.
pub(super) fn zeros(dev: &CudaDevice, len: usize, shape: Shape) -> Result<(CudaStorage, Shape)> {
    let data = dev.alloc_zeros::<f32>(len)?;
    Ok((CudaStorage::wrap_cuda_slice(data, dev.clone()), shape))
}
