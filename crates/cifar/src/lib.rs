#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
// Notes for the user go through `note`, which ignores a closed stream: `eprintln!` panics
// when the pipe is gone.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod augment;
mod batch;
#[cfg(feature = "candle-datasets")]
mod candle_dataset;
mod cifar100;
mod data_root;
mod error;
pub mod fetch;
mod format;
mod layout;
mod preprocess;
mod stats;
mod subset;
mod synthetic;

/// The data set, the label set and the two together, as every allconv crate names them.
pub use allconv_vocab::{Dataset, DatasetKind, LabelSet};
pub use augment::{AugmentParams, EpochAugmentation, MAX_SHIFT};
pub use batch::{batch_count, batches, Batches, DeviceBatches, DeviceSplit, Order};
#[cfg(feature = "candle-datasets")]
pub use candle_dataset::to_candle_dataset;
pub use cifar100::{
    dataset_checksums, load_cifar100_dir, load_dataset, read_cifar100_split,
    synthetic_cifar100_split, write_cifar100_split, write_synthetic_cifar100_dir, Cifar100Split,
    CIFAR100_RECORD_BYTES, COARSE_CLASSES, FINE_CLASSES,
};
pub use data_root::{
    data_root, data_root_from, dataset_folder, default_data_dir, holds_dataset_files,
    DATA_ROOT_VAR, DEFAULT_DATA_ROOT,
};
pub use error::CifarError;
pub use fetch::cifar100 as fetch100;
pub use fetch::{fetch, FetchOptions, FetchOutcome};
/// The former name of [`RawDataset`].
#[allow(deprecated)]
pub use format::Cifar10;
pub use format::{
    checksums, load_dir, load_dir_files, read_split, verify_checksums, write_meta, write_split,
    write_split_dir, Cifar10Files, RawDataset, RawSplit, CLASS_NAMES, FILE_BYTES, IMAGE_BYTES,
    OFFICIAL_MD5, RECORDS_PER_FILE, RECORD_BYTES,
};
pub use layout::{
    binary_files, missing_files, BATCHES_META, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE,
    COARSE_LABEL_NAMES, FINE_LABEL_NAMES, TEST_FILE, TRAIN_FILES,
};
pub use preprocess::{
    default_cache_dir, gcn, prepare, prepare_test, zca_cache_file, zca_fit, PrepareOptions,
    Prepared, Preprocessing, Split, Zca,
};
pub use stats::{channel_stats, label_counts, ChannelStats};
pub use subset::{
    write_cifar100_subset_dir, write_subset_dir, SubsetOptions, SUBSET_MARKER, SUBSET_WRITER,
};
pub use synthetic::{synthetic_split, write_synthetic_dir};

/// Says `args` on standard error, dropping the line if the stream cannot be written: the few
/// notes this crate prints (routes tried, a refitted cache) must never end the training or
/// fetch they describe by a panic on a closed pipe.
pub(crate) fn note(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Result type of this crate.
pub type Result<T, E = CifarError> = std::result::Result<T, E>;
