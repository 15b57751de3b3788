//! The file a ZCA fit is kept in: keyed by the training bytes and every fit parameter, its
//! tensors checksummed, refitted when stale or altered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::options::PrepareOptions;
use super::split::split_parts;
use super::zca::{zca_fit, Zca};
use crate::format::{RawDataset, RawSplit, IMAGE_BYTES};
use crate::{CifarError, Result};

/// The cache folder used next to a data folder: `<data dir>/../cache`.
pub fn default_cache_dir(data_dir: &Path) -> PathBuf {
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join("cache")
}

/// Format version of the cache file; bump it when the fit or the file layout changes. (Adding
/// the tensors' checksum did not bump it: a cache without one keeps its file name and is
/// refitted in place rather than left behind under an old name.)
const CACHE_VERSION: &str = "zca-v1";

pub(super) fn fit_or_load(
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
pub(super) fn tensors_md5(mean: &[u8], w: &[u8]) -> String {
    let mut hasher = Md5::new();
    hasher.update(mean);
    hasher.update(w);
    format!("{:x}", hasher.finalize())
}

pub(super) fn f32_bytes(values: &[f32]) -> Vec<u8> {
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
