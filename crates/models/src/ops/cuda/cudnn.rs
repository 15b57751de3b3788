//! cuDNN convolutions: forward (with bias, and ReLU when asked), input gradient, weight gradient
//! and bias gradient, for the ops' CUDA side.
//!
//! Why not candle's own cuDNN path: it creates descriptors, asks for an algorithm and allocates a
//! workspace on every call (issue 6 measured it ~3x slower than im2col). This module keeps all of
//! that per thread (cuDNN handles are neither `Send` nor `Sync`) and per CUDA device:
//!
//! - one cuDNN handle bound to candle's stream of that device, so our calls are ordered with
//!   candle's kernels without any synchronisation;
//! - one [`Plan`] per (N, C, H, W, O, kh, kw, stride, pad, TF32): the tensor, filter, convolution
//!   and activation descriptors and, chosen once on first use, the forward, backward-data and
//!   backward-filter algorithms;
//! - one workspace buffer, grown to the largest need of any chosen algorithm, and one zero
//!   buffer (the fused call's `z`), grown to the largest ReLU output.
//!
//! Algorithm choice (once per plan and direction): `cudnnFind*AlgorithmEx` times every algorithm
//! whose workspace fits [`WORKSPACE_LIMIT`] on the real buffers of that first call, the approach
//! of PyTorch's `cudnn.benchmark = True` (which its reference numbers used). Among the results we
//! take the fastest, except that a deterministic algorithm within [`DETERMINISTIC_SLACK`] of it is
//! preferred: the backward passes' atomic-add algorithms make runs irreproducible, and a few
//! percent of one kernel is a cheap price for repeatable runs. If timing is impossible (no memory
//! for its workspace, or cuDNN refuses) the first fitting algorithm of the `cudnnGet*_v7`
//! heuristics is used instead. [`cudnn_plans`] lists what was chosen.
//!
//! Fusion: with ReLU the forward pass is one `cudnnConvolutionBiasActivationForward` call
//! (`relu(conv(x, w) + 0 * z + b)`, with `z` a zero buffer shared by all plans, so that nothing
//! undefined is ever multiplied by zero). cuDNN documents the identity activation as limited to
//! IMPLICIT_PRECOMP_GEMM, not ReLU, so without ReLU the forward pass is the convolution with the
//! timed algorithm followed by `cudnnAddTensor` for the bias. Should cuDNN refuse the fused call
//! for a shape, that plan falls back to convolution, bias and activation as three calls
//! ([`cudnn_plans`] says so). The ReLU's backward mask is applied before [`conv_backward`]
//! (`ReluMaskOp`), which therefore sees the masked output gradient.
//!
//! Precision: exact fp32 (`CUDNN_FMA_MATH`, which also keeps cuDNN from using TF32 on its own
//! for fp32 data on Ampere and newer, as `CUDNN_DEFAULT_MATH` may) unless
//! [`crate::ops::set_tf32`] allowed TF32; then the convolutions are described with
//! `CUDNN_DEFAULT_MATH` (tensor cores with TF32 allowed, no down-conversion to fp16) and every
//! direction runs with the math type its timing chose, as PyTorch does.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr};
use std::fmt;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda::CudaDevice;
use candle_core::{bail, CudaStorage, DType, Layout, Result, Shape};
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, CudaStream, CudaView, DevicePtr, DevicePtrMut};

/// Largest workspace an algorithm may ask for: a cap (not a measurement) that keeps the FFT
/// variants from claiming gigabytes next to other training processes on the same card.
const WORKSPACE_LIMIT: usize = 512 << 20;

/// A deterministic algorithm is preferred if it is at most this factor slower than the fastest.
const DETERMINISTIC_SLACK: f32 = 1.10;

/// Alignment (bytes, enough for 16-byte vector accesses) of every pointer given to cuDNN: the
/// weight and bias gradients sit at arbitrary offsets of one output buffer, an input may start
/// inside a larger tensor, and we do not rely on every cuDNN kernel accepting a pointer that is
/// only 4-byte aligned.
const ALIGN: usize = 16;

/// One convolution geometry; the cache key of a [`Plan`] (per device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    tf32: bool,
}

impl Key {
    /// Validates the shapes of `x [N,C,H,W]` and `w [O,C,kh,kw]` and builds the key.
    fn new(op: &str, x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<Self> {
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

    fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }

    fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }

    fn x_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    fn w_len(&self) -> usize {
        self.o * self.c * self.kh * self.kw
    }

    fn y_len(&self) -> usize {
        self.n * self.o * self.out_h() * self.out_w()
    }

    fn y_dims(&self) -> [usize; 4] {
        [self.n, self.o, self.out_h(), self.out_w()]
    }

    /// Refuses a zero-size kernel or channel count with a non-empty output, which cuDNN cannot
    /// describe (an empty output is handled before: its gradients are empty sums, [`zeros`]).
    fn check_kernel(&self, op: &str) -> Result<()> {
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
            "x [{}, {}, {}, {}] w [{}, {}, {}, {}] stride {} pad {} {}",
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
            if self.tf32 { "tf32" } else { "fp32" }
        )
    }
}

/// A failed cuDNN call as a candle error naming the operation, the step and the shape.
fn cudnn_error(op: &str, step: &str, key: &Key, status: sys::cudnnStatus_t) -> candle_core::Error {
    // SAFETY: cudnnGetErrorString returns a pointer to a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(sys::cudnnGetErrorString(status)) };
    candle_core::Error::Msg(format!(
        "{op}: cuDNN {step} failed for {key}: {status:?} ({})",
        text.to_string_lossy()
    ))
    .bt()
}

