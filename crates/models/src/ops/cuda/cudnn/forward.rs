//! The forward convolution on cuDNN: bias, and ReLU when asked, fused into one call where cuDNN
//! accepts it (see the `cudnn` module documentation, Fusion).
//!
//! One call in order: the arguments checked ([`conv_forward`]); the plan, the output and the
//! pointers on this thread's state ([`forward_on`]); the algorithm, chosen on the plan's first
//! use ([`choose_forward`]); then the fused call ([`fused_forward`]), or the convolution, bias
//! and ReLU as separate calls ([`unfused_forward`]) where there is no ReLU or cuDNN refused.

use std::ffi::c_void;
use std::sync::Arc;

use candle_core::cuda::CudaDevice;
use candle_core::{bail, CudaStorage, Layout, Result, Shape};
use cudarc::cudnn::sys::cudnnHandle_t;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use super::algo::{choose, settle, Choice};
use super::ffi::{self, Code, STATUS_SUCCESS};
use super::state::{plan, with_state, DeviceState, Plan};
use super::workspace::{ensure_workspace, raw_mut};
use super::{check, driver_error, input, scalar, zeros, Arg, Key, ONE, ZERO};
use crate::ops::cudnn_codes::Direction;

const OP: &str = "conv2d";

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
        forward_on(state, dev, &key, relu, [&x, &w, &b])
    })?;
    Ok((CudaStorage::wrap_cuda_slice(y, dev.clone()), shape))
}

/// The arguments of one forward call that are not the plan's descriptors: the handle, the data
/// pointers, the chosen algorithm and the workspace.
struct Call {
    h: cudnnHandle_t,
    x: *const c_void,
    w: *const c_void,
    b: *const c_void,
    y: *mut c_void,
    algo: Code,
    workspace: *mut c_void,
    workspace_len: usize,
}

/// The forward pass of `key` on this thread's cuDNN `state` for `dev`: the plan, the output
/// buffer, the algorithm (chosen on the plan's first use), then the fused call or, without ReLU
/// or where cuDNN refuses it (remembered in the plan), the unfused calls.
fn forward_on(
    state: &mut DeviceState,
    dev: &CudaDevice,
    key: &Key,
    relu: bool,
    [x, w, b]: [&Arg<'_>; 3],
) -> Result<CudaSlice<f32>> {
    let DeviceState {
        plans,
        workspace,
        zeros: zero_z,
        handle,
        stream,
    } = state;
    let stream: &Arc<CudaStream> = stream;
    let h = handle.0;
    let plan = plan(plans, key, OP)?;
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
        plan.fwd = Some(choose_forward(h, stream, plan, key, (xp, wp, &mut y))?);
    }
    let choice = plan.fwd.expect("chosen above");
    ensure_workspace(workspace, stream, choice.workspace, OP, key)?;
    let (wsp, ws_len, _gws) = raw_mut(workspace, stream);
    {
        let (yp, _gy) = y.device_ptr_mut(stream);
        let call = Call {
            h,
            x: xp,
            w: wp,
            b: bp,
            y: yp as *mut c_void,
            algo: choice.algo,
            workspace: wsp,
            workspace_len: ws_len,
        };
        let mut done = false;
        if relu && plan.fused_relu {
            match fused_forward(&call, plan, zero_z, stream, key)? {
                None => done = true,
                Some(refusal) => {
                    // cuDNN documents NOT_SUPPORTED for algorithm/activation combinations it
                    // cannot fuse. Any refusal falls back to the unfused calls, which report a
                    // genuine problem themselves; remembered, so later calls of this shape
                    // skip the retry.
                    plan.fused_relu = false;
                    plan.fused_refusal = Some(refusal);
                }
            }
        }
        if !done {
            unfused_forward(&call, plan, relu, key)?;
        }
    }
    Ok(y)
}

