//! Writing a smaller copy of a data folder (CIFAR-10 or CIFAR-100) without ever overwriting a
//! folder this crate did not write as a subset: the target must be absent, empty, or an earlier
//! subset of the same data set (recognised by its marker file), and is never the source folder,
//! a copy of the protected CIFAR-10 files or a full-size CIFAR-100.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use allconv_vocab::Dataset;

use crate::cifar100::{
    read_cifar100_split, write_cifar100_split, Cifar100Split, CIFAR100_RECORD_BYTES,
};
use crate::format::{load_dir_files, verify_checksums, write_split_dir, RawDataset, OFFICIAL_MD5};
use crate::layout::{
    CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, COARSE_LABEL_NAMES, FINE_LABEL_NAMES,
};
use crate::{CifarError, Result};

/// The marker file a subset folder carries; its presence (with [`SUBSET_WRITER`] inside) is what
/// allows a later subset to replace the folder.
pub const SUBSET_MARKER: &str = "allconv-subset.json";
/// The `written_by` value of [`SUBSET_MARKER`].
pub const SUBSET_WRITER: &str = "allconv data subset";

/// What a subset holds and which folders it may never be written over.
#[derive(Clone, Debug)]
pub struct SubsetOptions {
    /// Images taken from the start of each training file (CIFAR-10 has five, CIFAR-100 one).
    pub per_train_file: usize,
    /// Images taken from the start of the test file.
    pub test: usize,
    /// `(file name, md5)` of a data set that is never overwritten, whatever marker its folder
    /// holds; [`SubsetOptions::new`] sets the official CIFAR-10 sums ([`OFFICIAL_MD5`]).
    pub protected_md5: Vec<(String, String)>,
}

impl SubsetOptions {
    /// The first `per_train_file` images of every training file and the first `test` test
    /// images, never written over the official data.
    pub fn new(per_train_file: usize, test: usize) -> Self {
        SubsetOptions {
            per_train_file,
            test,
            protected_md5: OFFICIAL_MD5
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
        }
    }
}

/// The content of [`SUBSET_MARKER`].
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    written_by: String,
    /// Which data set it is a subset of (subsets written before the key are CIFAR-10's).
    #[serde(default)]
    dataset: Dataset,
    source: PathBuf,
    per_train_file: usize,
    test: usize,
    /// False while the files are being written: an interrupted subset stays recognisable as
    /// ours (and replaceable) but says it is incomplete.
    complete: bool,
}

/// Writes the subset of `source` described by `opts` into `target` (the official layout, plus
/// [`SUBSET_MARKER`]) and returns it. Refused, before anything is written, when `target` is
/// `source`, holds the protected data set, or is a non-empty folder without the marker.
pub fn write_subset_dir(source: &Path, target: &Path, opts: &SubsetOptions) -> Result<RawDataset> {
    check_target(source, target, opts, Dataset::Cifar10)?;
    let subset = load_dir_files(source)?.subset(opts.per_train_file, opts.test)?;
    write_marked(source, target, opts, Dataset::Cifar10, || {
        write_split_dir(target, &subset)
    })?;
    Ok(subset)
}

/// The CIFAR-100 counterpart of [`write_subset_dir`]: the first `opts.per_train_file` records
/// of `train.bin` and the first `opts.test` of `test.bin` (both labels of each kept), with the
/// label-name files when the source has them; the same refusals. Returns (train, test).
pub fn write_cifar100_subset_dir(
    source: &Path,
    target: &Path,
    opts: &SubsetOptions,
) -> Result<(Cifar100Split, Cifar100Split)> {
    check_target(source, target, opts, Dataset::Cifar100)?;
    let first = |name: &str, n: usize, option: &'static str| -> Result<Cifar100Split> {
        let all = read_cifar100_split(&source.join(name))?;
        if n == 0 || n > all.len() {
            return Err(CifarError::InvalidOption {
                option,
                reason: format!("expected 1..={} images from {name}, got {n}", all.len()),
            });
        }
        Ok(Cifar100Split {
            images: all.images[..n * crate::IMAGE_BYTES].to_vec(),
            coarse: all.coarse[..n].to_vec(),
            fine: all.fine[..n].to_vec(),
        })
    };
    let train = first(CIFAR100_TRAIN_FILE, opts.per_train_file, "per_train_file")?;
    let test = first(CIFAR100_TEST_FILE, opts.test, "test")?;
    write_marked(source, target, opts, Dataset::Cifar100, || {
        write_cifar100_split(&target.join(CIFAR100_TRAIN_FILE), &train)?;
        write_cifar100_split(&target.join(CIFAR100_TEST_FILE), &test)?;
        for name in [FINE_LABEL_NAMES, COARSE_LABEL_NAMES] {
            let from = source.join(name);
            if from.is_file() {
                std::fs::copy(&from, target.join(name)).map_err(|e| CifarError::io(&from, e))?;
            }
        }
        Ok(())
    })?;
    Ok((train, test))
}

