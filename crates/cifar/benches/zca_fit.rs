//! Times the `gcn_zca` preprocessing on the real 50,000 training images: the first fit (empty
//! cache) and the second call that loads the cached statistics. Not a test: it prints timings.
//!
//! `cargo bench -p allconv-cifar --bench zca_fit` (needs `allconv data fetch` first; the data
//! folder is `cifar-10-batches-bin` in the data root, `$ALLCONV_DATA` or `data`; a relative
//! root is taken from the workspace).

use std::path::PathBuf;
use std::time::Instant;

use allconv_cifar::{
    default_data_dir, gcn, load_dir, prepare, zca_fit, Dataset, PrepareOptions, RawDataset,
    IMAGE_BYTES,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(default_data_dir(Dataset::Cifar10));
    let t = Instant::now();
    let data = load_dir(&dir)?;
    println!(
        "load_dir: {:.2} s ({} train, {} test images)",
        t.elapsed().as_secs_f64(),
        data.train.len(),
        data.test.len()
    );
    let opts = PrepareOptions::default();
    time_each_step(&data, &opts)?;
    time_prepare_with_cache(&data, &opts)
}

/// GCN, the fit, its application, and the fit on fewer images (both paths of the fit).
fn time_each_step(
    data: &RawDataset,
    opts: &PrepareOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let g = gcn(&data.train.images, IMAGE_BYTES, opts.gcn_scale);
    println!(
        "gcn (50,000 train images): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let zca = zca_fit(&g, data.train.len(), IMAGE_BYTES, opts.zca_epsilon)?;
    println!(
        "zca_fit alone (mean, covariance, eigendecomposition, W): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let y = zca.apply(&g);
    println!(
        "zca apply to 50,000 images: {:.2} s ({} values)",
        t.elapsed().as_secs_f64(),
        y.len()
    );
    drop((y, zca));
    // On 4,000 images (still more than 3,072 dimensions, so the same code path) the covariance
    // is cheap: what is left is the N-independent part of the fit (eigendecomposition of the
    // 3072x3072 covariance, then W = U D U^T).
    let t = Instant::now();
    zca_fit(
        &g[..4000 * IMAGE_BYTES],
        4000,
        IMAGE_BYTES,
        opts.zca_epsilon,
    )?;
    println!(
        "zca_fit on 4,000 images (mostly eigendecomposition + W): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // Fewer images than dimensions go through the n x n Gram matrix instead.
    let t = Instant::now();
    zca_fit(
        &g[..1000 * IMAGE_BYTES],
        1000,
        IMAGE_BYTES,
        opts.zca_epsilon,
    )?;
    println!(
        "zca_fit on 1,000 images (Gram-matrix path, n < 3072): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(g);
    Ok(())
}

/// `prepare` twice: the first call fits and writes the cache, the second loads it.
fn time_prepare_with_cache(
    data: &RawDataset,
    opts: &PrepareOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let cache = std::env::temp_dir().join(format!("allconv-zca-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let t = Instant::now();
    let first = prepare(data, opts, Some(&cache))?;
    println!(
        "prepare gcn_zca, first call (fit + write cache + apply to train and test): {:.2} s, from_cache={}",
        t.elapsed().as_secs_f64(),
        first.from_cache
    );
    drop(first);
    let t = Instant::now();
    let second = prepare(data, opts, Some(&cache))?;
    println!(
        "prepare gcn_zca, second call (load cache + apply to train and test): {:.2} s, from_cache={}",
        t.elapsed().as_secs_f64(),
        second.from_cache
    );
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
