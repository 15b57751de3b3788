//! The official CIFAR-100 binary layout `cifar-100-binary/`: `train.bin` (50,000 records),
//! `test.bin` (10,000), `fine_label_names.txt`, `coarse_label_names.txt`. A record is 3,074 bytes:
//! the coarse label (0-19), the fine label (0-99), then the image as in CIFAR-10 (R, G, B planes,
//! each row-major 32x32). Read strictly (size, both labels of every record), written for tests.

use std::path::Path;

use crate::format::{RawDataset, RawSplit, IMAGE_BYTES};
use crate::layout::{
    binary_files, require_binary_files, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE,
    COARSE_LABEL_NAMES, FINE_LABEL_NAMES,
};
use crate::{CifarError, Result};
use allconv_vocab::{Dataset, DatasetKind, LabelSet};

/// Bytes of one record: coarse label, fine label, image.
pub const CIFAR100_RECORD_BYTES: usize = 2 + IMAGE_BYTES;
/// Number of fine classes.
pub const FINE_CLASSES: usize = DatasetKind::Cifar100Fine.num_classes();
/// Number of coarse classes (superclasses).
pub const COARSE_CLASSES: usize = DatasetKind::Cifar100Coarse.num_classes();

/// md5 (lower-case hex) of the binary files of `kind`'s data set in `dir`, keyed by file name.
pub fn dataset_checksums(
    kind: DatasetKind,
    dir: &Path,
) -> Result<std::collections::BTreeMap<String, String>> {
    match kind.dataset() {
        Dataset::Cifar10 => crate::checksums(dir),
        Dataset::Cifar100 => {
            require_binary_files(dir, Dataset::Cifar100)?;
            let mut sums = std::collections::BTreeMap::new();
            for name in binary_files(Dataset::Cifar100) {
                sums.insert(name.to_string(), crate::format::md5_file(&dir.join(name))?);
            }
            Ok(sums)
        }
    }
}

/// Loads `kind`'s data set from `dir` in its official layout ([`crate::load_dir`] for
/// CIFAR-10, [`load_cifar100_dir`] with the matching labels for CIFAR-100).
pub fn load_dataset(kind: DatasetKind, dir: &Path) -> Result<RawDataset> {
    match kind.labels() {
        None => crate::load_dir(dir),
        Some(labels) => load_cifar100_dir(dir, labels == LabelSet::Coarse),
    }
}

/// Images with both CIFAR-100 labels, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cifar100Split {
    /// `N * 3072` bytes, CHW per image.
    pub images: Vec<u8>,
    /// `N` coarse labels, each 0-19.
    pub coarse: Vec<u8>,
    /// `N` fine labels, each 0-99.
    pub fine: Vec<u8>,
}

