//! `prepare` and `prepare_test`: the splits cut, the statistics fitted on the training part (or
//! loaded from the cache), and the splits normalised with them.

use std::path::Path;

use md5::{Digest, Md5};

use super::cache::{f32_bytes, fit_or_load, tensors_md5};
use super::normalize::{gcn, standardize};
use super::options::{PrepareOptions, Preprocessing};
use super::split::split_parts;
use crate::format::{Cifar10, RawSplit, IMAGE_BYTES};
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
    data: &Cifar10,
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
    data: &Cifar10,
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
    data: &Cifar10,
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
