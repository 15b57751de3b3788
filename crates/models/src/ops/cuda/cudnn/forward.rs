//! The forward convolution on cuDNN: bias, and ReLU when asked, fused into one call where cuDNN
//! accepts it (see the `cudnn` module documentation, Fusion).

use std::ffi::c_void;
use std::sync::Arc;

use candle_core::{bail, CudaStorage, Layout, Result, Shape};
use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};

use super::algo::{choose, settle};
use super::ffi::{self, STATUS_SUCCESS};
use super::state::{plan, with_state, DeviceState};
use super::workspace::{ensure_workspace, raw_mut};
use super::{check, driver_error, input, scalar, zeros, Key, ONE, ZERO};
use crate::ops::cudnn_codes::Direction;

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
                    ffi::cudnnConvolutionBiasActivationForward(
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
                if s == STATUS_SUCCESS {
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
                    ffi::cudnnConvolutionForward(
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
                    ffi::cudnnAddTensor(
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
                        ffi::cudnnActivationForward(
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
