//! The GEMM behind every product of the CPU convolution (forward, weight gradient, input
//! gradient): [`matmul`] and [`matmul_ld`] on strided operands ([`Mat`]), and how many threads one
//! product may use ([`Geom::gemm_parallelism`]). Every GEMM call of the crate goes through here.

use candle_core::WithDType;
use gemm::Parallelism;

use super::geom::Geom;

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

/// [`matmul`] into a destination whose rows start `ld >= n` elements apart.
pub(super) fn matmul_ld<T: WithDType>(
    dst: &mut [T],
    ld: usize,
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(
        ld >= n && (m == 0 || dst.len() >= (m - 1) * ld + n),
        "matmul destination too small"
    );
    // SAFETY: `dst` holds the m rows of n elements, ld apart (checked above) and is exclusively
    // borrowed; the operands are views of slices that the callers size to the given dimensions
    // and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
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
