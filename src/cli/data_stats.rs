//! `allconv data stats`: what a data folder holds, per file as stored (a truncated or hand-made
//! copy's files differ in size): md5 sums, label counts, and the per-channel statistics of the
//! training and test images.

use std::path::Path;

use allconv_cifar::{channel_stats, RawSplit};
use allconv_runs::outln;
use anyhow::Context;

/// The statistics of a CIFAR-10 folder, with its md5 sums checked against the official ones.
pub fn cifar10(dir: &Path) -> anyhow::Result<()> {
    let files = allconv_cifar::load_dir_files(dir)
        .with_context(|| format!("reading CIFAR-10 from {}", dir.display()))?;
    let sums = allconv_cifar::checksums(dir)
        .with_context(|| format!("md5 of the files in {}", dir.display()))?;
    outln!("folder: {}", dir.display());
    let mut official = true;
    for (name, expected) in allconv_cifar::OFFICIAL_MD5 {
        let actual = sums.get(name).map(String::as_str).unwrap_or("?");
        let verdict = if actual == expected {
            "ok"
        } else {
            official = false;
            "differs from the official file"
        };
        outln!("  {name}  md5 {actual}  {verdict}");
    }
    if !official {
        outln!("  (not the official data set: statistics below are of these files)");
    }
    let label_counts: Vec<Vec<usize>> = files
        .train
        .iter()
        .map(|part| counts(&part.labels, 10))
        .collect();
    let data = files.into_cifar10();
    outln!(
        "images: {} training, {} test",
        data.train.len(),
        data.test.len()
    );
    for (name, counts) in allconv_cifar::TRAIN_FILES.iter().zip(&label_counts) {
        outln!("  label counts {name}: {counts:?}");
    }
    outln!(
        "  label counts {}: {:?}",
        allconv_cifar::TEST_FILE,
        counts(&data.test.labels, 10)
    );
    print_channel_stats(&data.train, &data.test);
    Ok(())
}

/// The statistics of a CIFAR-100 folder: its files' md5 (no per-file table is published to
/// check them against), and the counts of both label sets.
pub fn cifar100(dir: &Path) -> anyhow::Result<()> {
    use allconv_cifar::{CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, COARSE_CLASSES, FINE_CLASSES};
    let read = |name: &str| {
        allconv_cifar::read_cifar100_split(&dir.join(name))
            .with_context(|| format!("reading CIFAR-100 from {}", dir.display()))
    };
    let (train, test) = (read(CIFAR100_TRAIN_FILE)?, read(CIFAR100_TEST_FILE)?);
    let sums = allconv_cifar::dataset_checksums(allconv_cifar::DatasetKind::Cifar100Fine, dir)
        .with_context(|| format!("md5 of the files in {}", dir.display()))?;
    outln!("folder: {}", dir.display());
    for (name, md5) in &sums {
        outln!("  {name}  md5 {md5}");
    }
    outln!("  (CIFAR-100 publishes no md5 per file: these are not checked)");
    outln!("images: {} training, {} test", train.len(), test.len());
    for (name, split) in [(CIFAR100_TRAIN_FILE, &train), (CIFAR100_TEST_FILE, &test)] {
        outln!(
            "  coarse label counts {name}: {:?}",
            counts(&split.coarse, COARSE_CLASSES)
        );
        outln!(
            "  fine label counts {name}: {:?}",
            counts(&split.fine, FINE_CLASSES)
        );
    }
    print_channel_stats(&train.with_labels(false), &test.with_labels(false));
    Ok(())
}

/// How many of `labels` are each of `0..classes` (every label read was checked to be below).
fn counts(labels: &[u8], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &label in labels {
        if let Some(c) = counts.get_mut(usize::from(label)) {
            *c += 1;
        }
    }
    counts
}

/// Per-channel mean and population std of the training and test images, the values aligned.
fn print_channel_stats(train: &RawSplit, test: &RawSplit) {
    outln!("per-channel statistics, 0-255 scale, population std (R, G, B):");
    for (name, split) in [("train", train), ("test", test)] {
        let stats = channel_stats(split);
        for (what, [r, g, b]) in [("mean", stats.mean), ("std", stats.std)] {
            outln!("  {:<12}{r} {g} {b}", format!("{name} {what}:"));
        }
    }
}