impl Cifar100Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.fine.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.fine.is_empty()
    }

    /// The images with the coarse (`true`) or fine labels, as a [`RawSplit`].
    pub fn with_labels(self, coarse: bool) -> RawSplit {
        RawSplit {
            images: self.images,
            labels: if coarse { self.coarse } else { self.fine },
        }
    }

    fn check_labels(&self, path: &Path) -> Result<()> {
        for (record, (&coarse, &fine)) in self.coarse.iter().zip(&self.fine).enumerate() {
            for (which, label, classes) in [
                ("coarse", coarse, COARSE_CLASSES),
                ("fine", fine, FINE_CLASSES),
            ] {
                if usize::from(label) >= classes {
                    return Err(CifarError::BadCifar100Label {
                        path: path.into(),
                        record,
                        which,
                        label,
                        max: (classes - 1) as u8,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Reads one CIFAR-100 `.bin` file after checking its size and both labels of every record;
/// nothing is returned unless the whole file is valid.
pub fn read_cifar100_split(path: &Path) -> Result<Cifar100Split> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || path.is_dir() => {
            return Err(CifarError::MissingCifar100File { path: path.into() })
        }
        Err(e) => return Err(CifarError::io(path, e)),
    };
    if data.is_empty() || data.len() % CIFAR100_RECORD_BYTES != 0 {
        return Err(CifarError::BadCifar100Size {
            path: path.into(),
            bytes: data.len() as u64,
        });
    }
    let records = data.len() / CIFAR100_RECORD_BYTES;
    let mut split = Cifar100Split {
        images: Vec::with_capacity(records * IMAGE_BYTES),
        coarse: Vec::with_capacity(records),
        fine: Vec::with_capacity(records),
    };
    for chunk in data.chunks_exact(CIFAR100_RECORD_BYTES) {
        split.coarse.push(chunk[0]);
        split.fine.push(chunk[1]);
        split.images.extend_from_slice(&chunk[2..]);
    }
    split.check_labels(path)?;
    Ok(split)
}

/// Loads `dir` (the `cifar-100-binary` layout) with the coarse (`true`) or fine labels; both
/// files are checked to exist before either is read.
pub fn load_cifar100_dir(dir: &Path, coarse: bool) -> Result<RawDataset> {
    require_binary_files(dir, Dataset::Cifar100)?;
    Ok(RawDataset {
        train: read_cifar100_split(&dir.join(CIFAR100_TRAIN_FILE))?.with_labels(coarse),
        test: read_cifar100_split(&dir.join(CIFAR100_TEST_FILE))?.with_labels(coarse),
    })
}

/// Writes `split` as one CIFAR-100 `.bin` file; labels are checked first and an empty split is
/// refused (a reader could not tell it from a truncated file).
pub fn write_cifar100_split(path: &Path, split: &Cifar100Split) -> Result<()> {
    let n = split.len();
    if split.coarse.len() != n || split.images.len() != n * IMAGE_BYTES {
        return Err(CifarError::Inconsistent {
            what: path.display().to_string(),
            images: split.images.len(),
            labels: n,
        });
    }
    split.check_labels(path)?;
    if n == 0 {
        return Err(CifarError::InvalidOption {
            option: "split",
            reason: format!("refusing to write {} with no record", path.display()),
        });
    }
    let mut out = Vec::with_capacity(n * CIFAR100_RECORD_BYTES);
    for i in 0..n {
        out.push(split.coarse[i]);
        out.push(split.fine[i]);
        out.extend_from_slice(&split.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]);
    }
    std::fs::write(path, out).map_err(|e| CifarError::io(path, e))
}

/// A synthetic CIFAR-100 split of `n` images: the images of [`crate::synthetic_split`] (ten
/// learnable patterns, balanced), the `k`-th image of pattern `p` getting fine label
/// `10 * (k % 10) + p` (so with `n` a multiple of 100 every fine class occurs `n / 100` times)
/// and coarse label `fine / 5`, the official grouping's shape (five fine classes per superclass)
/// though not its assignment. Only the pattern is learnable from the pixels.
pub fn synthetic_cifar100_split(n: usize, seed: u64, stream: u64) -> Cifar100Split {
    let base = crate::synthetic_split(n, seed, stream);
    let mut seen = [0usize; 10];
    let fine: Vec<u8> = base
        .labels
        .iter()
        .map(|&pattern| {
            let k = &mut seen[usize::from(pattern)];
            let block = (*k % 10) as u8;
            *k += 1;
            block * 10 + pattern
        })
        .collect();
    Cifar100Split {
        images: base.images,
        coarse: fine.iter().map(|&f| f / 5).collect(),
        fine,
    }
}

/// Writes a synthetic data set in the official CIFAR-100 layout into `dir` (created if needed):
/// `train.bin` with `train` images, `test.bin` with `test`, and placeholder label-name files
/// (`fine_00` .. `fine_99`, `coarse_00` .. `coarse_19`).
pub fn write_synthetic_cifar100_dir(
    dir: &Path,
    train: usize,
    test: usize,
    seed: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CifarError::io(dir, e))?;
    write_cifar100_split(
        &dir.join(CIFAR100_TRAIN_FILE),
        &synthetic_cifar100_split(train, seed, 0),
    )?;
    write_cifar100_split(
        &dir.join(CIFAR100_TEST_FILE),
        &synthetic_cifar100_split(test, seed, 1),
    )?;
    for (name, prefix, count) in [
        (FINE_LABEL_NAMES, "fine", FINE_CLASSES),
        (COARSE_LABEL_NAMES, "coarse", COARSE_CLASSES),
    ] {
        let text: String = (0..count).map(|k| format!("{prefix}_{k:02}\n")).collect();
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| CifarError::io(&path, e))?;
    }
    Ok(())
}
