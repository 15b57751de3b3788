//! ZCA whitening: the fit (mean, covariance or Gram matrix, eigendecomposition) and its
//! application, in faer.

use faer::linalg::matmul::{matmul, triangular, triangular::BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};

use crate::{CifarError, Result};

/// A fitted ZCA transform `y = (x - mean) W` for vectors of `dim` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Zca {
    /// Length of each vector.
    pub dim: usize,
    /// Mean of the fitted data, `dim` values.
    pub mean: Vec<f32>,
    /// `W = U diag(1 / sqrt(lambda + epsilon)) U^T`, `dim * dim` values (symmetric, so row-
    /// and column-major agree).
    pub w: Vec<f32>,
}

/// Rows per block when streaming the data set through the matrix products: large enough for
/// efficient GEMM, small enough that an f64 copy of a block stays in cache-friendly sizes.
const BLOCK_ROWS: usize = 2048;

/// Fits ZCA on `n` row vectors of `dim` values (`x` row-major, `n * dim`): mean `m`, covariance
/// `C = (X - m)^T (X - m) / n` accumulated in f64 (faer GEMM on blocks of rows, lower triangle
/// only), eigendecomposition `C = U diag(lambda) U^T` by faer's self-adjoint solver, and
/// `W = U diag(1 / sqrt(lambda + epsilon)) U^T`. This is pylearn2's `ZCA(filter_bias=epsilon)`.
/// With fewer vectors than dimensions the same `W` is computed from the `n x n` Gram matrix
/// instead (see `w_from_gram`), which makes fits on small subsets cheap.
pub fn zca_fit(x: &[f32], n: usize, dim: usize, epsilon: f64) -> Result<Zca> {
    if n == 0 || dim == 0 || x.len() != n * dim {
        return Err(CifarError::InvalidOption {
            option: "zca input",
            reason: format!(
                "{} values are not {n} rows of {dim} (both non-zero)",
                x.len()
            ),
        });
    }
    let par = Par::rayon(0);
    let mut mean = vec![0f64; dim];
    for row in x.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);

    let w = if n < dim {
        w_from_gram(x, &mean, n, dim, epsilon, par)?
    } else {
        w_from_covariance(x, &mean, n, dim, epsilon, par)?
    };
    let mut w_flat = Vec::with_capacity(dim * dim);
    for i in 0..dim {
        for j in 0..dim {
            // Symmetrise: round-off makes W[i,j] and W[j,i] differ in the last bits.
            w_flat.push((0.5 * (w[(i, j)] + w[(j, i)])) as f32);
        }
    }
    Ok(Zca {
        dim,
        mean: mean.iter().map(|&m| m as f32).collect(),
        w: w_flat,
    })
}

/// `W` from the eigendecomposition of the `dim x dim` covariance (the general case).
fn w_from_covariance(
    x: &[f32],
    mean: &[f64],
    n: usize,
    dim: usize,
    epsilon: f64,
    par: Par,
) -> Result<Mat<f64>> {
    let mut cov = Mat::<f64>::zeros(dim, dim);
    let mut block = vec![0f64; BLOCK_ROWS.min(n) * dim];
    for rows in x.chunks(BLOCK_ROWS * dim) {
        let r = rows.len() / dim;
        let block = &mut block[..r * dim];
        centre(block, rows, mean);
        // The block is row-major r x dim, i.e. column-major dim x r: that is Xc^T.
        let xt = MatRef::from_column_major_slice(block, dim, r);
        triangular::matmul(
            cov.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Add,
            xt,
            BlockStructure::Rectangular,
            xt.transpose(),
            BlockStructure::Rectangular,
            1.0 / n as f64,
            par,
        );
    }
    let eigen = cov.self_adjoint_eigen(Side::Lower).map_err(eigen_failed)?;
    let u = eigen.U();
    let lambda = eigen.S().column_vector();
    let mut scaled = u.to_owned();
    for j in 0..dim {
        let shifted = lambda[j] + epsilon;
        if shifted.is_nan() || shifted <= 0.0 {
            return Err(CifarError::LinearAlgebra(format!(
                "eigenvalue {} + epsilon {epsilon} is not positive",
                lambda[j]
            )));
        }
        let s = 1.0 / shifted.sqrt();
        scaled.col_mut(j).iter_mut().for_each(|v| *v *= s);
    }
    Ok(times_transpose(scaled.as_ref(), u, par))
}

