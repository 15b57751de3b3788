//! The data acquisition `allconv reproduce` does before a grid: the data set fetched into its
//! folder when its files are missing, or, when the experiment says its folder is a subset
//! (`data.derive_subset`), the subset made from the full data set (fetched first if missing).
//! The experiment decides, not how it was named (preset, config file or flags).

use allconv_runs::errln;
use std::path::Path;

use allconv_cifar::Dataset;
use allconv_train::config::{DataConfig, DerivedSubset};
use anyhow::{bail, Context};

/// Makes `data`'s folder ready to train on: see the module documentation. Files already there
/// are left to the trainer to validate (a test may train on a synthetic set in the same layout).
pub fn ensure_data(data: &DataConfig) -> anyhow::Result<()> {
    let dir = data.resolved_dir();
    match &data.derive_subset {
        Some(subset) => ensure_derived_subset(&dir, subset),
        None => ensure_dataset(&dir, data.dataset),
    }
}

/// Whether `dir` holds every binary file of `dataset` (CIFAR-10: the five training files and
/// the test file; CIFAR-100: `train.bin` and `test.bin`).
pub fn has_all_files(dir: &Path, dataset: Dataset) -> bool {
    allconv_cifar::missing_files(dir, allconv_cifar::binary_files(dataset)).is_empty()
}

/// Fetches `dataset` into `dir` unless its binary files are there.
pub fn ensure_dataset(dir: &Path, dataset: Dataset) -> anyhow::Result<()> {
    if has_all_files(dir, dataset) {
        return Ok(());
    }
    refuse_old_data_root(dir, dataset)?;
    errln!(
        "{} is not in {}: fetching it",
        dataset.title(),
        dir.display()
    );
    match dataset {
        Dataset::Cifar10 => {
            allconv_cifar::fetch(dir, &allconv_cifar::FetchOptions::default()).map(|_| ())
        }
        Dataset::Cifar100 => {
            allconv_cifar::fetch100::fetch_cifar100(dir, &Default::default()).map(|_| ())
        }
    }
    .with_context(|| format!("fetching {} into {}", dataset.title(), dir.display()))
}

/// `$ALLCONV_DATA` used to name the CIFAR-10 folder itself; it names the data root now. When
/// the default folder of `dataset` is missing but the root itself holds the data set's files,
/// says so instead of fetching the data set again one folder down.
fn refuse_old_data_root(dir: &Path, dataset: Dataset) -> anyhow::Result<()> {
    let root = allconv_cifar::data_root();
    if dir == allconv_cifar::default_data_dir(dataset)
        && allconv_cifar::holds_dataset_files(&root, dataset)
    {
        bail!(
            "{} holds {} itself, but ${} names the data root, with one folder per data set \
             ({} here): move the files into {}, or set {} to the folder above them",
            root.display(),
            dataset.title(),
            allconv_cifar::DATA_ROOT_VAR,
            allconv_cifar::dataset_folder(dataset),
            dir.display(),
            allconv_cifar::DATA_ROOT_VAR,
        );
    }
    Ok(())
}

/// Makes the subset `subset` in `dir` from the full CIFAR-10 in its default folder (fetched if
/// missing) unless `dir` holds all six files already (e.g. carried to a GPU machine that has
/// no network).
pub fn ensure_derived_subset(dir: &Path, subset: &DerivedSubset) -> anyhow::Result<()> {
    if has_all_files(dir, Dataset::Cifar10) {
        return Ok(());
    }
    let full = allconv_cifar::default_data_dir(Dataset::Cifar10);
    ensure_dataset(&full, Dataset::Cifar10)?;
    errln!(
        "making the subset in {} (data.derive_subset: {} images from each training file of {}, \
         {} test images)",
        dir.display(),
        subset.per_file,
        full.display(),
        subset.test
    );
    // As `allconv data subset`: marked as a subset, and never written over a folder it did not
    // write (or over the official data).
    let options = allconv_cifar::SubsetOptions::new(subset.per_file, subset.test);
    allconv_cifar::write_subset_dir(&full, dir, &options)
        .with_context(|| format!("writing the subset into {}", dir.display()))?;
    Ok(())
}
