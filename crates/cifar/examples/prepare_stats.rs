//! Loads a CIFAR-10 folder, checks it against the official md5 sums, prints its per-channel
//! statistics and label counts, and prepares it (statistics fitted on the training part only)
//! as a trainer would.
//!
//! ```sh
//! cargo run --release -p allconv-cifar --example prepare_stats -- [DATA_DIR] [--preprocessing scale|standardize|gcn_zca] [--validation N] [--write-synthetic]
//! ```
//!
//! Without `DATA_DIR` a small synthetic set is written to a temporary folder first; with
//! `--write-synthetic` it is written to `DATA_DIR`, which must not exist yet. The default
//! preprocessing is the paper's `gcn_zca` (docs/protocol.md, Preprocessing), whose fit takes
//! seconds to tens of seconds; `standardize` is instant.

use std::path::PathBuf;

use allconv_cifar::{
    channel_stats, label_counts, load_dir, prepare, verify_checksums, write_synthetic_dir,
    PrepareOptions, CLASS_NAMES, OFFICIAL_MD5,
};

const USAGE: &str = "usage: prepare_stats [DATA_DIR] [--preprocessing scale|standardize|gcn_zca] \
                     [--validation N] [--write-synthetic]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir: Option<PathBuf> = None;
    let mut options = PrepareOptions::default();
    let mut write_synthetic = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--preprocessing" => options.preprocessing = args.next().ok_or(USAGE)?.parse()?,
            "--validation" => options.validation = args.next().ok_or(USAGE)?.parse()?,
            "--write-synthetic" => write_synthetic = true,
            flag if flag.starts_with('-') => {
                return Err(format!("unknown flag {flag}\n{USAGE}").into())
            }
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            _ => return Err(USAGE.into()),
        }
    }
    // Kept alive until the end of main: dropping it deletes the temporary folder.
    let temporary = tempfile::tempdir()?;
    let dir = match dir {
        Some(dir) if write_synthetic => {
            if dir.exists() {
                return Err(format!(
                    "{} exists; --write-synthetic only creates a new folder",
                    dir.display()
                )
                .into());
            }
            write_synthetic_dir(&dir, 200, 200, 0)?;
            dir
        }
        Some(dir) => dir,
        None => {
            write_synthetic_dir(temporary.path(), 200, 200, 0)?;
            println!(
                "no DATA_DIR given: synthetic data in {}",
                temporary.path().display()
            );
            temporary.path().to_path_buf()
        }
    };

    let data = load_dir(&dir)?;
    let official = verify_checksums(&dir, OFFICIAL_MD5).is_ok();
    println!(
        "{}: {} training and {} test images ({})",
        dir.display(),
        data.train.len(),
        data.test.len(),
        if official {
            "the official files"
        } else {
            "not the official files"
        }
    );
    for (name, split) in [("train", &data.train), ("test", &data.test)] {
        let stats = channel_stats(split);
        println!(
            "{name:5} mean R,G,B {:.3} {:.3} {:.3}  std {:.3} {:.3} {:.3}",
            stats.mean[0], stats.mean[1], stats.mean[2], stats.std[0], stats.std[1], stats.std[2]
        );
    }
    for (class, count) in CLASS_NAMES.iter().zip(label_counts(&data.train.labels)) {
        println!("  {class:10} {count}");
    }

    let prepared = prepare(&data, &options, None)?;
    let mean = |values: &[f32]| {
        values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64
    };
    println!(
        "{}: {} train / {} validation / {} test images; mean value of the prepared training images {:.2e}",
        options.preprocessing,
        prepared.train.len(),
        prepared.validation.len(),
        prepared.test.len(),
        mean(&prepared.train.images)
    );
    Ok(())
}
