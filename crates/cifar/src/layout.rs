//! The files of each data set's folder, named as the official archives name them (the folder
//! itself is named by [`crate::dataset_folder`]), and the one check that a folder holds the
//! files it should.

use std::path::Path;

use allconv_vocab::Dataset;

use crate::{CifarError, Result};

/// The five training files, in order (training image `i` lives in file `i / 10,000`).
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class-name file (one name a line; it has no published checksum).
pub const BATCHES_META: &str = "batches.meta.txt";

/// CIFAR-100's training file (50,000 records in the official release).
pub const CIFAR100_TRAIN_FILE: &str = "train.bin";
/// CIFAR-100's test file (10,000 records).
pub const CIFAR100_TEST_FILE: &str = "test.bin";
/// CIFAR-100's fine class names, one a line (100).
pub const FINE_LABEL_NAMES: &str = "fine_label_names.txt";
/// CIFAR-100's coarse class names, one a line (20).
pub const COARSE_LABEL_NAMES: &str = "coarse_label_names.txt";

const CIFAR10_BINARY_FILES: [&str; 6] = [
    TRAIN_FILES[0],
    TRAIN_FILES[1],
    TRAIN_FILES[2],
    TRAIN_FILES[3],
    TRAIN_FILES[4],
    TEST_FILE,
];
const CIFAR100_BINARY_FILES: [&str; 2] = [CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE];

/// The binary files of `dataset`, in the order they are read: CIFAR-10's five training files
/// and its test file, CIFAR-100's `train.bin` and `test.bin`.
pub fn binary_files(dataset: Dataset) -> &'static [&'static str] {
    match dataset {
        Dataset::Cifar10 => &CIFAR10_BINARY_FILES,
        Dataset::Cifar100 => &CIFAR100_BINARY_FILES,
    }
}

/// The names among `names` that are not regular files in `dir`, in the order given (empty when
/// all are there): whether a data set's folder or an unpacked archive holds what it should.
pub fn missing_files<'a>(dir: &Path, names: &[&'a str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect()
}

/// Fails naming the first of `dataset`'s binary files that `dir` lacks, with the error that
/// describes the layout expected ([`CifarError::MissingFile`] for CIFAR-10,
/// [`CifarError::MissingCifar100File`] for CIFAR-100).
pub(crate) fn require_binary_files(dir: &Path, dataset: Dataset) -> Result<()> {
    let Some(first) = missing_files(dir, binary_files(dataset)).first().copied() else {
        return Ok(());
    };
    let path = dir.join(first);
    Err(match dataset {
        Dataset::Cifar10 => CifarError::MissingFile { path },
        Dataset::Cifar100 => CifarError::MissingCifar100File { path },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.bin"), b"x").unwrap();
        // A folder with a file's name is not the file.
        std::fs::create_dir(dir.path().join("train.bin")).unwrap();
        assert_eq!(
            missing_files(dir.path(), &["train.bin", "test.bin", "extra.txt"]),
            ["train.bin", "extra.txt"]
        );
        assert!(missing_files(dir.path(), &["test.bin"]).is_empty());
        // The first missing binary file is the error, with the data set's layout message.
        let err = require_binary_files(dir.path(), Dataset::Cifar100).unwrap_err();
        assert!(
            matches!(&err, CifarError::MissingCifar100File { path } if path.ends_with("train.bin")),
            "{err:?}"
        );
        let err = require_binary_files(dir.path(), Dataset::Cifar10).unwrap_err();
        assert!(
            matches!(&err, CifarError::MissingFile { path } if path.ends_with("data_batch_1.bin")),
            "{err:?}"
        );
        assert_eq!(binary_files(Dataset::Cifar10).len(), 6);
        assert_eq!(binary_files(Dataset::Cifar100), ["train.bin", "test.bin"]);
    }
}
