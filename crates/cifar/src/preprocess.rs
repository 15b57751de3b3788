//! Preprocessing fitted on the training part only and applied unchanged to validation and test:
//! `scale`, `standardize`, and the paper's `gcn_zca` (pylearn2's global contrast normalisation
//! followed by ZCA whitening), with the fitted ZCA cached in a safetensors file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use faer::linalg::matmul::{matmul, triangular, triangular::BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::format::{RawDataset, RawSplit, IMAGE_BYTES};
use crate::stats::channel_stats;
use crate::{CifarError, Result};
use allconv_vocab::DatasetKind;

/// Which preprocessing `prepare` applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocessing {
    /// `x / 255`.
    Scale,
    /// `(x - mean_c) / std_c` with the per-channel mean and population std of the training part.
    Standardize,
    /// The paper's recipe: global contrast normalisation (per image: subtract its mean, divide
    /// by its L2 norm, times `gcn_scale`), then ZCA whitening fitted on the training part.
    #[default]
    GcnZca,
}

impl Preprocessing {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preprocessing::Scale => "scale",
            Preprocessing::Standardize => "standardize",
            Preprocessing::GcnZca => "gcn_zca",
        }
    }
}

impl std::fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preprocessing {
    type Err = CifarError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "scale" => Ok(Preprocessing::Scale),
            "standardize" => Ok(Preprocessing::Standardize),
            "gcn_zca" => Ok(Preprocessing::GcnZca),
            other => Err(CifarError::InvalidOption {
                option: "preprocessing",
                reason: format!("unknown value {other:?}, expected scale, standardize or gcn_zca"),
            }),
        }
    }
}

/// How `prepare` splits and normalises the data.
///
/// Order of operations: `train_subset` keeps the first N of the 50,000 training images; then
/// the last `validation` images of what is left become the validation split; statistics are
/// fitted on the remaining training part only. `test_subset` keeps the first N test images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareOptions {
    /// Which normalisation.
    pub preprocessing: Preprocessing,
    /// Number of images taken from the end of the training set as a validation split
    /// (0: the paper's protocol, train on everything).
    pub validation: usize,
    /// GCN scale (pylearn2 `scale`, 55 in the paper's recipe).
    pub gcn_scale: f64,
    /// Added to every eigenvalue of the covariance before the inverse square root.
    pub zca_epsilon: f64,
    /// Keep only the first N training images (before the validation split).
    pub train_subset: Option<usize>,
    /// Keep only the first N test images.
    pub test_subset: Option<usize>,
    /// The data set the images come from: sets the valid label range and is part of the ZCA
    /// cache key (two data sets never share a fit, even with equal images).
    pub dataset: DatasetKind,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            preprocessing: Preprocessing::GcnZca,
            validation: 0,
            gcn_scale: 55.0,
            zca_epsilon: 0.1,
            train_subset: None,
            test_subset: None,
            dataset: DatasetKind::Cifar10,
        }
    }
}

/// Normalised images of one part, ready for batching.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    /// `N * 3072` values, CHW per image.
    pub images: Vec<f32>,
    /// `N` labels, 0-9.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The three parts after preprocessing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prepared {
    /// Training part (statistics were fitted on it).
    pub train: Split,
    /// Validation part (empty when `validation == 0`).
    pub validation: Split,
    /// Test part.
    pub test: Split,
    /// True when the ZCA statistics were loaded from the cache instead of fitted.
    pub from_cache: bool,
    /// md5 of the statistics the splits were normalised with (the little-endian bytes of the
    /// ZCA mean and whitening matrix, or of the channel means and deviations; of nothing for
    /// `scale`), so a record can tell whether two preparations normalised alike.
    pub statistics_md5: String,
}

/// The cache folder used next to a data folder: `<data dir>/../cache`.
pub fn default_cache_dir(data_dir: &Path) -> PathBuf {
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join("cache")
}

/// Splits, normalises and returns the data; statistics are fitted on the training part only.
/// With `cache_dir`, the ZCA fit of `gcn_zca` is stored there and reused by later calls with the
/// same training images and parameters.
pub fn prepare(
    data: &RawDataset,
    opts: &PrepareOptions,
    cache_dir: Option<&Path>,
) -> Result<Prepared> {
    prepare_parts(data, opts, cache_dir, Parts::All)
}