/// `status` as a result, with [`cudnn_error`]'s context.
fn check(op: &str, step: &str, key: &Key, status: sys::cudnnStatus_t) -> Result<()> {
    match status {
        sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS => Ok(()),
        other => Err(cudnn_error(op, step, key, other)),
    }
}

/// A CUDA driver error (allocation, copy) as a candle error with context.
fn driver_error(
    op: &str,
    step: &str,
    key: &Key,
) -> impl Fn(cudarc::driver::DriverError) -> candle_core::Error {
    let context = format!("{op}: {step} failed for {key}");
    move |e| candle_core::Error::Msg(format!("{context}: {e:?}")).bt()
}

fn dims_i32(d: [usize; 4]) -> [c_int; 4] {
    // Key::new checked every dimension against c_int::MAX.
    d.map(|v| v as c_int)
}

/// An owned cuDNN handle. Teardown errors are ignored: it is dropped at thread exit, possibly
/// after the CUDA context has begun shutting down, where there is nothing left to report to.
struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cudnnCreate and is destroyed exactly once.
        unsafe {
            sys::cudnnDestroy(self.0);
        }
    }
}

/// An owned tensor descriptor (dense NCHW fp32).
struct TensorDesc(sys::cudnnTensorDescriptor_t);

impl TensorDesc {
    fn nchw(dims: [usize; 4]) -> std::result::Result<Self, sys::cudnnStatus_t> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; the descriptor is owned by the returned value.
        unsafe { status(sys::cudnnCreateTensorDescriptor(&mut raw))? };
        let desc = Self(raw);
        let [n, c, h, w] = dims_i32(dims);
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(sys::cudnnSetTensor4dDescriptor(
                desc.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                n,
                c,
                h,
                w,
            ))?
        };
        Ok(desc)
    }
}

impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateTensorDescriptor, destroyed once.
        unsafe {
            sys::cudnnDestroyTensorDescriptor(self.0);
        }
    }
}

/// An owned filter descriptor (`[O, C, kh, kw]`, fp32).
struct FilterDesc(sys::cudnnFilterDescriptor_t);

impl FilterDesc {
    fn new(dims: [usize; 4]) -> std::result::Result<Self, sys::cudnnStatus_t> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; the descriptor is owned by the returned value.
        unsafe { status(sys::cudnnCreateFilterDescriptor(&mut raw))? };
        let desc = Self(raw);
        let [o, c, h, w] = dims_i32(dims);
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(sys::cudnnSetFilter4dDescriptor(
                desc.0,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                o,
                c,
                h,
                w,
            ))?
        };
        Ok(desc)
    }
}

impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateFilterDescriptor, destroyed once.
        unsafe {
            sys::cudnnDestroyFilterDescriptor(self.0);
        }
    }
}

/// An owned convolution descriptor (cross-correlation, as PyTorch's conv2d, fp32 accumulation).
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);

impl ConvDesc {
    fn new(
        stride: usize,
        pad: usize,
        math: sys::cudnnMathType_t,
    ) -> std::result::Result<Self, sys::cudnnStatus_t> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; the descriptor is owned by the returned value.
        unsafe { status(sys::cudnnCreateConvolutionDescriptor(&mut raw))? };
        let desc = Self(raw);
        let (s, p) = (stride as c_int, pad as c_int);
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(sys::cudnnSetConvolution2dDescriptor(
                desc.0,
                p,
                p,
                s,
                s,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            ))?;
        }
        desc.set_math(math)?;
        Ok(desc)
    }

    fn set_math(&self, math: sys::cudnnMathType_t) -> std::result::Result<(), sys::cudnnStatus_t> {
        // SAFETY: `self.0` is a live descriptor.
        unsafe { status(sys::cudnnSetConvolutionMathType(self.0, math)) }
    }
}

impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateConvolutionDescriptor, destroyed once.
        unsafe {
            sys::cudnnDestroyConvolutionDescriptor(self.0);
        }
    }
}

/// An owned ReLU activation descriptor.
struct ReluDesc(sys::cudnnActivationDescriptor_t);

impl ReluDesc {
    fn new() -> std::result::Result<Self, sys::cudnnStatus_t> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; the descriptor is owned by the returned value.
        unsafe { status(sys::cudnnCreateActivationDescriptor(&mut raw))? };
        let desc = Self(raw);
        // NOT_PROPAGATE_NAN maps NaN to 0 like the CPU path's `if v > 0 { v } else { 0 }`.
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(sys::cudnnSetActivationDescriptor(
                desc.0,
                sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU,
                sys::cudnnNanPropagation_t::CUDNN_NOT_PROPAGATE_NAN,
                0.0,
            ))?;
        }
        Ok(desc)
    }
}

impl Drop for ReluDesc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreateActivationDescriptor, destroyed once.
        unsafe {
            sys::cudnnDestroyActivationDescriptor(self.0);
        }
    }
}

fn status(s: sys::cudnnStatus_t) -> std::result::Result<(), sys::cudnnStatus_t> {
    match s {
        sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS => Ok(()),
        other => Err(other),
    }
}

/// The fields shared by cuDNN's three `*AlgoPerf_t` result structs.
trait Perf: Copy {
    type Algo: Copy + fmt::Debug;
    fn algo(&self) -> Self::Algo;
    fn ok(&self) -> bool;
    fn time(&self) -> f32;
    fn memory(&self) -> usize;
    fn deterministic(&self) -> bool;
    fn math(&self) -> sys::cudnnMathType_t;
}

