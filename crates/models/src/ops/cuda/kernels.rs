//! Our own CUDA kernels (`kernels.cu`, compiled to PTX by build.rs): padded max-pool forward and
//! backward, ReLU mask, dropout and the fused SGD step. Each launcher checks its inputs, applies
//! the layouts' start offsets and launches one kernel on candle's stream; the kernels themselves
//! are documented in `kernels.cu`. Buffers a kernel writes are pushed as `&mut`, so that
//! cudarc records the write (with event tracking on, later users on other streams wait for it).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use std::ops::Range;

use crate::ops::ReluBackward;
use candle_core::{bail, CudaStorage, DType, Layout, Result, Shape, WithDType};

/// The PTX of `kernels.cu`; the driver JIT-compiles it for the card on first use.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/allconv_kernels.ptx"));
/// The module name under which candle caches the loaded PTX per device.
const MODULE: &str = "allconv_kernels";
const BLOCK: u32 = 256;

/// One thread per element (the kernels loop with a grid stride, so the cap is only a limit on
/// the number of blocks, not on what gets computed).
fn config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, 1 << 30) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The elements of a contiguous tensor (its start offset applied), or a clear error.
fn view<'a, T: CudaDType>(
    s: &'a CudaStorage,
    l: &Layout,
    op: &str,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: the {what} must be contiguous")
    };
    Ok(slice(s, op, what)?.slice(start..end))
}

fn slice<'a, T: CudaDType>(s: &'a CudaStorage, op: &str, what: &str) -> Result<&'a CudaSlice<T>> {
    match s.as_cuda_slice::<T>() {
        Ok(v) => Ok(v),
        Err(_) => bail!(
            "{op}: the {what} is {:?}, this kernel takes {}",
            s.dtype(),
            std::any::type_name::<T>()
        ),
    }
}