/// [`prepare`] for code that only reads the test split (evaluating or visualising trained
/// weights): the statistics are fitted on (or, for `gcn_zca`, loaded from the cache for) the
/// same training part, but only the test images are normalised; the training and validation
/// splits of the result are empty. Its test split equals [`prepare`]'s bit for bit; it saves
/// whitening the 50,000 training images (about 1e12 floating-point operations).
pub fn prepare_test(
    data: &RawDataset,
    opts: &PrepareOptions,
    cache_dir: Option<&Path>,
) -> Result<Prepared> {
    prepare_parts(data, opts, cache_dir, Parts::TestOnly)
}

/// Which splits [`prepare_parts`] normalises.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    All,
    TestOnly,
}

fn prepare_parts(
    data: &RawDataset,
    opts: &PrepareOptions,
    cache_dir: Option<&Path>,
    parts: Parts,
) -> Result<Prepared> {
    let (train, mut validation, test) = split_parts(data, opts)?;
    let all = parts == Parts::All;
    if !all {
        validation = RawSplit::default();
    }
    let mut from_cache = false;
    let mut statistics_md5 = format!("{:x}", Md5::digest(b""));
    let (train_x, val_x, test_x) = match opts.preprocessing {
        Preprocessing::Scale => {
            let f = |s: &RawSplit| s.images.iter().map(|&v| f32::from(v) / 255.0).collect();
            (
                if all { f(&train) } else { Vec::new() },
                f(&validation),
                f(&test),
            )
        }
        Preprocessing::Standardize => {
            let stats = channel_stats(&train);
            let bytes: Vec<u8> = (stats.mean.iter().chain(&stats.std))
                .flat_map(|v| v.to_le_bytes())
                .collect();
            statistics_md5 = format!("{:x}", Md5::digest(&bytes));
            let f = |s: &RawSplit| standardize(&s.images, &stats.mean, &stats.std);
            (
                if all { f(&train) } else { Vec::new() },
                f(&validation),
                f(&test),
            )
        }
        Preprocessing::GcnZca => {
            if !(opts.gcn_scale > 0.0 && opts.gcn_scale.is_finite()) {
                return Err(CifarError::InvalidOption {
                    option: "gcn_scale",
                    reason: format!("{} is not a positive number", opts.gcn_scale),
                });
            }
            if !(opts.zca_epsilon > 0.0 && opts.zca_epsilon.is_finite()) {
                return Err(CifarError::InvalidOption {
                    option: "zca_epsilon",
                    reason: format!("{} is not a positive number", opts.zca_epsilon),
                });
            }
            let train_g = gcn(&train.images, IMAGE_BYTES, opts.gcn_scale);
            let (zca, loaded) = fit_or_load(&train, &train_g, opts, cache_dir)?;
            from_cache = loaded;
            statistics_md5 = tensors_md5(&f32_bytes(&zca.mean), &f32_bytes(&zca.w));
            let apply_raw = |s: &RawSplit| zca.apply(&gcn(&s.images, IMAGE_BYTES, opts.gcn_scale));
            (
                if all { zca.apply(&train_g) } else { Vec::new() },
                apply_raw(&validation),
                apply_raw(&test),
            )
        }
    };
    Ok(Prepared {
        train: Split {
            images: train_x,
            labels: if all { train.labels } else { Vec::new() },
        },
        validation: Split {
            images: val_x,
            labels: validation.labels,
        },
        test: Split {
            images: test_x,
            labels: test.labels,
        },
        from_cache,
        statistics_md5,
    })
}

/// Applies `train_subset`, `validation` and `test_subset` (see [`PrepareOptions`]).
fn split_parts(data: &RawDataset, opts: &PrepareOptions) -> Result<(RawSplit, RawSplit, RawSplit)> {
    let classes = opts.dataset.num_classes();
    // A CIFAR-100 split is one file, so an error can name it (its records are the split's).
    let (train_name, test_name) = match opts.dataset.dataset() {
        allconv_vocab::Dataset::Cifar10 => ("training split", "test split"),
        allconv_vocab::Dataset::Cifar100 => (crate::CIFAR100_TRAIN_FILE, crate::CIFAR100_TEST_FILE),
    };
    data.train.validate_classes(train_name, classes)?;
    data.test.validate_classes(test_name, classes)?;
    let train_all = match opts.train_subset {
        Some(n) if n == 0 || n > data.train.len() => {
            return Err(CifarError::InvalidOption {
                option: "train_subset",
                reason: format!("{n} is not in 1..={}", data.train.len()),
            })
        }
        Some(n) => data.train.slice(0..n),
        None => data.train.clone(),
    };
    let test = match opts.test_subset {
        Some(n) if n > data.test.len() => {
            return Err(CifarError::InvalidOption {
                option: "test_subset",
                reason: format!("{n} is more than the {} test images", data.test.len()),
            })
        }
        Some(n) => data.test.slice(0..n),
        None => data.test.clone(),
    };
    if opts.validation >= train_all.len() {
        return Err(CifarError::InvalidOption {
            option: "validation",
            reason: format!(
                "{} validation images leave no training image out of {}",
                opts.validation,
                train_all.len()
            ),
        });
    }
    let cut = train_all.len() - opts.validation;
    Ok((
        train_all.slice(0..cut),
        train_all.slice(cut..train_all.len()),
        test,
    ))
}