/// The forward algorithm of plan `p`: timed on `x`, `w` and the (uninitialised) output `y`, then
/// settled with its math type and exact workspace size.
fn choose_forward(
    h: cudnnHandle_t,
    stream: &Arc<CudaStream>,
    p: &Plan,
    key: &Key,
    (xp, wp, y): (*const c_void, *const c_void, &mut CudaSlice<f32>),
) -> Result<Choice> {
    let picked = {
        let (yp, _gy) = y.device_ptr_mut(stream);
        let yp = yp as *mut c_void;
        choose(
            stream,
            Direction::Forward,
            // SAFETY (all three closures): live handle and descriptors of this plan;
            // x, w, y are device buffers of the described shapes; the perf array holds
            // `n` entries; the workspace pointer and size come from one live buffer.
            |count| unsafe { ffi::cudnnGetConvolutionForwardAlgorithmMaxCount(h, count) },
            |n, ret, perf| unsafe {
                ffi::cudnnGetConvolutionForwardAlgorithm_v7(
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
                ffi::cudnnFindConvolutionForwardAlgorithmEx(
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
            (OP, "forward", key),
        )?
    };
    settle(
        &p.conv_fwd,
        picked,
        key.tf32,
        // SAFETY: live handle and descriptors of this plan.
        |algo, bytes| unsafe {
            ffi::cudnnGetConvolutionForwardWorkspaceSize(
                h,
                p.x.0,
                p.w.0,
                p.conv_fwd.0,
                p.y.0,
                algo,
                bytes,
            )
        },
        (OP, "forward", key),
    )
}

/// `y = relu(conv(x, w) + 0 * z + b)` in one `cudnnConvolutionBiasActivationForward` call, `z`
/// the shared zero buffer (grown to `y`'s size first). `None` when it ran; cuDNN's status when
/// it refused.
fn fused_forward(
    call: &Call,
    plan: &Plan,
    zero_z: &mut Option<CudaSlice<f32>>,
    stream: &Arc<CudaStream>,
    key: &Key,
) -> Result<Option<Code>> {
    if zero_z.as_ref().map_or(0, |z| z.len()) < key.y_len() {
        // Stream-ordered: the old buffer is freed after the calls that read it.
        *zero_z = None;
        *zero_z = Some(
            stream
                .alloc_zeros::<f32>(key.y_len())
                .map_err(driver_error(OP, "allocating the zero z", key))?,
        );
    }
    let z = zero_z.as_ref().expect("allocated above");
    let (zp, _gz) = z.device_ptr(stream);
    // SAFETY: descriptors match the buffers (x, w, b, y and z of this plan's shapes); alpha2 =
    // 0 with an all-zero z; the workspace holds at least the chosen algorithm's workspace.
    let s = unsafe {
        ffi::cudnnConvolutionBiasActivationForward(
            call.h,
            scalar(&ONE),
            plan.x.0,
            call.x,
            plan.w.0,
            call.w,
            plan.conv_fwd.0,
            call.algo,
            call.workspace,
            call.workspace_len,
            scalar(&ZERO),
            plan.y.0,
            zp as *const c_void,
            plan.bias.0,
            call.b,
            plan.relu.0,
            plan.y.0,
            call.y,
        )
    };
    Ok((s != STATUS_SUCCESS).then_some(s))
}

/// The convolution with the chosen algorithm, then the bias added (`cudnnAddTensor`), then the
/// ReLU in place when `relu`: three calls, each checked.
fn unfused_forward(call: &Call, plan: &Plan, relu: bool, key: &Key) -> Result<()> {
    // SAFETY: descriptors match the buffers; the workspace holds at least the chosen
    // algorithm's workspace; beta = 0, so y is written without being read.
    let s = unsafe {
        ffi::cudnnConvolutionForward(
            call.h,
            scalar(&ONE),
            plan.x.0,
            call.x,
            plan.w.0,
            call.w,
            plan.conv_fwd.0,
            call.algo,
            call.workspace,
            call.workspace_len,
            scalar(&ZERO),
            plan.y.0,
            call.y,
        )
    };
    check(OP, "forward", key, s)?;
    // SAFETY: bias [1,O,1,1] broadcast-added onto y [N,O,Ho,Wo]: y = 1 * b + 1 * y.
    let s = unsafe {
        ffi::cudnnAddTensor(
            call.h,
            scalar(&ONE),
            plan.bias.0,
            call.b,
            scalar(&ONE),
            plan.y.0,
            call.y,
        )
    };
    check(OP, "bias", key, s)?;
    if relu {
        // SAFETY: in place (same descriptor and pointer), which cuDNN allows.
        let s = unsafe {
            ffi::cudnnActivationForward(
                call.h,
                plan.relu.0,
                scalar(&ONE),
                plan.y.0,
                call.y,
                scalar(&ZERO),
                plan.y.0,
                call.y,
            )
        };
        check(OP, "ReLU", key, s)?;
    }
    Ok(())
}
