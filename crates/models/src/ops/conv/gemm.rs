//! The GEMM behind every product of the CPU convolution (forward, weight gradient, input
//! gradient): [`matmul`] and [`matmul_ld`] on strided operands ([`Mat`]), and how many threads one
//! product may use ([`Geom::gemm_parallelism`]). Every GEMM call of the crate goes through here.

use std::mem::MaybeUninit;

use candle_core::WithDType;
use gemm::Parallelism;

use super::geom::Geom;
use crate::ops::cpu_kernels::{self, CpuKernels};
#[cfg(target_arch = "x86_64")]
use candle_core::DType;

impl Geom {
    /// GEMM parallelism inside one image: only when there are fewer images than threads.
    pub(super) fn gemm_parallelism(&self) -> Parallelism {
        let threads = rayon::current_num_threads();
        if self.batch < threads {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        }
    }
}

/// Row-major matrix operand for [`matmul`]: pointer and (row stride, column stride).
pub(super) struct Mat<T> {
    ptr: *const T,
    row_stride: usize,
    col_stride: usize,
}

impl<T> Mat<T> {
    pub(super) fn rows(data: &[T], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub(super) fn transposed(data: &[T], cols: usize) -> Self {
        Self {
            ptr: data.as_ptr(),
            row_stride: 1,
            col_stride: cols,
        }
    }
}

/// `dst [m, n] (row-major) = (accumulate ? dst : 0) + lhs [m, k] x rhs [k, n]`.
///
/// The caller guarantees that `lhs` and `rhs` address `m x k` and `k x n` elements inside live
/// slices and do not overlap `dst`.
pub(super) fn matmul<T: WithDType>(
    dst: &mut [T],
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    matmul_ld(dst, n, (m, n, k), lhs, rhs, accumulate, parallelism)
}

/// [`matmul`] into a destination whose rows start `ld >= n` elements apart, with the kernels
/// of [`cpu_kernels::cpu_kernels`]: f32 and f64 on the AVX-512 and AVX2 paths go to
/// `private-gemm-x86` (faer's own x86 matrix-product backend), which takes the instruction set
/// as an argument, so a path can be forced and tested on any CPU that has it; everything else
/// (the portable path, other dtypes, non-x86 CPUs) to the `gemm` crate.
///
/// Why these two: on the conv shapes of the 12 networks `gemm` 0.19's stable-Rust kernels stop
/// at AVX2, about half of what 512-bit kernels reach on an AVX-512 CPU (docs/benchmarks.md,
/// CPU kernels); `private-gemm-x86` is the maintained crate that faer's `matmul` dispatches to
/// at run time, used here directly because faer's entry point picks the instruction set itself.
pub(super) fn matmul_ld<T: WithDType>(
    dst: &mut [T],
    ld: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    check_destination(dst.len(), ld, m, n);
    // SAFETY: `dst` is exclusively borrowed, initialised and large enough (checked).
    unsafe {
        matmul_raw(
            dst.as_mut_ptr(),
            ld,
            (m, n, k),
            lhs,
            rhs,
            accumulate,
            parallelism,
        )
    }
}

/// [`matmul_ld`] with `accumulate` false into memory not yet initialised: the product overwrites
/// every element of the `m x n` destination without reading it, so the caller need not zero it
/// first (a pass over 50 MB per batch for All-CNN-C's 32x32 layers). Returns nothing: the
/// caller knows which elements are now initialised.
pub(super) fn matmul_ld_uninit<T: WithDType>(
    dst: &mut [MaybeUninit<T>],
    ld: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    parallelism: Parallelism,
) {
    check_destination(dst.len(), ld, m, n);
    // SAFETY: `dst` is exclusively borrowed and large enough (checked); with `accumulate` false
    // both GEMMs store into the destination without reading it (`Accum::Replace` /
    // `read_dst = false`), and `MaybeUninit<T>` has `T`'s layout.
    unsafe {
        matmul_raw(
            dst.as_mut_ptr().cast::<T>(),
            ld,
            (m, n, k),
            lhs,
            rhs,
            false,
            parallelism,
        )
    }
}

fn check_destination(len: usize, ld: usize, m: usize, n: usize) {
    assert!(
        ld >= n && (m == 0 || len >= (m - 1) * ld + n),
        "matmul destination too small"
    );
}

/// The product behind [`matmul_ld`] and [`matmul_ld_uninit`]: `private-gemm-x86` where
/// [`X86Kernels::chosen_for`] gives its kernels, the `gemm` crate otherwise.
///
/// # Safety
/// `dst` addresses `m` rows of `n` elements `ld` apart, writable and not aliased during the
/// call; initialised where `accumulate` (it is read then).
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_raw<T: WithDType>(
    dst: *mut T,
    ld: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(kernels) = X86Kernels::chosen_for::<T>() {
        let threads = match parallelism {
            Parallelism::Rayon(threads) => threads.max(1),
            _ => 1,
        };
        // SAFETY: this function's contract, which `X86Kernels::gemm` shares.
        unsafe { kernels.gemm(dst, ld, (m, n, k), (lhs, rhs), accumulate, threads) };
        return;
    }
    // SAFETY: `dst` holds the m rows of n elements, ld apart, not aliased (the caller's
    // contract); the operands are views of slices that the callers size to the given
    // dimensions and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ld as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The `private-gemm-x86` kernels of one product: the instruction set of
/// [`cpu_kernels::cpu_kernels`] and the element type.
#[cfg(target_arch = "x86_64")]
struct X86Kernels {
    instr: private_gemm_x86::InstrSet,
    dtype: private_gemm_x86::DType,
}

#[cfg(target_arch = "x86_64")]
impl X86Kernels {
    /// The kernels for elements `T` on the chosen path: `None` on the portable path and for
    /// dtypes other than f32 and f64.
    fn chosen_for<T: WithDType>() -> Option<Self> {
        let instr = match cpu_kernels::cpu_kernels() {
            CpuKernels::Avx512 => Some(private_gemm_x86::InstrSet::Avx512),
            CpuKernels::Avx2 => Some(private_gemm_x86::InstrSet::Avx256),
            CpuKernels::Portable => None,
        };
        let dtype = match T::DTYPE {
            DType::F32 => Some(private_gemm_x86::DType::F32),
            DType::F64 => Some(private_gemm_x86::DType::F64),
            _ => None,
        };
        Some(Self {
            instr: instr?,
            dtype: dtype?,
        })
    }

    /// [`matmul_raw`] on these kernels with `threads` threads.
    ///
    /// # Safety
    /// As [`matmul_raw`]'s; `T` is the element type the kernels were chosen for.
    unsafe fn gemm<T: WithDType>(
        &self,
        dst: *mut T,
        ld: usize,
        (m, n, k): (usize, usize, usize),
        (lhs, rhs): (Mat<T>, Mat<T>),
        accumulate: bool,
        threads: usize,
    ) {
        let alpha = T::one();
        // SAFETY: as for `gemm::gemm` in `matmul_raw`; `private-gemm-x86` reads `m x k` and
        // `k x n` elements through the given strides (in elements), writes the `m x n`
        // destination, and runs `instr`'s instructions only, which `cpu_kernels` checked this
        // CPU has. `alpha` is a `T` matching `dtype`, alive for the call; no index arrays, no
        // diagonal, no conjugation.
        unsafe {
            private_gemm_x86::gemm(
                self.dtype,
                private_gemm_x86::IType::U64,
                self.instr,
                m,
                n,
                k,
                dst as *mut (),
                ld as isize,
                1,
                std::ptr::null(),
                std::ptr::null(),
                private_gemm_x86::DstKind::Full,
                if accumulate {
                    private_gemm_x86::Accum::Add
                } else {
                    private_gemm_x86::Accum::Replace
                },
                lhs.ptr as *const (),
                lhs.row_stride as isize,
                lhs.col_stride as isize,
                false,
                std::ptr::null(),
                0,
                rhs.ptr as *const (),
                rhs.row_stride as isize,
                rhs.col_stride as isize,
                false,
                &alpha as *const T as *const (),
                threads,
            );
        }
    }
}