fn standardize(images: &[u8], mean: &[f64; 3], std: &[f64; 3]) -> Vec<f32> {
    let plane = IMAGE_BYTES / 3;
    let mut out = Vec::with_capacity(images.len());
    for image in images.chunks_exact(IMAGE_BYTES) {
        for (c, values) in image.chunks_exact(plane).enumerate() {
            // A constant channel would divide by zero; leave it centred instead.
            let std = if std[c] > 0.0 { std[c] } else { 1.0 };
            out.extend(
                values
                    .iter()
                    .map(|&v| ((f64::from(v) - mean[c]) / std) as f32),
            );
        }
    }
    out
}

/// Global contrast normalisation of images of `dim` bytes each, as pylearn2's
/// `global_contrast_normalize(X, scale, subtract_mean=True, use_std=False, sqrt_bias=0,
/// min_divisor=1e-8)`: per image subtract its mean, divide by `||x - mean|| / scale`, except
/// that a divisor below 1e-8 (a constant image) is replaced by 1. Computed in f64.
pub fn gcn(images: &[u8], dim: usize, scale: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(images.len());
    let mut centred = vec![0f64; dim];
    for image in images.chunks_exact(dim) {
        let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / dim as f64;
        for (c, &v) in centred.iter_mut().zip(image) {
            *c = f64::from(v) - mean;
        }
        let norm = centred.iter().map(|c| c * c).sum::<f64>().sqrt() / scale;
        let divisor = if norm < 1e-8 { 1.0 } else { norm };
        out.extend(centred.iter().map(|c| (c / divisor) as f32));
    }
    out
}

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
        for (b, (&v, m)) in block.iter_mut().zip(rows.iter().zip(mean.iter().cycle())) {
            *b = f64::from(v) - m;
        }
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
    let eigen = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| CifarError::LinearAlgebra(format!("eigendecomposition failed: {e:?}")))?;
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
    let mut w = Mat::<f64>::zeros(dim, dim);
    matmul(
        w.as_mut(),
        Accum::Replace,
        scaled.as_ref(),
        u.transpose(),
        1.0,
        par,
    );
    Ok(w)
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
    for (c, (&v, m)) in xc.iter_mut().zip(x.iter().zip(mean.iter().cycle())) {
        *c = f64::from(v) - m;
    }
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
    let eigen = gram
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| CifarError::LinearAlgebra(format!("eigendecomposition failed: {e:?}")))?;
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
    let mut w = Mat::<f64>::zeros(dim, dim);
    matmul(
        w.as_mut(),
        Accum::Replace,
        scaled.as_ref(),
        u_r.transpose(),
        1.0,
        par,
    );
    for i in 0..dim {
        w[(i, i)] += base;
    }
    Ok(w)
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

/// Format version of the cache file; bump it when the fit or the file layout changes. (Adding
/// the tensors' checksum did not bump it: a cache without one keeps its file name and is
/// refitted in place rather than left behind under an old name.)
const CACHE_VERSION: &str = "zca-v1";

fn fit_or_load(
    train: &RawSplit,
    train_gcn: &[f32],
    opts: &PrepareOptions,
    cache_dir: Option<&Path>,
) -> Result<(Zca, bool)> {
    let n = train.len();
    let Some(cache_dir) = cache_dir else {
        return Ok((zca_fit(train_gcn, n, IMAGE_BYTES, opts.zca_epsilon)?, false));
    };
    let (key, path) = cache_key(train, opts, cache_dir);
    if path.is_file() {
        // A stale, damaged or unverifiable cache file is not an error: it is refitted and
        // replaced. It is said, though: a cache that changed under us is worth knowing about.
        match load_cache(&path, &key) {
            Ok(zca) => return Ok((zca, true)),
            Err(e) => crate::note(format_args!("warning: {e}; refitting the ZCA statistics")),
        }
    }
    let zca = zca_fit(train_gcn, n, IMAGE_BYTES, opts.zca_epsilon)?;
    save_cache(cache_dir, &path, &key, &zca)?;
    Ok((zca, false))
}