/// Pool geometry with the same checks as the CPU op; `(planes, h, w, out_h, out_w)`.
fn pool_geometry(
    l: &Layout,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<(usize, usize, usize, usize, usize)> {
    let (n, c, h, w) = l.shape().dims4()?;
    if stride == 0 || kernel == 0 || 2 * pad > kernel {
        bail!("max_pool2d: kernel {kernel} stride {stride} pad {pad}: pad must be <= kernel/2")
    }
    if h + 2 * pad < kernel || w + 2 * pad < kernel {
        bail!("max_pool2d: kernel {kernel} pad {pad} does not fit input {h}x{w}")
    }
    // The kernels index within a (padded) plane, and add strides to coordinates, in 32-bit ints.
    let limit = i32::MAX as usize;
    let padded = (h + 2 * pad).checked_mul(w + 2 * pad);
    if padded.is_none_or(|p| p > limit) || h + w + 4 * pad + stride > limit {
        bail!("max_pool2d: input plane {h}x{w} (kernel {kernel}, stride {stride}) too large for the CUDA kernel")
    }
    Ok((
        n * c,
        h,
        w,
        (h + 2 * pad - kernel) / stride + 1,
        (w + 2 * pad - kernel) / stride + 1,
    ))
}

fn f32_only(s: &CudaStorage, op: &str) -> Result<()> {
    if s.dtype() != DType::F32 {
        bail!("{op}: dtype {:?} not supported on CUDA (f32)", s.dtype())
    }
    Ok(())
}

/// Padded max-pool forward, same contract as the CPU `MaxPoolOp` (f32 and f64, as there; f64
/// CUDA tensors reach it only where `max_pool2d` routes them here, which `own_kernel_runs` in
/// `ops/buffers.rs` decides).
pub(crate) fn max_pool_forward(
    kernel: usize,
    stride: usize,
    pad: usize,
    (xs, xl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let geometry = (kernel, stride, pad);
    match xs.dtype() {
        DType::F32 => pool_forward::<f32>("allconv_max_pool_fwd_f32", geometry, (xs, xl)),
        DType::F64 => pool_forward::<f64>("allconv_max_pool_fwd_f64", geometry, (xs, xl)),
        other => bail!("max_pool2d: dtype {other:?} not supported on CUDA (f32, f64)"),
    }
}

fn pool_forward<T: CudaDType + DeviceRepr>(
    name: &str,
    (kernel, stride, pad): (usize, usize, usize),
    (xs, xl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "max_pool2d";
    let (planes, h, w, out_h, out_w) = pool_geometry(xl, kernel, stride, pad)?;
    let (n, c, _, _) = xl.shape().dims4()?;
    let x = view::<T>(xs, xl, OP, "input")?;
    let dev = &xs.device;
    let count = planes * out_h * out_w;
    // SAFETY: the kernel writes every one of the `count` elements.
    let mut y = unsafe { dev.alloc::<T>(count)? };
    if count > 0 {
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        let mut b = func.builder();
        let (planes, dims) = (
            planes as u64,
            [h, w, out_h, out_w, kernel, stride, pad].map(|d| d as i32),
        );
        b.arg(&x).arg(&mut y).arg(&planes);
        for d in &dims {
            b.arg(d);
        }
        // SAFETY: argument types and order match the kernel's signature (`T` is the kernel's
        // element type); `x` holds planes*h*w elements and `y` planes*out_h*out_w.
        unsafe { b.launch(config(count)) }.w()?;
    }
    Ok((
        T::wrap_cuda_slice(y, dev.clone()),
        Shape::from((n, c, out_h, out_w)),
    ))
}

/// Max-pool backward (gradient to the first arg-max), same contract as `MaxPoolBackwardOp`
/// (f32 and f64; `x` and the gradient of one dtype).
pub(crate) fn max_pool_backward(
    kernel: usize,
    stride: usize,
    pad: usize,
    x: (&CudaStorage, &Layout),
    grad: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let geometry = (kernel, stride, pad);
    match x.0.dtype() {
        DType::F32 => pool_backward::<f32>("allconv_max_pool_bwd_f32", geometry, x, grad),
        DType::F64 => pool_backward::<f64>("allconv_max_pool_bwd_f64", geometry, x, grad),
        other => bail!("max_pool2d backward: dtype {other:?} not supported on CUDA (f32, f64)"),
    }
}

fn pool_backward<T: CudaDType + DeviceRepr>(
    name: &str,
    (kernel, stride, pad): (usize, usize, usize),
    (xs, xl): (&CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "max_pool2d backward";
    let (planes, h, w, out_h, out_w) = pool_geometry(xl, kernel, stride, pad)?;
    let (n, c, _, _) = xl.shape().dims4()?;
    if gl.shape().dims() != [n, c, out_h, out_w] {
        bail!(
            "{OP}: gradient shape {:?} does not match the output [{n}, {c}, {out_h}, {out_w}]",
            gl.shape()
        )
    }
    let x = view::<T>(xs, xl, OP, "input")?;
    let dy = view::<T>(gs, gl, OP, "gradient")?;
    let dev = &xs.device;
    let count = planes * h * w;
    // SAFETY: one thread per input element writes it.
    let mut dx = unsafe { dev.alloc::<T>(count)? };
    if count > 0 {
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        let mut b = func.builder();
        let (planes, dims) = (
            planes as u64,
            [h, w, out_h, out_w, kernel, stride, pad].map(|d| d as i32),
        );
        b.arg(&x).arg(&dy).arg(&mut dx).arg(&planes);
        for d in &dims {
            b.arg(d);
        }
        // SAFETY: as in the forward; `dy` holds planes*out_h*out_w elements, `dx` planes*h*w.
        unsafe { b.launch(config(count)) }.w()?;
    }
    Ok((T::wrap_cuda_slice(dx, dev.clone()), xl.shape().clone()))
}

/// The ReLU backward by rule, same contract as the CPU `ReluBackwardOp`: plain
/// backpropagation (`dy * (y > 0)`, training) with `allconv_relu_mask_f32`, the visualisation's
/// rules with `allconv_relu_rule_f32` and the rule's code.
pub(crate) fn relu_backward(
    (gs, gl): (&CudaStorage, &Layout),
    (ys, yl): (&CudaStorage, &Layout),
    rule: ReluBackward,
) -> Result<(CudaStorage, Shape)> {
    const OP: &str = "relu backward";
    f32_only(gs, OP)?;
    if gl.shape() != yl.shape() {
        bail!(
            "{OP}: gradient {:?} and output {:?} differ",
            gl.shape(),
            yl.shape()
        )
    }
    let dy = view::<f32>(gs, gl, OP, "gradient")?;
    let y = view::<f32>(ys, yl, OP, "output")?;
    let dev = &gs.device;
    let count = gl.shape().elem_count();
    // SAFETY: the kernel writes every element.
    let mut out = unsafe { dev.alloc::<f32>(count)? };
    if count > 0 {
        let backprop = rule == ReluBackward::Backprop;
        let name = if backprop {
            "allconv_relu_mask_f32"
        } else {
            "allconv_relu_rule_f32"
        };
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        let mut b = func.builder();
        let (n, code) = (count as u64, rule.code());
        b.arg(&dy).arg(&y).arg(&mut out).arg(&n);
        if !backprop {
            b.arg(&code);
        }
        // SAFETY: matches the kernel's signature (the mask kernel takes no rule code); all three
        // buffers hold `count` elements.
        unsafe { b.launch(config(count)) }.w()?;
    }
    Ok((
        CudaStorage::wrap_cuda_slice(out, dev.clone()),
        gl.shape().clone(),
    ))
}

/// Dropout of a contiguous f32/f64 tensor with the host-derived `key` and `threshold` (see
/// `ops/dropout/mask.rs`); kept elements are multiplied by `scale` rounded to the dtype.
pub(crate) fn dropout(
    (xs, xl): (&CudaStorage, &Layout),
    key: u64,
    threshold: u64,
    scale: f64,
) -> Result<CudaStorage> {
    let mask = (key, threshold, scale);
    match xs.dtype() {
        DType::F32 => dropout_typed::<f32>("allconv_dropout_f32", (xs, xl), mask),
        DType::F64 => dropout_typed::<f64>("allconv_dropout_f64", (xs, xl), mask),
        other => bail!("dropout: dtype {other:?} not supported on CUDA (f32, f64)"),
    }
}

fn dropout_typed<T: CudaDType + DeviceRepr + WithDType>(
    name: &str,
    (xs, xl): (&CudaStorage, &Layout),
    (key, threshold, scale): (u64, u64, f64),
) -> Result<CudaStorage> {
    const OP: &str = "dropout";
    let dev = &xs.device;
    let count = xl.shape().elem_count();
    let x = view::<T>(xs, xl, OP, "input")?;
    // SAFETY: the kernel writes every element.
    let mut y = unsafe { dev.alloc::<T>(count)? };
    if count > 0 {
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        let mut b = func.builder();
        let (n, scale) = (count as u64, T::from_f64(scale));
        b.arg(&x)
            .arg(&mut y)
            .arg(&n)
            .arg(&key)
            .arg(&threshold)
            .arg(&scale);
        // SAFETY: matches the kernel's signature (`T` is its element type); both buffers hold
        // `count` elements.
        unsafe { b.launch(config(count)) }.w()?;
    }
    Ok(T::wrap_cuda_slice(y, dev.clone()))
}

/// The fused SGD step on contiguous `w`, `v` (written in place) and `g` of one dtype (f32 or
/// f64); see `ops/sgd.rs` for the formula.
pub(crate) fn sgd_step(
    (ws, wl): (&mut CudaStorage, &Layout),
    (vs, vl): (&mut CudaStorage, &Layout),
    (gs, gl): (&CudaStorage, &Layout),
    lr: f64,
    momentum: f64,
    weight_decay: f64,
) -> Result<()> {
    const OP: &str = "sgd_step";
    let range = |l: &Layout, what: &str| match l.contiguous_offsets() {
        Some(r) => Ok(r),
        None => bail!("{OP}: the {what} must be contiguous"),
    };
    let (w0, w1) = range(wl, "parameter")?;
    let (v0, v1) = range(vl, "momentum buffer")?;
    let count = w1 - w0;
    if v1 - v0 != count || gl.shape().elem_count() != count {
        bail!("{OP}: parameter, momentum buffer and gradient differ in size")
    }
    if count == 0 {
        return Ok(());
    }
    let hyper = (lr, momentum, weight_decay);
    let (w, v, g) = ((ws, w0..w1), (vs, v0..v1), (gs, gl));
    match (w.0.dtype(), v.0.dtype(), g.0.dtype()) {
        (DType::F32, DType::F32, DType::F32) => sgd_typed::<f32>("allconv_sgd_f32", w, v, g, hyper),
        (DType::F64, DType::F64, DType::F64) => sgd_typed::<f64>("allconv_sgd_f64", w, v, g, hyper),
        (w, v, g) => bail!(
            "{OP}: parameter {w:?}, momentum buffer {v:?}, gradient {g:?}: expected all f32 or all f64 on CUDA"
        ),
    }
}

fn sgd_typed<T: CudaDType + DeviceRepr + WithDType>(
    name: &str,
    (ws, w_range): (&mut CudaStorage, Range<usize>),
    (vs, v_range): (&mut CudaStorage, Range<usize>),
    (gs, gl): (&CudaStorage, &Layout),
    (lr, momentum, weight_decay): (f64, f64, f64),
) -> Result<()> {
    let dev = ws.device.clone();
    let count = w_range.len();
    let (n, decay) = (count as u64, i32::from(weight_decay != 0.0));
    let g = view::<T>(gs, gl, "sgd_step", "gradient")?;
    let mut w = ws.as_cuda_slice_mut::<T>()?.slice_mut(w_range);
    let mut v = vs.as_cuda_slice_mut::<T>()?.slice_mut(v_range);
    let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
    let mut b = func.builder();
    let (lr, momentum, wd) = (
        T::from_f64(lr),
        T::from_f64(momentum),
        T::from_f64(weight_decay),
    );
    b.arg(&mut w).arg(&mut v).arg(&g).arg(&n);
    b.arg(&lr).arg(&momentum).arg(&wd).arg(&decay);
    // SAFETY: matches the kernel's signature (`T` is its element type); the three views hold
    // `count` elements and `w`, `v` are distinct allocations (checked by `sgd_step`).
    unsafe { b.launch(config(count)) }.w()?;
    Ok(())
}
