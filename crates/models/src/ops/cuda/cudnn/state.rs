//! What the convolutions keep between calls, per thread and CUDA device: the cuDNN handle bound
//! to candle's stream, one [`Plan`] per geometry, the shared workspace and the fused call's zero
//! buffer.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::cuda::CudaDevice;
use candle_core::Result;
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, CudaStream};

use super::algo::{requested_math, Choice};
use super::desc::{ConvDesc, FilterDesc, Handle, ReluDesc, TensorDesc};
use super::ffi::{self, Code, STATUS_SUCCESS};
use super::{cudnn_error, status_text, Key};

/// Descriptors and chosen algorithms of one convolution geometry.
pub(super) struct Plan {
    pub(super) x: TensorDesc,
    pub(super) y: TensorDesc,
    pub(super) bias: TensorDesc,
    pub(super) w: FilterDesc,
    /// One convolution descriptor per direction, because each runs with its own math type.
    pub(super) conv_fwd: ConvDesc,
    pub(super) conv_bwd_data: ConvDesc,
    pub(super) conv_bwd_filter: ConvDesc,
    pub(super) relu: ReluDesc,
    pub(super) fwd: Option<Choice>,
    pub(super) bwd_data: Option<Choice>,
    pub(super) bwd_filter: Option<Choice>,
    /// Cleared if cuDNN refuses the fused convolution + bias + ReLU call for this geometry.
    pub(super) fused_relu: bool,
    /// Why it was refused (for [`cudnn_plans`]).
    pub(super) fused_refusal: Option<Code>,
}

impl Plan {
    fn new(key: &Key) -> std::result::Result<Self, Code> {
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
pub(super) struct DeviceState {
    pub(super) plans: HashMap<Key, Plan>,
    pub(super) workspace: Option<CudaSlice<u8>>,
    /// The fused call's `z` (read as `y`-shaped, all zeros, scaled by 0): one buffer for all
    /// plans, grown to the largest output. A buffer of its own rather than `z = y` (PyTorch's
    /// choice): y is uninitialised, and 0 * NaN would be NaN if cuDNN reads z. One per plan
    /// would hold a dead copy of every ReLU layer's output size (hundreds of MB at batch 128).
    pub(super) zeros: Option<CudaSlice<f32>>,
    pub(super) handle: Handle,
    pub(super) stream: Arc<CudaStream>,
}

impl DeviceState {
    fn new(dev: &CudaDevice) -> Result<Self> {
        let stream = dev.cuda_stream();
        stream.context().bind_to_thread().map_err(|e| {
            candle_core::Error::Msg(format!("cuDNN: binding the CUDA context: {e:?}"))
        })?;
        let handle = Handle::create().map_err(|created| {
            candle_core::Error::Msg(format!(
                "cuDNN: cudnnCreate failed: {} (is libcudnn.so.9 installed, with its \
                 libcudnn_*.so.9 sub-libraries on LD_LIBRARY_PATH?)",
                status_text(created)
            ))
            .bt()
        })?;
        // SAFETY: both the handle and candle's stream are live; the stream outlives the handle
        // (field order above).
        let bound =
            unsafe { ffi::cudnnSetStream(handle.0, stream.cu_stream() as sys::cudaStream_t) };
        if bound != STATUS_SUCCESS {
            return Err(candle_core::Error::Msg(format!(
                "cuDNN: cudnnSetStream failed: {}",
                status_text(bound)
            ))
            .bt());
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
pub(super) fn with_state<R>(
    dev: &CudaDevice,
    f: impl FnOnce(&mut DeviceState) -> Result<R>,
) -> Result<R> {
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
                        .map(|s| format!(" (ReLU not fused: {})", status_text(s)))
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
pub(super) fn plan<'a>(
    plans: &'a mut HashMap<Key, Plan>,
    key: &Key,
    op: &str,
) -> Result<&'a mut Plan> {
    match plans.entry(*key) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(v) => {
            let plan =
                Plan::new(key).map_err(|s| cudnn_error(op, "creating descriptors", key, s))?;
            Ok(v.insert(plan))
        }
    }
}