macro_rules! perf {
    ($perf:ty, $algo:ty) => {
        impl Perf for $perf {
            type Algo = $algo;
            fn algo(&self) -> $algo {
                self.algo
            }
            fn ok(&self) -> bool {
                self.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
            }
            fn time(&self) -> f32 {
                self.time
            }
            fn memory(&self) -> usize {
                self.memory
            }
            fn deterministic(&self) -> bool {
                self.determinism == sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC
            }
            fn math(&self) -> sys::cudnnMathType_t {
                self.mathType
            }
        }
    };
}

perf!(
    sys::cudnnConvolutionFwdAlgoPerf_t,
    sys::cudnnConvolutionFwdAlgo_t
);
perf!(
    sys::cudnnConvolutionBwdDataAlgoPerf_t,
    sys::cudnnConvolutionBwdDataAlgo_t
);
perf!(
    sys::cudnnConvolutionBwdFilterAlgoPerf_t,
    sys::cudnnConvolutionBwdFilterAlgo_t
);

/// Whether a result's math type is allowed: without TF32 only plain FMA kernels (tensor-core
/// results are skipped); never the fp16 down-conversion of TENSOR_OP_MATH_ALLOW_CONVERSION.
fn math_allowed(math: sys::cudnnMathType_t, tf32: bool) -> bool {
    use sys::cudnnMathType_t as M;
    match math {
        M::CUDNN_FMA_MATH | M::CUDNN_DEFAULT_MATH => true,
        M::CUDNN_TENSOR_OP_MATH => tf32,
        M::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION => false,
    }
}

/// The math type a convolution descriptor starts with (see the module documentation).
fn requested_math(tf32: bool) -> sys::cudnnMathType_t {
    if tf32 {
        sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
    } else {
        sys::cudnnMathType_t::CUDNN_FMA_MATH
    }
}

/// Picks from timed results (sorted fastest first by cuDNN): the fastest usable one, or a
/// deterministic one within [`DETERMINISTIC_SLACK`] of it.
fn pick_timed<P: Perf>(results: &[P], tf32: bool, workspace: usize) -> Option<P> {
    let usable: Vec<P> = results
        .iter()
        .copied()
        .filter(|p| p.ok() && p.memory() <= workspace && math_allowed(p.math(), tf32))
        .collect();
    let fastest = *usable.first()?;
    let deterministic = usable
        .iter()
        .find(|p| p.deterministic() && p.time() <= fastest.time() * DETERMINISTIC_SLACK);
    Some(*deterministic.unwrap_or(&fastest))
}

/// How an algorithm was chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// Timed by `cudnnFind*AlgorithmEx` (milliseconds of the timing run).
    Timed(f32),
    /// First fitting algorithm of the `cudnnGet*_v7` heuristics (timing failed).
    Heuristic,
}

/// An algorithm chosen for one direction of one plan.
#[derive(Debug, Clone, Copy)]
struct Choice<A> {
    algo: A,
    math: sys::cudnnMathType_t,
    workspace: usize,
    deterministic: bool,
    source: Source,
}

impl<A: fmt::Debug> fmt::Display for Choice<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algo = format!("{:?}", self.algo);
        let algo = algo
            .trim_start_matches("CUDNN_CONVOLUTION_FWD_ALGO_")
            .trim_start_matches("CUDNN_CONVOLUTION_BWD_DATA_ALGO_")
            .trim_start_matches("CUDNN_CONVOLUTION_BWD_FILTER_ALGO_");
        let math = format!("{:?}", self.math);
        write!(
            f,
            "{algo} ({}, {}, workspace {} B, ",
            math.trim_start_matches("CUDNN_"),
            if self.deterministic {
                "deterministic"
            } else {
                "non-deterministic"
            },
            self.workspace
        )?;
        match self.source {
            Source::Timed(ms) => write!(f, "timed {ms:.3} ms)"),
            Source::Heuristic => write!(f, "heuristic)"),
        }
    }
}

/// Descriptors and chosen algorithms of one convolution geometry.
struct Plan {
    x: TensorDesc,
    y: TensorDesc,
    bias: TensorDesc,
    w: FilterDesc,
    /// One convolution descriptor per direction, because each runs with its own math type.
    conv_fwd: ConvDesc,
    conv_bwd_data: ConvDesc,
    conv_bwd_filter: ConvDesc,
    relu: ReluDesc,
    fwd: Option<Choice<sys::cudnnConvolutionFwdAlgo_t>>,
    bwd_data: Option<Choice<sys::cudnnConvolutionBwdDataAlgo_t>>,
    bwd_filter: Option<Choice<sys::cudnnConvolutionBwdFilterAlgo_t>>,
    /// Cleared if cuDNN refuses the fused convolution + bias + ReLU call for this geometry.
    fused_relu: bool,
    /// Why it was refused (for [`cudnn_plans`]).
    fused_refusal: Option<sys::cudnnStatus_t>,
}

impl Plan {
    fn new(key: &Key) -> std::result::Result<Self, sys::cudnnStatus_t> {
        let math = requested_math(key.tf32);
        Ok(Self {
            x: TensorDesc::nchw([key.n, key.c, key.h, key.w])?,
            y: TensorDesc::nchw(key.y_dims())?,
            bias: TensorDesc::nchw([1, key.o, 1, 1])?,
            w: FilterDesc::new([key.o, key.c, key.kh, key.kw])?,
            conv_fwd: ConvDesc::new(key.stride, key.pad, math)?,
            conv_bwd_data: ConvDesc::new(key.stride, key.pad, math)?,
            conv_bwd_filter: ConvDesc::new(key.stride, key.pad, math)?,
            relu: ReluDesc::new()?,
            fwd: None,
            bwd_data: None,
            bwd_filter: None,
            fused_relu: true,
            fused_refusal: None,
        })
    }
}