/// Creates `target` and writes the files with `write` between an incomplete and a complete
/// marker.
fn write_marked(
    source: &Path,
    target: &Path,
    opts: &SubsetOptions,
    dataset: Dataset,
    write: impl FnOnce() -> Result<()>,
) -> Result<()> {
    std::fs::create_dir_all(target).map_err(|e| CifarError::io(target, e))?;
    let source_shown = source
        .canonicalize()
        .unwrap_or_else(|_| source.to_path_buf());
    let mut marker = Marker {
        written_by: SUBSET_WRITER.to_string(),
        dataset,
        source: source_shown,
        per_train_file: opts.per_train_file,
        test: opts.test,
        complete: false,
    };
    // The marker goes first, so a subset interrupted half-way can still be replaced.
    write_marker(target, &marker)?;
    write()?;
    marker.complete = true;
    write_marker(target, &marker)
}

/// Whether `dir` holds a full-size CIFAR-100 (50,000 training and 10,000 test records): the
/// data set itself, never a subset's place, marked or not. (CIFAR-100 has no published
/// per-file checksums to recognise it by.)
fn holds_full_cifar100(dir: &Path) -> bool {
    let records = |name: &str| {
        std::fs::metadata(dir.join(name)).map_or(0, |m| m.len() / CIFAR100_RECORD_BYTES as u64)
    };
    records(CIFAR100_TRAIN_FILE) >= 50_000 && records(CIFAR100_TEST_FILE) >= 10_000
}

fn refused(target: &Path, reason: impl Into<String>) -> CifarError {
    CifarError::SubsetTargetRefused {
        dir: target.to_path_buf(),
        reason: reason.into(),
    }
}

fn check_target(
    source: &Path,
    target: &Path,
    opts: &SubsetOptions,
    dataset: Dataset,
) -> Result<()> {
    let entries = match std::fs::read_dir(target) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if target.exists() => return Err(refused(target, "it is not a folder")),
        Err(e) => return Err(CifarError::io(target, e)),
    };
    if let (Ok(s), Ok(t)) = (source.canonicalize(), target.canonicalize()) {
        if s == t {
            return Err(refused(target, "it is the source folder"));
        }
    }
    if entries.into_iter().next().is_none() {
        return Ok(());
    }
    if !opts.protected_md5.is_empty()
        && verify_checksums(target, opts.protected_md5.iter().map(|(f, m)| (f, m))).is_ok()
    {
        return Err(refused(
            target,
            "it holds the official data set (all six md5 sums match)",
        ));
    }
    if holds_full_cifar100(target) {
        return Err(refused(
            target,
            "it holds a full-size CIFAR-100 (50,000 training and 10,000 test records)",
        ));
    }
    match read_marker(target) {
        Some(marker) if marker.dataset == dataset => Ok(()),
        Some(marker) => Err(refused(
            target,
            format!(
                "it holds a subset of {}, not of {}; pick another --out",
                marker.dataset.title(),
                dataset.title()
            ),
        )),
        None => Err(refused(
            target,
            format!(
                "it is not empty and holds no {SUBSET_MARKER} from an earlier subset; \
                 move it away or pick another --out"
            ),
        )),
    }
}

fn read_marker(dir: &Path) -> Option<Marker> {
    let text = std::fs::read(dir.join(SUBSET_MARKER)).ok()?;
    serde_json::from_slice::<Marker>(&text)
        .ok()
        .filter(|m| m.written_by == SUBSET_WRITER)
}

fn write_marker(dir: &Path, marker: &Marker) -> Result<()> {
    let path = dir.join(SUBSET_MARKER);
    let mut text = serde_json::to_vec_pretty(marker)
        .map_err(|e| CifarError::other(&path, format!("encoding: {e}")))?;
    text.push(b'\n');
    std::fs::write(&path, text).map_err(|e| CifarError::io(&path, e))
}
