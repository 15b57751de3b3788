//! The official binary layout `cifar-10-batches-bin/`: reading with validation, writing, md5 sums.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::layout::{binary_files, require_binary_files, BATCHES_META, TEST_FILE, TRAIN_FILES};
use crate::{CifarError, Result};
use allconv_vocab::Dataset;

/// Bytes of one image: 1,024 red, 1,024 green, 1,024 blue, each plane row-major 32x32.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Records in each official file.
pub const RECORDS_PER_FILE: usize = 10_000;
/// Size of each official `.bin` file.
pub const FILE_BYTES: u64 = (RECORDS_PER_FILE * RECORD_BYTES) as u64;
/// Class names, by label.
pub const CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// The official md5 of every binary file, as published with the data set
/// (the same table as docs/protocol.md, Data); record these with every run.
pub const OFFICIAL_MD5: [(&str, &str); 6] = [
    ("data_batch_1.bin", "5dd7e06a14cb22eb9f671a540d1b7c25"),
    ("data_batch_2.bin", "5ea93a67294ea407fff1d09f752e9692"),
    ("data_batch_3.bin", "942cd6a4bcdd0dd3c604fbe906cb4421"),
    ("data_batch_4.bin", "ae636b3ba5c66a11e91e8cb52e771fcb"),
    ("data_batch_5.bin", "53f37980c15c3d472c316c40844f3f0d"),
    ("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),
];

/// Images and labels of one part of the data set, exactly as stored on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSplit {
    /// `N * 3072` bytes: per image the R, G, B planes, each row-major 32x32 (CHW).
    pub images: Vec<u8>,
    /// `N` labels, each 0-9.
    pub labels: Vec<u8>,
}

impl RawSplit {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 3,072 bytes of image `i` (CHW).
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// Images `range` as a new split.
    pub fn slice(&self, range: std::ops::Range<usize>) -> RawSplit {
        RawSplit {
            images: self.images[range.start * IMAGE_BYTES..range.end * IMAGE_BYTES].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }

    /// Checks that the buffers agree and every label is 0-9; `what` names the split in errors.
    pub fn validate(&self, what: &str) -> Result<()> {
        self.validate_classes(what, 10)
    }

    /// Checks that the buffers agree and every label is below `classes` (10 for CIFAR-10, 100
    /// or 20 for CIFAR-100); `what` names the split in errors (the file it was read from, when
    /// it is one file).
    pub fn validate_classes(&self, what: &str, classes: usize) -> Result<()> {
        check_image_count(what, self.images.len(), self.labels.len())?;
        let bad = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= classes);
        if let Some((record, &label)) = bad {
            return Err(if classes == 10 {
                CifarError::BadLabel {
                    path: PathBuf::from(what),
                    record,
                    label,
                }
            } else {
                CifarError::LabelOutOfRange {
                    path: PathBuf::from(what),
                    record,
                    label,
                    classes,
                }
            });
        }
        Ok(())
    }
}

/// Refuses image and label buffers that disagree (3,072 values per image, bytes or normalised
/// floats); `what` names the split in the error.
pub(crate) fn check_image_count(what: &str, image_values: usize, labels: usize) -> Result<()> {
    if image_values != labels * IMAGE_BYTES {
        return Err(CifarError::Inconsistent {
            what: what.to_string(),
            images: image_values,
            labels,
        });
    }
    Ok(())
}

/// A whole data set as stored, CIFAR-10 or CIFAR-100 (with one of its label sets): 50,000
/// training and 10,000 test images for the official files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawDataset {
    /// CIFAR-10: `data_batch_1.bin` .. `data_batch_5.bin`, concatenated in that order;
    /// CIFAR-100: `train.bin`.
    pub train: RawSplit,
    /// `test_batch.bin` (CIFAR-10) or `test.bin` (CIFAR-100).
    pub test: RawSplit,
}

/// The former name of [`RawDataset`], which holds CIFAR-100 data too.
#[deprecated(
    since = "0.1.0",
    note = "renamed `RawDataset`: it holds CIFAR-100 data too"
)]
pub type Cifar10 = RawDataset;

impl RawDataset {
    /// A smaller data set in the same layout from data whose five training files are equally
    /// long (as every official copy is): the first `per_train_file` images of each fifth of
    /// `train` and the first `test` test images. The concatenated `train` no longer says where
    /// one file ends, so for a folder whose files may differ in size use
    /// [`Cifar10Files::subset`] (from [`load_dir_files`]) instead.
    pub fn subset(&self, per_train_file: usize, test: usize) -> Result<RawDataset> {
        let files = TRAIN_FILES.len();
        let file_len = self.train.len() / files;
        if self.train.len() % files != 0 || per_train_file == 0 || per_train_file > file_len {
            return Err(CifarError::InvalidOption {
                option: "per_train_file",
                reason: format!(
                    "expected 1..={file_len} images from each of the {files} training files \
                     ({} training images), got {per_train_file}",
                    self.train.len()
                ),
            });
        }
        let parts: Vec<RawSplit> = (0..files)
            .map(|k| self.train.slice(k * file_len..(k + 1) * file_len))
            .collect();
        first_records(&parts, per_train_file, &self.test, test)
    }
}

