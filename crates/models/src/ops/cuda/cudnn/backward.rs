//! The convolution's gradients on cuDNN: input (backward data), weight (backward filter) and
//! bias, written into one output buffer `[dx (if asked); dw; db]`.
//!
//! One call in order: the arguments checked ([`conv_backward`]); the plan, the output and the
//! pointers on this thread's state ([`backward_on`]), with `dw` and `db` staged in a buffer of
//! their own where their offsets are misaligned ([`targets`]); the algorithms, chosen on the
//! plan's first use ([`choose_backward_data`], [`choose_backward_filter`]); the three calls
//! ([`gradients`]); and the staged gradients copied into place ([`copy_staged`]).

use std::ffi::c_void;
use std::sync::Arc;

use candle_core::cuda::CudaDevice;
use candle_core::{bail, CudaStorage, Layout, Result, Shape};
use cudarc::cudnn::sys::cudnnHandle_t;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut, SyncOnDrop};

use super::algo::{choose, settle, Choice};
use super::ffi;
use super::state::{plan, with_state, DeviceState, Plan};
use super::workspace::{ensure_workspace, raw_mut};
use super::{check, driver_error, input, scalar, zeros, Arg, Key, ALIGN, ONE, ZERO};
use crate::ops::cudnn_codes::Direction;

const OP: &str = "conv2d backward";

const F32_BYTES: usize = std::mem::size_of::<f32>();

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
    let lengths = Lengths::new(&key, input_grad);
    let shape = Shape::from(lengths.total());
    if key.y_len() == 0 {
        return zeros(dev, lengths.total(), shape);
    }
    key.check_kernel(OP)?;
    let out = with_state(dev, |state| {
        backward_on(state, dev, &key, lengths, [&x, &w, &dy])
    })?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev.clone()), shape))
}

/// Elements of the three gradients in the output (`dx` is 0 long when not asked for).
#[derive(Clone, Copy)]
struct Lengths {
    input_grad: bool,
    dx: usize,
    dw: usize,
    db: usize,
}

impl Lengths {
    fn new(key: &Key, input_grad: bool) -> Self {
        Self {
            input_grad,
            dx: if input_grad { key.x_len() } else { 0 },
            dw: key.w_len(),
            db: key.o,
        }
    }

    fn total(&self) -> usize {
        self.dx + self.dw + self.db
    }
}

/// Where cuDNN writes each gradient (device addresses): `dx` at the start of the output, `dw`
/// and `db` after it (`dw_at`, `db_at`), or at `dw` and `db` in a staging buffer when
/// `staged`, to be copied to `dw_at` and `db_at` afterwards.
struct Targets {
    dx: u64,
    dw_at: u64,
    db_at: u64,
    dw: u64,
    db: u64,
    staged: bool,
}

/// The arguments of the gradient calls that are not the plan's descriptors: the handle, the
/// data pointers and the workspace.
struct Call {
    h: cudnnHandle_t,
    x: *const c_void,
    w: *const c_void,
    dy: *const c_void,
    dx: *mut c_void,
    dw: *mut c_void,
    db: *mut c_void,
    workspace: *mut c_void,
    workspace_len: usize,
}

