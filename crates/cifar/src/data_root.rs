//! Where the data sets live unless a folder is given: one data root, `$ALLCONV_DATA` or `data`
//! (relative to the working directory), with one folder per data set, named as its official
//! archive names it (`cifar-10-batches-bin`, `cifar-100-binary`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use allconv_vocab::Dataset;

use crate::layout::{binary_files, missing_files};

/// The environment variable naming the data root.
pub const DATA_ROOT_VAR: &str = "ALLCONV_DATA";

/// The data root when `$ALLCONV_DATA` is not set (or empty).
pub const DEFAULT_DATA_ROOT: &str = "data";

/// The folder of each data set below the data root, as the official archives name it.
pub const fn dataset_folder(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Cifar10 => "cifar-10-batches-bin",
        Dataset::Cifar100 => "cifar-100-binary",
    }
}

/// The data root for a value of `$ALLCONV_DATA`: the value when set and not empty, else `data`.
pub fn data_root_from(var: Option<&OsStr>) -> PathBuf {
    match var {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => PathBuf::from(DEFAULT_DATA_ROOT),
    }
}

/// The data root: `$ALLCONV_DATA` when set and not empty, else `data`.
pub fn data_root() -> PathBuf {
    data_root_from(std::env::var_os(DATA_ROOT_VAR).as_deref())
}

/// The default folder of `dataset`: `<data root>/cifar-10-batches-bin` or
/// `<data root>/cifar-100-binary` (see [`data_root`]). The one place that decides it.
pub fn default_data_dir(dataset: Dataset) -> PathBuf {
    data_root().join(dataset_folder(dataset))
}

/// Whether `root` itself holds `dataset`'s first binary file, as a folder set as the data set's
/// own folder would (`$ALLCONV_DATA` meant the CIFAR-10 folder before it named the data root):
/// lets a command say so instead of fetching the data set again one folder down.
pub fn holds_dataset_files(root: &Path, dataset: Dataset) -> bool {
    let first = &binary_files(dataset)[..1];
    missing_files(root, first).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_variable_when_set_else_data() {
        assert_eq!(data_root_from(None), PathBuf::from("data"));
        assert_eq!(data_root_from(Some(OsStr::new(""))), PathBuf::from("data"));
        assert_eq!(
            data_root_from(Some(OsStr::new("/big/disk"))),
            PathBuf::from("/big/disk")
        );
        // One folder per data set below it, named as the official archives name them.
        assert_eq!(dataset_folder(Dataset::Cifar10), "cifar-10-batches-bin");
        assert_eq!(dataset_folder(Dataset::Cifar100), "cifar-100-binary");
    }
}