/// A data set as its six files hold it: the training files are kept apart, so a folder whose
/// files differ in size (a truncated copy, a hand-made subset) is still described exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cifar10Files {
    /// `data_batch_1.bin` .. `data_batch_5.bin` ([`TRAIN_FILES`] order), each as stored.
    pub train: Vec<RawSplit>,
    /// `test_batch.bin`.
    pub test: RawSplit,
}

impl Cifar10Files {
    /// The training files concatenated in order, as [`load_dir`] returns them.
    pub fn into_cifar10(self) -> RawDataset {
        let mut train = RawSplit {
            images: Vec::with_capacity(self.train.iter().map(|p| p.images.len()).sum()),
            labels: Vec::with_capacity(self.train.iter().map(RawSplit::len).sum()),
        };
        for part in self.train {
            train.images.extend_from_slice(&part.images);
            train.labels.extend_from_slice(&part.labels);
        }
        RawDataset {
            train,
            test: self.test,
        }
    }

    /// A smaller data set in the same layout: the first `per_train_file` images of each of the
    /// five training files and the first `test` test images. For checks that must carry their
    /// data (a GPU machine without network); the classes stay roughly balanced because every
    /// official file is shuffled. `per_train_file` may not exceed the smallest file.
    pub fn subset(&self, per_train_file: usize, test: usize) -> Result<RawDataset> {
        let (smallest, smallest_len) = self
            .train
            .iter()
            .enumerate()
            .map(|(k, part)| (k, part.len()))
            .min_by_key(|&(_, len)| len)
            .unwrap_or((0, 0));
        if per_train_file == 0 || per_train_file > smallest_len {
            return Err(CifarError::InvalidOption {
                option: "per_train_file",
                reason: format!(
                    "expected 1..={smallest_len} images from each of the {} training files \
                     (the smallest, {}, holds {smallest_len}), got {per_train_file}",
                    self.train.len(),
                    TRAIN_FILES.get(smallest).unwrap_or(&"?"),
                ),
            });
        }
        first_records(&self.train, per_train_file, &self.test, test)
    }
}

/// The first `per_part` images of every part, concatenated, and the first `test` of `test_all`.
fn first_records(
    parts: &[RawSplit],
    per_part: usize,
    test_all: &RawSplit,
    test: usize,
) -> Result<RawDataset> {
    if test == 0 || test > test_all.len() {
        return Err(CifarError::InvalidOption {
            option: "test",
            reason: format!("expected 1..={} test images, got {test}", test_all.len()),
        });
    }
    let mut train = RawSplit::default();
    for part in parts {
        let part = part.slice(0..per_part);
        train.images.extend_from_slice(&part.images);
        train.labels.extend_from_slice(&part.labels);
    }
    Ok(RawDataset {
        train,
        test: test_all.slice(0..test),
    })
}

/// Reads one `.bin` file after checking its size and every label byte.
///
/// Official files are 30,730,000 bytes; any non-zero multiple of 3,073 is accepted as a subset
/// (the synthetic test sets use that). Nothing is returned unless the whole file is valid.
pub fn read_split(path: &Path) -> Result<RawSplit> {
    let bytes = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return Err(CifarError::MissingFile { path: path.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CifarError::MissingFile { path: path.into() })
        }
        Err(e) => return Err(CifarError::io(path, e)),
    };
    check_size(path, bytes)?;
    let data = std::fs::read(path).map_err(|e| CifarError::io(path, e))?;
    // The file may have changed between the size check and the read.
    check_size(path, data.len() as u64)?;
    let records = data.len() / RECORD_BYTES;
    let mut split = RawSplit {
        images: Vec::with_capacity(records * IMAGE_BYTES),
        labels: Vec::with_capacity(records),
    };
    for (record, chunk) in data.chunks_exact(RECORD_BYTES).enumerate() {
        let label = chunk[0];
        if label > 9 {
            return Err(CifarError::BadLabel {
                path: path.into(),
                record,
                label,
            });
        }
        split.labels.push(label);
        split.images.extend_from_slice(&chunk[1..]);
    }
    Ok(split)
}

