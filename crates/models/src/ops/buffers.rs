//! What every op's CPU side shares: the one test of whether our own kernel runs a tensor, the
//! one f32 / f64 dtype dispatch, contiguous views of CPU storage, and output buffers that are
//! allocated uninitialised and zeroed by the thread that fills them.

use std::mem::MaybeUninit;

use candle_core::{bail, CpuStorage, DType, Device, Layout, Result, Tensor, WithDType};

use super::dropout::mask::WideApply;

/// Where an op has its own kernels. Every op has CPU kernels for f32 and f64; they differ in
/// what they run on CUDA (only with the `cuda` feature) and in whether they run there at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernels {
    /// CPU only (the fused ops, which run unfused elsewhere).
    CpuOnly,
    /// CPU, and CUDA in f32 only (the convolution and the max-pool).
    CpuAndCudaF32,
    /// CPU and CUDA, both in f32 and f64.
    CpuAndCuda,
}

/// Whether an op with `kernels` runs `x` with its own kernel, rather than with the candle
/// fallback that every op has for other devices and dtypes.
pub(crate) fn own_kernel_runs(x: &Tensor, kernels: Kernels) -> bool {
    let dtype = x.dtype();
    let float = matches!(dtype, DType::F32 | DType::F64);
    match x.device() {
        Device::Cpu => float,
        Device::Cuda(_) => {
            cfg!(feature = "cuda")
                && match kernels {
                    Kernels::CpuOnly => false,
                    Kernels::CpuAndCudaF32 => dtype == DType::F32,
                    Kernels::CpuAndCuda => float,
                }
        }
        _ => false,
    }
}

/// The element types of our CPU kernels: f32 and f64 (each with its vectorised dropout loop).
pub(crate) trait Float: WideApply {}

impl Float for f32 {}
impl Float for f64 {}

/// `CpuStorage` of the dtype `$dtype` computed by `$body`, a `Vec<$t>` expression in which `$t`
/// names the element type ([`Float`]: f32 or f64); any other dtype is an error naming `$op`.
///
/// The one place where a CPU op goes from a run-time dtype to a typed kernel call. A macro, not
/// a function, because the body is generic code written at the call site (a closure cannot be
/// generic over `T`), and it may use `?` on the caller's `Result`.
macro_rules! float_storage {
    ($op:expr, $dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                candle_core::CpuStorage::F32($body)
            }
            candle_core::DType::F64 => {
                type $t = f64;
                candle_core::CpuStorage::F64($body)
            }
            other => candle_core::bail!("{}: dtype {:?} not supported (f32, f64)", $op, other),
        }
    };
}
pub(crate) use float_storage;

/// The contiguous elements of a CPU tensor argument `what` of op `op`.
pub(crate) fn contiguous<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
    what: &str,
) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: {what} must be contiguous"),
    }
}

/// An uninitialised vector of `len` elements, to be filled in parallel by the threads that use
/// it (`vec![0; len]` would zero it serially on the calling thread, with the others idle, and
/// pull the memory through the cache once more).
pub(crate) fn uninit<T>(len: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, MaybeUninit::uninit);
    v
}

/// Zero-fills `slots` and returns them as initialised values.
pub(crate) fn zeroed<T: WithDType>(slots: &mut [MaybeUninit<T>]) -> &mut [T] {
    slots.fill(MaybeUninit::new(T::zero()));
    // SAFETY: every element was initialised just above, and MaybeUninit<T> has T's layout.
    unsafe { &mut *(slots as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Copies `src` into `slots` (equal lengths) and returns them as initialised values.
pub(crate) fn write_slice<'a, T: Copy>(slots: &'a mut [MaybeUninit<T>], src: &[T]) -> &'a mut [T] {
    assert_eq!(slots.len(), src.len(), "write_slice: lengths differ");
    for (slot, &v) in slots.iter_mut().zip(src) {
        slot.write(v);
    }
    // SAFETY: every element was initialised just above, and MaybeUninit<T> has T's layout.
    unsafe { assume_init_mut(slots) }
}

/// The values behind `slots`.
///
/// # Safety
/// Every element of `slots` must have been initialised.
pub(crate) unsafe fn assume_init_mut<T>(slots: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: MaybeUninit<T> has T's layout; the caller guarantees initialisation.
    unsafe { &mut *(slots as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// The vector of values behind `v`.
///
/// # Safety
/// Every element of `v` must have been initialised.
pub(crate) unsafe fn assume_init<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: same allocation, length and capacity; MaybeUninit<T> has T's layout; the caller
    // guarantees initialisation.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the CPU every op runs its own kernel for f32 and f64 and the candle fallback for any
    /// other dtype, whatever it does on CUDA (the ops' documentation says so).
    #[test]
    fn cpu_runs_own_kernels_for_f32_and_f64_only() {
        for kernels in [
            Kernels::CpuOnly,
            Kernels::CpuAndCudaF32,
            Kernels::CpuAndCuda,
        ] {
            for (dtype, own) in [
                (DType::F32, true),
                (DType::F64, true),
                (DType::BF16, false),
                (DType::F16, false),
                (DType::U8, false),
            ] {
                let x = Tensor::zeros(2, dtype, &Device::Cpu).unwrap();
                assert_eq!(own_kernel_runs(&x, kernels), own, "{kernels:?} {dtype:?}");
            }
        }
    }
}
