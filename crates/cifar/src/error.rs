use std::path::PathBuf;

/// Everything that can go wrong while reading, acquiring or preparing CIFAR-10 or CIFAR-100.
///
/// Every variant names the file, record or option involved, so a message alone says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CifarError {
    /// A file of the binary layout is absent.
    #[error(
        "missing CIFAR-10 file {path}: expected a folder containing data_batch_1.bin .. \
         data_batch_5.bin, test_batch.bin (and batches.meta.txt), the official \
         cifar-10-batches-bin layout; run `allconv data fetch --data-dir <folder>` to get it"
    )]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A binary file whose size cannot hold whole 3,073-byte records.
    #[error(
        "{path}: {bytes} bytes is not a whole number of 3,073-byte records (the official files \
         are 30,730,000 bytes = 10,000 records; a subset must be a non-zero multiple of 3,073)"
    )]
    BadSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
    },
    /// A record whose label byte is not a class index 0-9.
    #[error("{path}: record {record} (0-based) has label byte {label}, expected 0-9")]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// 0-based record index inside the file.
        record: usize,
        /// The label byte found.
        label: u8,
    },
    /// A record whose label is not one of the `classes` classes of the data set and label set
    /// it is read as (CIFAR-100's 100 fine or 20 coarse classes).
    #[error("{path}: record {record} (0-based) has label {label}, expected 0-{} ({classes} classes)", .classes - 1)]
    LabelOutOfRange {
        /// The file (or split) the record is in.
        path: PathBuf,
        /// 0-based record index inside it.
        record: usize,
        /// The label found.
        label: u8,
        /// The number of classes of the labels read.
        classes: usize,
    },
    /// A CIFAR-100 file is absent.
    #[error(
        "missing CIFAR-100 file {path}: expected a folder containing train.bin and test.bin (and \
         fine_label_names.txt, coarse_label_names.txt), the official cifar-100-binary layout; \
         run `allconv data fetch --dataset cifar100 --data-dir <folder>` to get it"
    )]
    MissingCifar100File {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A CIFAR-100 file whose size cannot hold whole 3,074-byte records.
    #[error(
        "{path}: {bytes} bytes is not a whole number of 3,074-byte CIFAR-100 records (the \
         official train.bin is 153,700,000 bytes = 50,000 records, test.bin 30,740,000; a subset \
         must be a non-zero multiple of 3,074)"
    )]
    BadCifar100Size {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
    },
    /// A CIFAR-100 record whose coarse or fine label is out of range.
    #[error("{path}: record {record} (0-based) has {which} label {label}, expected 0-{max}")]
    BadCifar100Label {
        /// The file.
        path: PathBuf,
        /// 0-based record index inside the file.
        record: usize,
        /// `coarse` or `fine`.
        which: &'static str,
        /// The label byte found.
        label: u8,
        /// The largest valid label (19 coarse, 99 fine).
        max: u8,
    },
    /// A file whose md5 differs from the expected one.
    #[error("{path}: md5 {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Expected md5 (hex).
        expected: String,
        /// Computed md5 (hex).
        actual: String,
    },
    /// An in-memory split whose image and label buffers disagree.
    #[error("{what}: {images} image bytes do not match {labels} labels (3,072 bytes per image)")]
    Inconsistent {
        /// Which split.
        what: String,
        /// Length of the image buffer.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// An option that cannot be satisfied by the data at hand.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option name, as in `PrepareOptions` or the batch API.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Every acquisition route failed; one line per route, in the order they were tried.
    #[error("could not fetch the data set into {dir}; tried, in order:\n{}", format_attempts(.attempts))]
    FetchFailed {
        /// Target folder.
        dir: PathBuf,
        /// (route, why it failed), in the order tried.
        attempts: Vec<(String, String)>,
    },
    /// The target folder exists, is not empty and does not hold the expected files.
    #[error(
        "{dir} exists but does not hold a valid copy of the data set ({reason}); move it away or \
         pick another --data-dir, fetch never overwrites a folder it did not create"
    )]
    ExistingInvalid {
        /// Target folder.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `write_subset_dir` will not write into this folder.
    #[error("refusing to write a subset into {dir}: {reason}")]
    SubsetTargetRefused {
        /// The target folder.
        dir: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The statistics cache file could not be read or written.
    #[error("statistics cache {path}: {reason}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The linear algebra failed (the eigendecomposition did not converge).
    #[error("ZCA fit: {0}")]
    LinearAlgebra(String),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A candle error while building batch tensors.
    #[error("building a batch tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

fn format_attempts(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .enumerate()
        .map(|(i, (route, why))| format!("  {}. {route}: {why}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

impl CifarError {
    /// An [`CifarError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CifarError::Io {
            path: path.into(),
            source,
        }
    }

    /// An I/O error with a reason of our own (a download, archive or package that is not what
    /// it should be), naming `path`.
    pub(crate) fn other(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::io(path, std::io::Error::other(reason.into()))
    }
}