/// The gradients of `key` on this thread's cuDNN `state` for `dev`: the plan, the output
/// buffer and where each gradient goes, the algorithms (chosen on the plan's first use), the
/// calls, and the staged gradients copied into place.
fn backward_on(
    state: &mut DeviceState,
    dev: &CudaDevice,
    key: &Key,
    lengths: Lengths,
    [x, w, dy]: [&Arg<'_>; 3],
) -> Result<CudaSlice<f32>> {
    let input_grad = lengths.input_grad;
    let DeviceState {
        plans,
        workspace,
        handle,
        stream,
        ..
    } = state;
    let stream: &Arc<CudaStream> = stream;
    let h = handle.0;
    let plan = plan(plans, key, OP)?;
    // SAFETY: every element is written below: dx, dw, db by cuDNN with beta = 0 (never
    // read), or dw and db copied in from `scratch`.
    let mut out = unsafe { dev.alloc::<f32>(lengths.total())? };
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
        let (at, _gsc) = targets(outp, lengths, &mut scratch, stream, key)?;
        let (dxp, dwp, dbp) = (
            at.dx as *mut c_void,
            at.dw as *mut c_void,
            at.db as *mut c_void,
        );

        if input_grad && plan.bwd_data.is_none() {
            plan.bwd_data = Some(choose_backward_data(h, stream, plan, key, (wp, dyp, dxp))?);
        }
        if plan.bwd_filter.is_none() {
            plan.bwd_filter = Some(choose_backward_filter(
                h,
                stream,
                plan,
                key,
                (xp, dyp, dwp),
            )?);
        }
        let filter = plan.bwd_filter.expect("chosen above");
        let data = if input_grad { plan.bwd_data } else { None };
        let need = filter.workspace.max(data.map_or(0, |c| c.workspace));
        ensure_workspace(workspace, stream, need, OP, key)?;
        let (wsp, ws_len, _gws) = raw_mut(workspace, stream);
        let call = Call {
            h,
            x: xp,
            w: wp,
            dy: dyp,
            dx: dxp,
            dw: dwp,
            db: dbp,
            workspace: wsp,
            workspace_len: ws_len,
        };
        gradients(&call, plan, data, filter, key)?;
        if at.staged {
            copy_staged(&at, lengths, stream, key)?;
        }
    }
    // Freed in stream order, after the copy above.
    drop(scratch);
    Ok(out)
}

/// Where each gradient goes in the output that starts at `outp`. `dw` and `db` sit at
/// arbitrary offsets of it; if either is misaligned for cuDNN's vectorised kernels they are
/// computed in a fresh buffer, allocated here into `scratch`, and copied over afterwards. In
/// that buffer `db` starts at the aligned offset after `dw`. Returns the staging buffer's
/// use-tracking guard with the targets.
fn targets<'a>(
    outp: u64,
    lengths: Lengths,
    scratch: &'a mut Option<CudaSlice<f32>>,
    stream: &'a Arc<CudaStream>,
    key: &Key,
) -> Result<(Targets, Option<SyncOnDrop<'a>>)> {
    let dx_ptr = outp;
    let dw_at = outp + (lengths.dx * F32_BYTES) as u64;
    let db_at = dw_at + (lengths.dw * F32_BYTES) as u64;
    let aligned = dw_at % ALIGN as u64 == 0 && db_at % ALIGN as u64 == 0;
    let nw_padded = lengths.dw.next_multiple_of(ALIGN / F32_BYTES);
    if !aligned {
        // SAFETY: fully written by cuDNN (beta = 0) before being copied.
        *scratch = Some(
            unsafe { stream.alloc::<f32>(nw_padded + lengths.db) }.map_err(driver_error(
                OP,
                "allocating the gradient buffer",
                key,
            ))?,
        );
    }
    let (scratch_p, guard) = match scratch.as_mut() {
        Some(s) => {
            let (p, g) = s.device_ptr_mut(stream);
            (Some(p), Some(g))
        }
        None => (None, None),
    };
    let (dw_ptr, db_ptr) = match scratch_p {
        Some(p) => (p, p + (nw_padded * F32_BYTES) as u64),
        None => (dw_at, db_at),
    };
    let targets = Targets {
        dx: dx_ptr,
        dw_at,
        db_at,
        dw: dw_ptr,
        db: db_ptr,
        staged: scratch_p.is_some(),
    };
    Ok((targets, guard))
}

