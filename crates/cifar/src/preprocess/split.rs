//! The parts statistics are fitted on and applied to: the training subset, the validation split
//! taken from its end, and the test subset.

use super::options::PrepareOptions;
use crate::format::{RawDataset, RawSplit};
use crate::{CifarError, Result};

/// Applies `train_subset`, `validation` and `test_subset` (see [`PrepareOptions`]).
pub(super) fn split_parts(
    data: &RawDataset,
    opts: &PrepareOptions,
) -> Result<(RawSplit, RawSplit, RawSplit)> {
    let classes = opts.dataset.num_classes();
    // A CIFAR-100 split is one file, so an error can name it (its records are the split's).
    let (train_name, test_name) = match opts.dataset.dataset() {
        allconv_vocab::Dataset::Cifar10 => ("training split", "test split"),
        allconv_vocab::Dataset::Cifar100 => (crate::CIFAR100_TRAIN_FILE, crate::CIFAR100_TEST_FILE),
    };
    data.train.validate_classes(train_name, classes)?;
    data.test.validate_classes(test_name, classes)?;
    let train_all = match opts.train_subset {
        Some(n) if n == 0 || n > data.train.len() => {
            return Err(CifarError::InvalidOption {
                option: "train_subset",
                reason: format!("{n} is not in 1..={}", data.train.len()),
            })
        }
        Some(n) => data.train.slice(0..n),
        None => data.train.clone(),
    };
    let test = match opts.test_subset {
        Some(n) if n > data.test.len() => {
            return Err(CifarError::InvalidOption {
                option: "test_subset",
                reason: format!("{n} is more than the {} test images", data.test.len()),
            })
        }
        Some(n) => data.test.slice(0..n),
        None => data.test.clone(),
    };
    if opts.validation >= train_all.len() {
        return Err(CifarError::InvalidOption {
            option: "validation",
            reason: format!(
                "{} validation images leave no training image out of {}",
                opts.validation,
                train_all.len()
            ),
        });
    }
    let cut = train_all.len() - opts.validation;
    Ok((
        train_all.slice(0..cut),
        train_all.slice(cut..train_all.len()),
        test,
    ))
}