/// Everything cached for one device on one thread. Field order is drop order: descriptors and
/// workspace before the handle, the handle before the stream it is bound to.
struct DeviceState {
    plans: HashMap<Key, Plan>,
    workspace: Option<CudaSlice<u8>>,
    /// The fused call's `z` (read as `y`-shaped, all zeros, scaled by 0): one buffer for all
    /// plans, grown to the largest output. A buffer of its own rather than `z = y` (PyTorch's
    /// choice): y is uninitialised, and 0 * NaN would be NaN if cuDNN reads z. One per plan
    /// would hold a dead copy of every ReLU layer's output size (hundreds of MB at batch 128).
    zeros: Option<CudaSlice<f32>>,
    handle: Handle,
    stream: Arc<CudaStream>,
}

impl DeviceState {
    fn new(dev: &CudaDevice) -> Result<Self> {
        let stream = dev.cuda_stream();
        stream.context().bind_to_thread().map_err(|e| {
            candle_core::Error::Msg(format!("cuDNN: binding the CUDA context: {e:?}"))
        })?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: out-pointer to a local; ownership moves into `Handle` right after.
        let created = unsafe { sys::cudnnCreate(&mut raw) };
        if created != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            bail!("cuDNN: cudnnCreate failed: {created:?} (is libcudnn.so.9 installed?)")
        }
        let handle = Handle(raw);
        // SAFETY: both the handle and candle's stream are live; the stream outlives the handle
        // (field order above).
        let bound =
            unsafe { sys::cudnnSetStream(handle.0, stream.cu_stream() as sys::cudaStream_t) };
        if bound != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            bail!("cuDNN: cudnnSetStream failed: {bound:?}")
        }
        Ok(Self {
            plans: HashMap::new(),
            workspace: None,
            zeros: None,
            handle,
            stream,
        })
    }
}

/// What a [`DeviceState`] is cached by: the CUDA context and stream (as addresses) of a candle
/// device. Not candle's `DeviceId`, which is new for every `Device::new_cuda(0)` although all of
/// them share the device's primary context and the per-thread stream: keyed by id, every run
/// that opens the device again on the same thread would add a handle, plans, a workspace and a
/// zero buffer that live until the thread ends.
type StateKey = (usize, usize);

thread_local! {
    static STATE: RefCell<HashMap<StateKey, DeviceState>> = RefCell::new(HashMap::new());
}

/// Runs `f` on this thread's state for `dev`, creating it on first use.
fn with_state<R>(dev: &CudaDevice, f: impl FnOnce(&mut DeviceState) -> Result<R>) -> Result<R> {
    let stream = dev.cuda_stream();
    let key = (
        stream.context().cu_ctx() as usize,
        stream.cu_stream() as usize,
    );
    STATE.with(|cell| {
        let mut map = cell.borrow_mut();
        let state = match map.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => v.insert(DeviceState::new(dev)?),
        };
        // cuDNN works on the calling thread's current context.
        state.stream.context().bind_to_thread().map_err(|e| {
            candle_core::Error::Msg(format!("cuDNN: binding the CUDA context: {e:?}"))
        })?;
        f(state)
    })
}

/// Number of convolution geometries (plans) cached on this thread, over all devices.
pub fn cudnn_cache_len() -> usize {
    STATE.with(|cell| cell.borrow().values().map(|s| s.plans.len()).sum())
}

/// One line per convolution geometry cached on this thread: its shape and the algorithms chosen
/// so far (forward, backward data, backward filter), e.g. to print next to a benchmark.
pub fn cudnn_plans() -> Vec<String> {
    STATE.with(|cell| {
        let map = cell.borrow();
        let mut lines: Vec<String> = map
            .values()
            .flat_map(|s| s.plans.iter())
            .map(|(key, plan)| {
                let show = |c: Option<String>| c.unwrap_or_else(|| "not used yet".to_string());
                format!(
                    "{key}: forward {}{}; backward data {}; backward filter {}",
                    show(plan.fwd.map(|c| c.to_string())),
                    plan.fused_refusal
                        .map(|s| format!(" (ReLU not fused: {s:?})"))
                        .unwrap_or_default(),
                    show(plan.bwd_data.map(|c| c.to_string())),
                    show(plan.bwd_filter.map(|c| c.to_string())),
                )
            })
            .collect();
        lines.sort();
        lines
    })
}

/// The plan for `key`, created on first use.
fn plan<'a>(plans: &'a mut HashMap<Key, Plan>, key: &Key, op: &str) -> Result<&'a mut Plan> {
    match plans.entry(*key) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(v) => {
            let plan =
                Plan::new(key).map_err(|s| cudnn_error(op, "creating descriptors", key, s))?;
            Ok(v.insert(plan))
        }
    }
}

/// Grows the shared workspace to at least `bytes`.
fn ensure_workspace(
    workspace: &mut Option<CudaSlice<u8>>,
    stream: &Arc<CudaStream>,
    bytes: usize,
    op: &str,
    key: &Key,
) -> Result<()> {
    if bytes > workspace.as_ref().map_or(0, |w| w.len()) {
        // Free the old buffer first so the stream-ordered pool can reuse its memory.
        *workspace = None;
        // SAFETY: a workspace is scratch memory; cuDNN never reads what it did not write.
        let fresh = unsafe { stream.alloc::<u8>(bytes) }.map_err(driver_error(
            op,
            "allocating the cuDNN workspace",
            key,
        ))?;
        *workspace = Some(fresh);
    }
    Ok(())
}