/// The cache key and file of a fit. The key covers the exact training bytes the statistics
/// come from (so subset and validation split are part of it) and every parameter of the fit.
fn cache_key(train: &RawSplit, opts: &PrepareOptions, cache_dir: &Path) -> (String, PathBuf) {
    let data_md5 = format!("{:x}", Md5::digest(&train.images));
    let key = format!(
        "{CACHE_VERSION};dataset={};train_images_md5={data_md5};n={};validation={};\
         train_subset={:?};gcn_scale={:?};zca_epsilon={:?}",
        opts.dataset.name(),
        train.len(),
        opts.validation,
        opts.train_subset,
        opts.gcn_scale,
        opts.zca_epsilon
    );
    let key_md5 = format!("{:x}", Md5::digest(key.as_bytes()));
    (key, cache_dir.join(format!("zca-{key_md5}.safetensors")))
}

/// The file in `cache_dir` that holds (or would hold) the ZCA fit `prepare` makes for `data`
/// and `opts`: it changes with the training images used and every fit parameter, not with
/// `test_subset`.
pub fn zca_cache_file(
    data: &RawDataset,
    opts: &PrepareOptions,
    cache_dir: &Path,
) -> Result<PathBuf> {
    let (train, _, _) = split_parts(data, opts)?;
    Ok(cache_key(&train, opts, cache_dir).1)
}

/// Metadata entry holding [`tensors_md5`] of the stored tensors.
const CHECKSUM_KEY: &str = "tensors_md5";

/// md5 of the little-endian bytes of `mean`, then of `w`: the header of a safetensors file
/// checks shapes and offsets, nothing checks the values, so altered bytes inside the tensors
/// would otherwise be loaded as a different whitening without notice.
fn tensors_md5(mean: &[u8], w: &[u8]) -> String {
    let mut hasher = Md5::new();
    hasher.update(mean);
    hasher.update(w);
    format!("{:x}", hasher.finalize())
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn save_cache(cache_dir: &Path, path: &Path, key: &str, zca: &Zca) -> Result<()> {
    let cache_err = |reason: String| CifarError::Cache {
        path: path.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(cache_dir).map_err(|e| CifarError::io(cache_dir, e))?;
    let mean = f32_bytes(&zca.mean);
    let w = f32_bytes(&zca.w);
    let views = [
        (
            "mean",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![zca.dim], &mean),
        ),
        (
            "w",
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![zca.dim, zca.dim],
                &w,
            ),
        ),
    ];
    let views: Vec<_> = views
        .into_iter()
        .map(|(name, view)| view.map(|v| (name, v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| cache_err(e.to_string()))?;
    let metadata = HashMap::from([
        ("key".to_string(), key.to_string()),
        (CHECKSUM_KEY.to_string(), tensors_md5(&mean, &w)),
    ]);
    // Written under a temporary name and renamed, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .map_err(|e| cache_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| CifarError::io(path, e))
}

fn load_cache(path: &Path, key: &str) -> Result<Zca> {
    let cache_err = |reason: String| CifarError::Cache {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| CifarError::io(path, e))?;
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| cache_err(e.to_string()))?;
    let stored = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get("key"))
        .cloned()
        .unwrap_or_default();
    if stored != key {
        return Err(cache_err(format!("key {stored:?} differs from {key:?}")));
    }
    let tensors =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| cache_err(e.to_string()))?;
    // Caches written before the checksum existed have none: they cannot be verified either.
    let Some(stored_md5) = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKSUM_KEY))
        .cloned()
    else {
        return Err(cache_err(format!(
            "no {CHECKSUM_KEY} in the metadata (written by an older version), so its tensors \
             cannot be verified"
        )));
    };
    let bytes_of = |name: &str, shape: &[usize]| -> Result<&[u8]> {
        let view = tensors.tensor(name).map_err(|e| cache_err(e.to_string()))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape() != shape {
            return Err(cache_err(format!(
                "tensor {name}: {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        Ok(view.data())
    };
    let mean = bytes_of("mean", &[IMAGE_BYTES])?;
    let w = bytes_of("w", &[IMAGE_BYTES, IMAGE_BYTES])?;
    let actual_md5 = tensors_md5(mean, w);
    if actual_md5 != stored_md5 {
        return Err(cache_err(format!(
            "the tensors' md5 is {actual_md5}, the file's metadata says {stored_md5}: the file \
             was altered after it was written"
        )));
    }
    let floats = |bytes: &[u8]| -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    Ok(Zca {
        dim: IMAGE_BYTES,
        mean: floats(mean),
        w: floats(w),
    })
}
