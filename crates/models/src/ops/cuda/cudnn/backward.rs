//! The convolution's gradients on cuDNN: input (backward data), weight (backward filter) and
//! bias, written into one output buffer `[dx (if asked); dw; db]`.

use std::ffi::c_void;
use std::sync::Arc;

use candle_core::{bail, CudaStorage, Layout, Result, Shape};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut};

use super::algo::{choose, settle};
use super::ffi;
use super::state::{plan, with_state, DeviceState};
use super::workspace::{ensure_workspace, raw_mut};
use super::{check, driver_error, input, scalar, zeros, Key, ALIGN, ONE, ZERO};
use crate::ops::cudnn_codes::Direction;

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
                let picked = choose(
                    stream,
                    Direction::BackwardData,
                    // SAFETY (all three closures): live handle and descriptors of this plan;
                    // w, dy, dx are device buffers of the described shapes; the perf array
                    // holds `n` entries; the workspace pointer and size come from one buffer.
                    |count| unsafe {
                        ffi::cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, count)
                    },
                    |n, ret, perf| unsafe {
                        ffi::cudnnGetConvolutionBackwardDataAlgorithm_v7(
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
                        ffi::cudnnFindConvolutionBackwardDataAlgorithmEx(
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
                        ffi::cudnnGetConvolutionBackwardDataWorkspaceSize(
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
                let picked = choose(
                    stream,
                    Direction::BackwardFilter,
                    // SAFETY (all three closures): live handle and descriptors of this plan;
                    // x, dy, dw are device buffers of the described shapes; the perf array
                    // holds `n` entries; the workspace pointer and size come from one buffer.
                    |count| unsafe {
                        ffi::cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, count)
                    },
                    |n, ret, perf| unsafe {
                        ffi::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
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
                        ffi::cudnnFindConvolutionBackwardFilterAlgorithmEx(
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
                        ffi::cudnnGetConvolutionBackwardFilterWorkspaceSize(
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
                    ffi::cudnnConvolutionBackwardData(
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
                ffi::cudnnConvolutionBackwardFilter(
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
                ffi::cudnnConvolutionBackwardBias(
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