/// The backward-data algorithm of plan `p`: timed on `w`, `dy` and the (uninitialised) `dx`,
/// then settled with its math type and exact workspace size.
fn choose_backward_data(
    h: cudnnHandle_t,
    stream: &Arc<CudaStream>,
    p: &Plan,
    key: &Key,
    (wp, dyp, dxp): (*const c_void, *const c_void, *mut c_void),
) -> Result<Choice> {
    let picked = choose(
        stream,
        Direction::BackwardData,
        // SAFETY (all three closures): live handle and descriptors of this plan;
        // w, dy, dx are device buffers of the described shapes; the perf array
        // holds `n` entries; the workspace pointer and size come from one buffer.
        |count| unsafe { ffi::cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, count) },
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
        (OP, "backward data", key),
    )?;
    settle(
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
        (OP, "backward data", key),
    )
}

/// The backward-filter algorithm of plan `p`: timed on `x`, `dy` and the (uninitialised) `dw`,
/// then settled with its math type and exact workspace size.
fn choose_backward_filter(
    h: cudnnHandle_t,
    stream: &Arc<CudaStream>,
    p: &Plan,
    key: &Key,
    (xp, dyp, dwp): (*const c_void, *const c_void, *mut c_void),
) -> Result<Choice> {
    let picked = choose(
        stream,
        Direction::BackwardFilter,
        // SAFETY (all three closures): live handle and descriptors of this plan;
        // x, dy, dw are device buffers of the described shapes; the perf array
        // holds `n` entries; the workspace pointer and size come from one buffer.
        |count| unsafe { ffi::cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, count) },
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
        (OP, "backward filter", key),
    )?;
    settle(
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
        (OP, "backward filter", key),
    )
}

/// The gradient calls, each checked: backward data (when `data` was chosen, i.e. `dx` is
/// asked for), backward filter, backward bias.
fn gradients(
    call: &Call,
    plan: &Plan,
    data: Option<Choice>,
    filter: Choice,
    key: &Key,
) -> Result<()> {
    if let Some(data) = data {
        // SAFETY: dx [N,C,H,W] at the start of `out`; beta = 0 (dx not read).
        let s = unsafe {
            ffi::cudnnConvolutionBackwardData(
                call.h,
                scalar(&ONE),
                plan.w.0,
                call.w,
                plan.y.0,
                call.dy,
                plan.conv_bwd_data.0,
                data.algo,
                call.workspace,
                call.workspace_len,
                scalar(&ZERO),
                plan.x.0,
                call.dx,
            )
        };
        check(OP, "backward data", key, s)?;
    }
    // SAFETY: dw [O,C,kh,kw] at `call.dw` (in `out` or `scratch`); beta = 0.
    let s = unsafe {
        ffi::cudnnConvolutionBackwardFilter(
            call.h,
            scalar(&ONE),
            plan.x.0,
            call.x,
            plan.y.0,
            call.dy,
            plan.conv_bwd_filter.0,
            filter.algo,
            call.workspace,
            call.workspace_len,
            scalar(&ZERO),
            plan.w.0,
            call.dw,
        )
    };
    check(OP, "backward filter", key, s)?;
    // SAFETY: db [1,O,1,1] right after dw; the sum of dy over N, Ho, Wo; beta = 0.
    let s = unsafe {
        ffi::cudnnConvolutionBackwardBias(
            call.h,
            scalar(&ONE),
            plan.y.0,
            call.dy,
            scalar(&ZERO),
            plan.bias.0,
            call.db,
        )
    };
    check(OP, "backward bias", key, s)
}

/// Copies the staged `dw` and `db` to their places in the output, on `stream`.
fn copy_staged(at: &Targets, lengths: Lengths, stream: &CudaStream, key: &Key) -> Result<()> {
    for (dst, src, len) in [(at.dw_at, at.dw, lengths.dw), (at.db_at, at.db, lengths.db)] {
        // SAFETY: both ranges hold `len` f32 inside live buffers (`out`, `scratch`); same
        // stream, so the copy runs after the kernels that wrote `scratch`.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst, src, len * F32_BYTES, stream.cu_stream())
        }
        .map_err(driver_error(OP, "copying the weight gradient", key))?;
    }
    Ok(())
}