/// The device pointer of an optional buffer (null when absent), with its use-tracking guard.
fn raw_mut<'a>(
    buf: &'a mut Option<CudaSlice<u8>>,
    stream: &'a CudaStream,
) -> (*mut c_void, usize, Option<cudarc::driver::SyncOnDrop<'a>>) {
    match buf.as_mut() {
        Some(b) => {
            let len = b.len();
            let (ptr, guard) = b.device_ptr_mut(stream);
            (ptr as *mut c_void, len, Some(guard))
        }
        None => (std::ptr::null_mut(), 0, None),
    }
}

/// Chooses an algorithm for one direction: the largest heuristic workspace that fits the limit
/// sizes a temporary buffer, `find` times the algorithms on it, [`pick_timed`] chooses.
fn choose<P: Perf>(
    stream: &Arc<CudaStream>,
    tf32: bool,
    max_count: impl FnOnce(&mut c_int) -> sys::cudnnStatus_t,
    heuristic: impl FnOnce(c_int, &mut c_int, *mut P) -> sys::cudnnStatus_t,
    find: impl FnOnce(c_int, &mut c_int, *mut P, *mut c_void, usize) -> sys::cudnnStatus_t,
    (op, step, key): (&str, &str, &Key),
) -> Result<(P, Source)> {
    let mut count: c_int = 0;
    check(
        op,
        &format!("{step}: algorithm count"),
        key,
        max_count(&mut count),
    )?;
    let capacity = count.max(1) as usize;
    // SAFETY: the perf structs are plain C data (enums whose zero value is valid, floats,
    // integers); cuDNN overwrites the first `returned` entries.
    let zeroed: P = unsafe { std::mem::zeroed() };
    let mut heuristics = vec![zeroed; capacity];
    let mut returned: c_int = 0;
    check(
        op,
        &format!("{step}: heuristics"),
        key,
        heuristic(capacity as c_int, &mut returned, heuristics.as_mut_ptr()),
    )?;
    heuristics.truncate(returned.max(0) as usize);
    let find_bytes = heuristics
        .iter()
        .filter(|p| p.ok() && p.memory() <= WORKSPACE_LIMIT && math_allowed(p.math(), tf32))
        .map(|p| p.memory())
        .max()
        .unwrap_or(0);

    let mut timed = if find_bytes == 0 {
        None
    } else {
        // SAFETY: scratch memory, only written by cuDNN.
        unsafe { stream.alloc::<u8>(find_bytes) }.ok()
    };
    if find_bytes == 0 || timed.is_some() {
        let (ws, ws_len, guard) = raw_mut(&mut timed, stream);
        let mut results = vec![zeroed; capacity];
        let mut returned: c_int = 0;
        let found = find(
            capacity as c_int,
            &mut returned,
            results.as_mut_ptr(),
            ws,
            ws_len,
        );
        drop(guard);
        if found == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            results.truncate(returned.max(0) as usize);
            if let Some(p) = pick_timed(&results, tf32, ws_len) {
                return Ok((p, Source::Timed(p.time())));
            }
        }
    }
    // Timing was impossible (no memory for its workspace, or cuDNN refused): fall back to the
    // heuristics' order, which is cuDNN's own estimate of speed.
    heuristics
        .iter()
        .copied()
        .find(|p| p.ok() && p.memory() <= WORKSPACE_LIMIT && math_allowed(p.math(), tf32))
        .map(|p| (p, Source::Heuristic))
        .ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "{op}: cuDNN has no usable {step} algorithm for {key} within a workspace of \
                 {WORKSPACE_LIMIT} B"
            ))
            .bt()
        })
}

/// Turns a picked result into a [`Choice`]: the direction's descriptor gets the result's math
/// type (only with TF32; without it the descriptor stays FMA-only) and the workspace size is
/// asked for that exact configuration.
fn settle<P: Perf>(
    conv: &ConvDesc,
    (picked, source): (P, Source),
    tf32: bool,
    workspace_size: impl FnOnce(P::Algo, &mut usize) -> sys::cudnnStatus_t,
    (op, step, key): (&str, &str, &Key),
) -> Result<Choice<P::Algo>> {
    let math = if tf32 {
        picked.math()
    } else {
        sys::cudnnMathType_t::CUDNN_FMA_MATH
    };
    conv.set_math(math)
        .map_err(|s| cudnn_error(op, &format!("{step}: math type"), key, s))?;
    let mut bytes = 0usize;
    check(
        op,
        &format!("{step}: workspace size"),
        key,
        workspace_size(picked.algo(), &mut bytes),
    )?;
    Ok(Choice {
        algo: picked.algo(),
        math,
        workspace: bytes.max(picked.memory()),
        deterministic: picked.deterministic(),
        source,
    })
}

/// A tensor argument's f32 data: a view of its storage, or an aligned copy of it.
enum Arg<'a> {
    View(CudaView<'a, f32>),
    Copy(CudaSlice<f32>),
}

impl Arg<'_> {
    /// The device pointer, with its use-tracking guard (see [`DevicePtr::device_ptr`]).
    fn ptr<'s>(&'s self, stream: &'s CudaStream) -> (u64, cudarc::driver::SyncOnDrop<'s>) {
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
fn input<'a>(s: &'a CudaStorage, l: &Layout, op: &str, what: &str) -> Result<Arg<'a>> {
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

const ONE: f32 = 1.0;
const ZERO: f32 = 0.0;

fn scalar(v: &f32) -> *const c_void {
    v as *const f32 as *const c_void
}

/// Empty result (cuDNN rejects zero-sized descriptors): zeros, as sums over nothing.
fn zeros(dev: &CudaDevice, len: usize, shape: Shape) -> Result<(CudaStorage, Shape)> {
    let data = dev.alloc_zeros::<f32>(len)?;
    Ok((CudaStorage::wrap_cuda_slice(data, dev.clone()), shape))
}

