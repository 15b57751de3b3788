//! `prepare` and `prepare_test`: the splits cut, the statistics fitted on the training part (or
//! loaded from the cache), and the splits normalised with them.

use std::path::Path;

use md5::{Digest, Md5};

use super::cache::{f32_bytes, fit_or_load, tensors_md5};
use super::normalize::{gcn, standardize};
use super::options::{PrepareOptions, Preprocessing};
use super::split::split_parts;
use crate::format::{RawDataset, RawSplit, IMAGE_BYTES};
use crate::stats::channel_stats;
use crate::{CifarError, Result};

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

/// Cuts the splits, fits (or loads) the statistics on the training part and normalises the
/// splits `parts` names; the others are left empty.
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
    let normalized = match opts.preprocessing {
        Preprocessing::Scale => scaled(&train, &validation, &test, all),
        Preprocessing::Standardize => standardized(&train, &validation, &test, all),
        Preprocessing::GcnZca => whitened(&train, &validation, &test, all, opts, cache_dir)?,
    };
    Ok(Prepared {
        train: Split {
            images: normalized.train,
            labels: if all { train.labels } else { Vec::new() },
        },
        validation: Split {
            images: normalized.validation,
            labels: validation.labels,
        },
        test: Split {
            images: normalized.test,
            labels: test.labels,
        },
        from_cache: normalized.from_cache,
        statistics_md5: normalized.statistics_md5,
    })
}

/// The normalised images of the three splits (the training split's empty unless it was asked
/// for) and what they were normalised with.
struct Normalized {
    train: Vec<f32>,
    validation: Vec<f32>,
    test: Vec<f32>,
    /// See [`Prepared::from_cache`].
    from_cache: bool,
    /// See [`Prepared::statistics_md5`].
    statistics_md5: String,
}

/// `scale`: every byte divided by 255; no statistics (their md5 is that of nothing).
fn scaled(train: &RawSplit, validation: &RawSplit, test: &RawSplit, all: bool) -> Normalized {
    let f = |s: &RawSplit| s.images.iter().map(|&v| f32::from(v) / 255.0).collect();
    Normalized {
        train: if all { f(train) } else { Vec::new() },
        validation: f(validation),
        test: f(test),
        from_cache: false,
        statistics_md5: format!("{:x}", Md5::digest(b"")),
    }
}

/// `standardize`: the training part's per-channel mean and deviation applied to every split.
fn standardized(train: &RawSplit, validation: &RawSplit, test: &RawSplit, all: bool) -> Normalized {
    let stats = channel_stats(train);
    let bytes: Vec<u8> = (stats.mean.iter().chain(&stats.std))
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = |s: &RawSplit| standardize(&s.images, &stats.mean, &stats.std);
    Normalized {
        train: if all { f(train) } else { Vec::new() },
        validation: f(validation),
        test: f(test),
        from_cache: false,
        statistics_md5: format!("{:x}", Md5::digest(&bytes)),
    }
}

/// `gcn_zca`: GCN on every image, then the ZCA fitted on the training part (or loaded from the
/// cache in `cache_dir`).
fn whitened(
    train: &RawSplit,
    validation: &RawSplit,
    test: &RawSplit,
    all: bool,
    opts: &PrepareOptions,
    cache_dir: Option<&Path>,
) -> Result<Normalized> {
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
    let (zca, from_cache) = fit_or_load(train, &train_g, opts, cache_dir)?;
    let apply_raw = |s: &RawSplit| zca.apply(&gcn(&s.images, IMAGE_BYTES, opts.gcn_scale));
    Ok(Normalized {
        train: if all { zca.apply(&train_g) } else { Vec::new() },
        validation: apply_raw(validation),
        test: apply_raw(test),
        from_cache,
        statistics_md5: tensors_md5(&f32_bytes(&zca.mean), &f32_bytes(&zca.w)),
    })
}