/// `W` when there are fewer vectors than dimensions (`n < dim`, e.g. a small `train_subset` or
/// a synthetic test set): the covariance `C = Xc^T Xc / n` has rank below `n`, and its non-zero
/// eigenpairs come from the small Gram matrix `G = Xc Xc^T / n` (`G v = lambda v` gives
/// `u = Xc^T v / sqrt(n lambda)`). On the rest of the space `lambda = 0`, so
/// `W = I / sqrt(eps) + U_r diag(1/sqrt(lambda + eps) - 1/sqrt(eps)) U_r^T`: the same matrix
/// as the general case at O(n^2 dim + n dim^2) cost instead of O(dim^3). Eigenvalues below
/// 1e-12 of the largest are treated as zero; their coefficient is below 1e-12 / eps^1.5 of it.
fn w_from_gram(
    x: &[f32],
    mean: &[f64],
    n: usize,
    dim: usize,
    epsilon: f64,
    par: Par,
) -> Result<Mat<f64>> {
    let mut xc = vec![0f64; n * dim];
    centre(&mut xc, x, mean);
    // Row-major n x dim is column-major dim x n: Xc^T.
    let xt = MatRef::from_column_major_slice(&xc, dim, n);
    let mut gram = Mat::<f64>::zeros(n, n);
    matmul(
        gram.as_mut(),
        Accum::Replace,
        xt.transpose(),
        xt,
        1.0 / n as f64,
        par,
    );
    let eigen = gram.self_adjoint_eigen(Side::Lower).map_err(eigen_failed)?;
    let lambda = eigen.S().column_vector();
    let largest = (0..n).map(|j| lambda[j]).fold(0.0f64, f64::max);
    let kept: Vec<usize> = (0..n)
        .filter(|&j| lambda[j] > 1e-12 * largest && lambda[j] > 0.0)
        .collect();
    let r = kept.len();
    // U_r (dim x r) and U_r scaled by the coefficients.
    let mut v_r = Mat::<f64>::zeros(n, r);
    for (k, &j) in kept.iter().enumerate() {
        v_r.col_mut(k).copy_from(eigen.U().col(j));
    }
    let mut u_r = Mat::<f64>::zeros(dim, r);
    matmul(u_r.as_mut(), Accum::Replace, xt, v_r.as_ref(), 1.0, par);
    let base = 1.0 / epsilon.sqrt();
    let mut scaled = u_r.clone();
    for (k, &j) in kept.iter().enumerate() {
        let norm = u_r.col(k).norm_l2();
        let coef = 1.0 / (lambda[j] + epsilon).sqrt() - base;
        u_r.col_mut(k).iter_mut().for_each(|v| *v /= norm);
        scaled.col_mut(k).iter_mut().for_each(|v| *v *= coef / norm);
    }
    let mut w = times_transpose(scaled.as_ref(), u_r.as_ref(), par);
    for i in 0..dim {
        w[(i, i)] += base;
    }
    Ok(w)
}

/// Writes `rows - mean` (row-major vectors of `mean.len()` values) into `out`, in f64.
fn centre(out: &mut [f64], rows: &[f32], mean: &[f64]) {
    for (c, (&v, m)) in out.iter_mut().zip(rows.iter().zip(mean.iter().cycle())) {
        *c = f64::from(v) - m;
    }
}

/// `A B^T` for two matrices of `dim` rows: `W` from its scaled and its plain eigenvectors.
fn times_transpose(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut w = Mat::<f64>::zeros(a.nrows(), b.nrows());
    matmul(w.as_mut(), Accum::Replace, a, b.transpose(), 1.0, par);
    w
}

/// The error of an eigendecomposition that did not converge.
fn eigen_failed(error: impl std::fmt::Debug) -> CifarError {
    CifarError::LinearAlgebra(format!("eigendecomposition failed: {error:?}"))
}

impl Zca {
    /// `(x - mean) W` for row vectors `x` (row-major, a multiple of `dim` values), in f32 with
    /// faer's parallel GEMM.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let dim = self.dim;
        let mut out = vec![0f32; x.len()];
        let w = MatRef::from_column_major_slice(&self.w, dim, dim);
        let mut block = vec![0f32; BLOCK_ROWS.min(x.len() / dim.max(1)) * dim];
        for (rows, dst) in x
            .chunks(BLOCK_ROWS * dim)
            .zip(out.chunks_mut(BLOCK_ROWS * dim))
        {
            let r = rows.len() / dim;
            let block = &mut block[..r * dim];
            for (b, (&v, &m)) in block
                .iter_mut()
                .zip(rows.iter().zip(self.mean.iter().cycle()))
            {
                *b = v - m;
            }
            // Row-major r x dim is column-major dim x r (the transpose); since W is symmetric,
            // Y^T = W Xc^T, written straight into the row-major output.
            let xt = MatRef::from_column_major_slice(block, dim, r);
            let yt: MatMut<'_, f32> = MatMut::from_column_major_slice_mut(dst, dim, r);
            matmul(yt, Accum::Replace, w, xt, 1.0, Par::rayon(0));
        }
        out
    }
}