/// Forward convolution with bias (and ReLU when `relu`), same contract as the CPU `Conv2dOp`:
/// `x [N,C,H,W]`, `w [O,C,kh,kw]`, `b [O]`, all f32 and contiguous -> `[N,O,Ho,Wo]`.
pub(crate) fn conv_forward(
    stride: usize,
    pad: usize,
    relu: bool,
    (xs, xl): (&CudaStorage, &Layout),
    (ws, wl): (&CudaStorage, &Layout),
    (bs, bl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "conv2d";
    let key = Key::new(OP, xl, wl, stride, pad)?;
    if bl.shape().dims() != [key.o] {
        bail!("{OP}: bias shape {:?}, expected [{}]", bl.shape(), key.o)
    }
    let x = input(xs, xl, OP, "input")?;
    let w = input(ws, wl, OP, "weight")?;
    let b = input(bs, bl, OP, "bias")?;
    let dev = &xs.device;
    let shape = Shape::from_dims(&key.y_dims());
    if key.y_len() == 0 {
        return zeros(dev, key.y_len(), shape);
    }
    key.check_kernel(OP)?;
    let y = with_state(dev, |state| {
        let DeviceState {
            plans,
            workspace,
            zeros: zero_z,
            handle,
            stream,
        } = state;
        let stream: &Arc<CudaStream> = stream;
        let h = handle.0;
        let plan = plan(plans, &key, OP)?;
        // SAFETY: every path below writes all of y without reading it (beta = 0, or the fused
        // call, whose z is the separate, shared zero buffer).
        let mut y = unsafe { dev.alloc::<f32>(key.y_len())? };
        let (xp, _gx) = x.ptr(stream);
        let (wp, _gw) = w.ptr(stream);
        let (bp, _gb) = b.ptr(stream);
        let (xp, wp, bp) = (
            xp as *const c_void,
            wp as *const c_void,
            bp as *const c_void,
        );

        if plan.fwd.is_none() {
            let picked = {
                let (yp, _gy) = y.device_ptr_mut(stream);
                let yp = yp as *mut c_void;
                let p = &*plan;
                choose::<sys::cudnnConvolutionFwdAlgoPerf_t>(
                    stream,
                    key.tf32,
                    // SAFETY (all three closures): live handle and descriptors of this plan;
                    // x, w, y are device buffers of the described shapes; the perf array holds
                    // `n` entries; the workspace pointer and size come from one live buffer.
                    |count| unsafe { sys::cudnnGetConvolutionForwardAlgorithmMaxCount(h, count) },
                    |n, ret, perf| unsafe {
                        sys::cudnnGetConvolutionForwardAlgorithm_v7(
                            h,
                            p.x.0,
                            p.w.0,
                            p.conv_fwd.0,
                            p.y.0,
                            n,
                            ret,
                            perf,
                        )
                    },
                    |n, ret, perf, ws, ws_len| unsafe {
                        sys::cudnnFindConvolutionForwardAlgorithmEx(
                            h,
                            p.x.0,
                            xp,
                            p.w.0,
                            wp,
                            p.conv_fwd.0,
                            p.y.0,
                            yp,
                            n,
                            ret,
                            perf,
                            ws,
                            ws_len,
                        )
                    },
                    (OP, "forward", &key),
                )?
            };
            let p = &*plan;
            let choice = settle(
                &p.conv_fwd,
                picked,
                key.tf32,
                // SAFETY: live handle and descriptors of this plan.
                |algo, bytes| unsafe {
                    sys::cudnnGetConvolutionForwardWorkspaceSize(
                        h,
                        p.x.0,
                        p.w.0,
                        p.conv_fwd.0,
                        p.y.0,
                        algo,
                        bytes,
                    )
                },
                (OP, "forward", &key),
            )?;
            plan.fwd = Some(choice);
        }
        let choice = plan.fwd.expect("chosen above");
        ensure_workspace(workspace, stream, choice.workspace, OP, &key)?;
        let (wsp, ws_len, _gws) = raw_mut(workspace, stream);
        {
            let (yp, _gy) = y.device_ptr_mut(stream);
            let yp = yp as *mut c_void;
            let mut done = false;
            if relu && plan.fused_relu {
                if zero_z.as_ref().map_or(0, |z| z.len()) < key.y_len() {
                    // Stream-ordered: the old buffer is freed after the calls that read it.
                    *zero_z = None;
                    *zero_z = Some(
                        stream
                            .alloc_zeros::<f32>(key.y_len())
                            .map_err(driver_error(OP, "allocating the zero z", &key))?,
                    );
                }
                let z = zero_z.as_ref().expect("allocated above");
                let (zp, _gz) = z.device_ptr(stream);
                // SAFETY: descriptors match the buffers (x, w, b, y and z of this plan's
                // shapes); alpha2 = 0 with an all-zero z; the workspace holds at least
                // `choice.workspace` bytes.
                let s = unsafe {
                    sys::cudnnConvolutionBiasActivationForward(
                        h,
                        scalar(&ONE),
                        plan.x.0,
                        xp,
                        plan.w.0,
                        wp,
                        plan.conv_fwd.0,
                        choice.algo,
                        wsp,
                        ws_len,
                        scalar(&ZERO),
                        plan.y.0,
                        zp as *const c_void,
                        plan.bias.0,
                        bp,
                        plan.relu.0,
                        plan.y.0,
                        yp,
                    )
                };
                if s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
                    done = true;
                } else {
                    // cuDNN documents NOT_SUPPORTED for algorithm/activation combinations it
                    // cannot fuse. Any refusal falls back to the three calls below, which
                    // report a genuine problem themselves; remembered, so later calls of this
                    // shape skip the retry.
                    drop(_gz);
                    plan.fused_relu = false;
                    plan.fused_refusal = Some(s);
                }
            }
            if !done {
                // SAFETY: as above; beta = 0, so y is written without being read.
                let s = unsafe {
                    sys::cudnnConvolutionForward(
                        h,
                        scalar(&ONE),
                        plan.x.0,
                        xp,
                        plan.w.0,
                        wp,
                        plan.conv_fwd.0,
                        choice.algo,
                        wsp,
                        ws_len,
                        scalar(&ZERO),
                        plan.y.0,
                        yp,
                    )
                };
                check(OP, "forward", &key, s)?;
                // SAFETY: bias [1,O,1,1] broadcast-added onto y [N,O,Ho,Wo]: y = 1 * b + 1 * y.
                let s = unsafe {
                    sys::cudnnAddTensor(
                        h,
                        scalar(&ONE),
                        plan.bias.0,
                        bp,
                        scalar(&ONE),
                        plan.y.0,
                        yp,
                    )
                };
                check(OP, "bias", &key, s)?;
                if relu {
                    // SAFETY: in place (same descriptor and pointer), which cuDNN allows.
                    let s = unsafe {
                        sys::cudnnActivationForward(
                            h,
                            plan.relu.0,
                            scalar(&ONE),
                            plan.y.0,
                            yp,
                            scalar(&ZERO),
                            plan.y.0,
                            yp,
                        )
                    };
                    check(OP, "ReLU", &key, s)?;
                }
            }
        }
        Ok(y)
    })?;
    Ok((CudaStorage::wrap_cuda_slice(y, dev.clone()), shape))
}