fn check_size(path: &Path, bytes: u64) -> Result<()> {
    if bytes == 0 || bytes % RECORD_BYTES as u64 != 0 {
        return Err(CifarError::BadSize {
            path: path.into(),
            bytes,
        });
    }
    Ok(())
}

/// Loads `dir` (the `cifar-10-batches-bin` layout). Every file is checked to exist before any
/// is read, and every file is validated (size, labels) before the data set is returned.
pub fn load_dir(dir: &Path) -> Result<RawDataset> {
    require_binary_files(dir, Dataset::Cifar10)?;
    let mut train = RawSplit::default();
    for name in TRAIN_FILES {
        let part = read_split(&dir.join(name))?;
        train.images.extend_from_slice(&part.images);
        train.labels.extend_from_slice(&part.labels);
    }
    let test = read_split(&dir.join(TEST_FILE))?;
    Ok(RawDataset { train, test })
}

/// Loads `dir` like [`load_dir`], keeping the five training files apart (for per-file counts
/// and subsets of folders whose files differ in size).
pub fn load_dir_files(dir: &Path) -> Result<Cifar10Files> {
    require_binary_files(dir, Dataset::Cifar10)?;
    let train = TRAIN_FILES
        .iter()
        .map(|name| read_split(&dir.join(name)))
        .collect::<Result<Vec<_>>>()?;
    let test = read_split(&dir.join(TEST_FILE))?;
    Ok(Cifar10Files { train, test })
}

/// Writes `split` as one `.bin` file in the official record layout.
/// An empty split is refused: [`read_split`] could not tell it from a truncated file.
pub fn write_split(path: &Path, split: &RawSplit) -> Result<()> {
    split.validate(&path.display().to_string())?;
    if split.is_empty() {
        return Err(CifarError::InvalidOption {
            option: "split",
            reason: format!("refusing to write {} with no record", path.display()),
        });
    }
    let mut out = Vec::with_capacity(split.len() * RECORD_BYTES);
    for i in 0..split.len() {
        out.push(split.labels[i]);
        out.extend_from_slice(split.image(i));
    }
    write_file(path, &out)
}

/// Writes `batches.meta.txt` (the ten class names, one a line) into `dir`.
pub fn write_meta(dir: &Path) -> Result<()> {
    let mut text = CLASS_NAMES.join("\n");
    text.push('\n');
    write_file(&dir.join(BATCHES_META), text.as_bytes())
}

/// Writes a whole data set into `dir` in the official layout: the training images split into
/// five equal `data_batch_k.bin` files, `test_batch.bin` and `batches.meta.txt`.
/// The number of training images must be a non-zero multiple of 5.
pub fn write_split_dir(dir: &Path, data: &RawDataset) -> Result<()> {
    let n = data.train.len();
    if n == 0 || n % TRAIN_FILES.len() != 0 {
        return Err(CifarError::InvalidOption {
            option: "train images",
            reason: format!("{n} training images cannot fill five equal non-empty files"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| CifarError::io(dir, e))?;
    let per_file = n / TRAIN_FILES.len();
    for (k, name) in TRAIN_FILES.iter().enumerate() {
        write_split(
            &dir.join(name),
            &data.train.slice(k * per_file..(k + 1) * per_file),
        )?;
    }
    write_split(&dir.join(TEST_FILE), &data.test)?;
    write_meta(dir)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|e| CifarError::io(path, e))?;
    file.write_all(bytes).map_err(|e| CifarError::io(path, e))?;
    file.sync_all().map_err(|e| CifarError::io(path, e))
}

/// md5 (lower-case hex) of a file, streamed.
pub(crate) fn md5_file(path: &Path) -> Result<String> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CifarError::MissingFile { path: path.into() })
        }
        Err(e) => return Err(CifarError::io(path, e)),
    };
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buf).map_err(|e| CifarError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// md5 (lower-case hex) of the six binary files in `dir`, keyed by file name.
pub fn checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    for name in binary_files(Dataset::Cifar10) {
        sums.insert(name.to_string(), md5_file(&dir.join(name))?);
    }
    Ok(sums)
}

/// Checks that every `(file name, md5)` of `expected` matches the file in `dir`; the first
/// missing or differing file is the error. Pass [`OFFICIAL_MD5`] for the real data set.
pub fn verify_checksums<N, M>(dir: &Path, expected: impl IntoIterator<Item = (N, M)>) -> Result<()>
where
    N: AsRef<str>,
    M: AsRef<str>,
{
    for (name, md5) in expected {
        let path = dir.join(name.as_ref());
        let actual = md5_file(&path)?;
        if !actual.eq_ignore_ascii_case(md5.as_ref()) {
            return Err(CifarError::ChecksumMismatch {
                path,
                expected: md5.as_ref().to_string(),
                actual,
            });
        }
    }
    Ok(())
}