/// `[dx (if input_grad) ; dw ; db]` flattened, same contract as the CPU `Conv2dBackwardOp`:
/// `x [N,C,H,W]`, `w [O,C,kh,kw]`, `dy [N,O,Ho,Wo]` (already ReLU-masked), f32, contiguous.
pub(crate) fn conv_backward(
    stride: usize,
    pad: usize,
    input_grad: bool,
    (xs, xl): (&CudaStorage, &Layout),
    (ws, wl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "conv2d backward";
    let key = Key::new(OP, xl, wl, stride, pad)?;
    if gl.shape().dims() != key.y_dims() {
        bail!(
            "{OP}: gradient shape {:?}, expected {:?}",
            gl.shape(),
            key.y_dims()
        )
    }
    let x = input(xs, xl, OP, "input")?;
    let w = input(ws, wl, OP, "weight")?;
    let dy = input(gs, gl, OP, "output gradient")?;
    let dev = &xs.device;
    let nx = if input_grad { key.x_len() } else { 0 };
    let (nw, nb) = (key.w_len(), key.o);
    let total = nx + nw + nb;
    let shape = Shape::from(total);
    if key.y_len() == 0 {
        return zeros(dev, total, shape);
    }
    key.check_kernel(OP)?;
    let f32_bytes = std::mem::size_of::<f32>();
    let out = with_state(dev, |state| {
        let DeviceState {
            plans,
            workspace,
            handle,
            stream,
            ..
        } = state;
        let stream: &Arc<CudaStream> = stream;
        let h = handle.0;
        let plan = plan(plans, &key, OP)?;
        // SAFETY: every element is written below: dx, dw, db by cuDNN with beta = 0 (never
        // read), or dw and db copied in from `scratch`.
        let mut out = unsafe { dev.alloc::<f32>(total)? };
        let mut scratch: Option<CudaSlice<f32>> = None;
        {
            let (xp, _gx) = x.ptr(stream);
            let (wp, _gw) = w.ptr(stream);
            let (dyp, _gdy) = dy.ptr(stream);
            let (xp, wp, dyp) = (
                xp as *const c_void,
                wp as *const c_void,
                dyp as *const c_void,
            );
            let (outp, _gout) = out.device_ptr_mut(stream);
            let dx_ptr = outp;
            let dw_at = outp + (nx * f32_bytes) as u64;
            let db_at = dw_at + (nw * f32_bytes) as u64;
            // dw and db sit at arbitrary offsets of `out`; if either is misaligned for cuDNN's
            // vectorised kernels they are computed in a fresh buffer and copied over.
            // In that buffer db starts at the aligned offset `nw_padded`.
            let aligned = dw_at % ALIGN as u64 == 0 && db_at % ALIGN as u64 == 0;
            let nw_padded = nw.next_multiple_of(ALIGN / f32_bytes);
            if !aligned {
                // SAFETY: fully written by cuDNN (beta = 0) before being copied.
                scratch = Some(
                    unsafe { stream.alloc::<f32>(nw_padded + nb) }.map_err(driver_error(
                        OP,
                        "allocating the gradient buffer",
                        &key,
                    ))?,
                );
            }
            let (scratch_p, _gsc) = match scratch.as_mut() {
                Some(s) => {
                    let (p, g) = s.device_ptr_mut(stream);
                    (Some(p), Some(g))
                }
                None => (None, None),
            };
            let (dw_ptr, db_ptr) = match scratch_p {
                Some(p) => (p, p + (nw_padded * f32_bytes) as u64),
                None => (dw_at, db_at),
            };
            let (dxp, dwp, dbp) = (
                dx_ptr as *mut c_void,
                dw_ptr as *mut c_void,
                db_ptr as *mut c_void,
            );

            if input_grad && plan.bwd_data.is_none() {
                let p = &*plan;
                let picked = choose::<sys::cudnnConvolutionBwdDataAlgoPerf_t>(
                    stream,
                    key.tf32,
                    // SAFETY (all three closures): live handle and descriptors of this plan;
                    // w, dy, dx are device buffers of the described shapes; the perf array
                    // holds `n` entries; the workspace pointer and size come from one buffer.
                    |count| unsafe {
                        sys::cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, count)
                    },
                    |n, ret, perf| unsafe {
                        sys::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                            h,
                            p.w.0,
                            p.y.0,
                            p.conv_bwd_data.0,
                            p.x.0,
                            n,
                            ret,
                            perf,
                        )
                    },
                    |n, ret, perf, ws, ws_len| unsafe {
                        sys::cudnnFindConvolutionBackwardDataAlgorithmEx(
                            h,
                            p.w.0,
                            wp,
                            p.y.0,
                            dyp,
                            p.conv_bwd_data.0,
                            p.x.0,
                            dxp,
                            n,
                            ret,
                            perf,
                            ws,
                            ws_len,
                        )
                    },
                    (OP, "backward data", &key),
                )?;
                let choice = settle(
                    &p.conv_bwd_data,
                    picked,
                    key.tf32,
                    // SAFETY: live handle and descriptors of this plan.
                    |algo, bytes| unsafe {
                        sys::cudnnGetConvolutionBackwardDataWorkspaceSize(
                            h,
                            p.w.0,
                            p.y.0,
                            p.conv_bwd_data.0,
                            p.x.0,
                            algo,
                            bytes,
                        )
                    },
                    (OP, "backward data", &key),
                )?;
                plan.bwd_data = Some(choice);
            }
            if plan.bwd_filter.is_none() {
                let p = &*plan;
                let picked = choose::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>(
                    stream,
                    key.tf32,
                    // SAFETY (all three closures): live handle and descriptors of this plan;
                    // x, dy, dw are device buffers of the described shapes; the perf array
                    // holds `n` entries; the workspace pointer and size come from one buffer.
                    |count| unsafe {
                        sys::cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, count)
                    },
                    |n, ret, perf| unsafe {
                        sys::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                            h,
                            p.x.0,
                            p.y.0,
                            p.conv_bwd_filter.0,
                            p.w.0,
                            n,
                            ret,
                            perf,
                        )
                    },
                    |n, ret, perf, ws, ws_len| unsafe {
                        sys::cudnnFindConvolutionBackwardFilterAlgorithmEx(
                            h,
                            p.x.0,
                            xp,
                            p.y.0,
                            dyp,
                            p.conv_bwd_filter.0,
                            p.w.0,
                            dwp,
                            n,
                            ret,
                            perf,
                            ws,
                            ws_len,
                        )
                    },
                    (OP, "backward filter", &key),
                )?;
                let choice = settle(
                    &p.conv_bwd_filter,
                    picked,
                    key.tf32,
                    // SAFETY: live handle and descriptors of this plan.
                    |algo, bytes| unsafe {
                        sys::cudnnGetConvolutionBackwardFilterWorkspaceSize(
                            h,
                            p.x.0,
                            p.y.0,
                            p.conv_bwd_filter.0,
                            p.w.0,
                            algo,
                            bytes,
                        )
                    },
                    (OP, "backward filter", &key),
                )?;
                plan.bwd_filter = Some(choice);
            }
            let filter = plan.bwd_filter.expect("chosen above");
            let data = if input_grad { plan.bwd_data } else { None };
            let need = filter.workspace.max(data.map_or(0, |c| c.workspace));
            ensure_workspace(workspace, stream, need, OP, &key)?;
            let (wsp, ws_len, _gws) = raw_mut(workspace, stream);

            if let Some(data) = data {
                // SAFETY: dx [N,C,H,W] at the start of `out`; beta = 0 (dx not read).
                let s = unsafe {
                    sys::cudnnConvolutionBackwardData(
                        h,
                        scalar(&ONE),
                        plan.w.0,
                        wp,
                        plan.y.0,
                        dyp,
                        plan.conv_bwd_data.0,
                        data.algo,
                        wsp,
                        ws_len,
                        scalar(&ZERO),
                        plan.x.0,
                        dxp,
                    )
                };
                check(OP, "backward data", &key, s)?;
            }
            // SAFETY: dw [O,C,kh,kw] at `dwp` (in `out` or `scratch`); beta = 0.
            let s = unsafe {
                sys::cudnnConvolutionBackwardFilter(
                    h,
                    scalar(&ONE),
                    plan.x.0,
                    xp,
                    plan.y.0,
                    dyp,
                    plan.conv_bwd_filter.0,
                    filter.algo,
                    wsp,
                    ws_len,
                    scalar(&ZERO),
                    plan.w.0,
                    dwp,
                )
            };
            check(OP, "backward filter", &key, s)?;
            // SAFETY: db [1,O,1,1] right after dw; the sum of dy over N, Ho, Wo; beta = 0.
            let s = unsafe {
                sys::cudnnConvolutionBackwardBias(
                    h,
                    scalar(&ONE),
                    plan.y.0,
                    dyp,
                    scalar(&ZERO),
                    plan.bias.0,
                    dbp,
                )
            };
            check(OP, "backward bias", &key, s)?;
            if scratch_p.is_some() {
                for (dst, src, len) in [(dw_at, dw_ptr, nw), (db_at, db_ptr, nb)] {
                    // SAFETY: both ranges hold `len` f32 inside live buffers (`out`, `scratch`);
                    // same stream, so the copy runs after the kernels that wrote `scratch`.
                    unsafe {
                        cudarc::driver::result::memcpy_dtod_async(
                            dst,
                            src,
                            len * f32_bytes,
                            stream.cu_stream(),
                        )
                    }
                    .map_err(driver_error(
                        OP,
                        "copying the weight gradient",
                        &key,
                    ))?;
                }
            }
        }
        // Freed in stream order, after the copy above.
        drop(scratch);
        Ok(out)
    })?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), shape))
}
