//! Our prepared splits as candle-datasets' `vision::Dataset`, for code written against that
//! type (behind the `candle-datasets` feature).

use candle_core::{Device, Tensor};

use crate::format::check_image_count;
use crate::preprocess::{Prepared, Split};
use crate::Result;

/// Images `f32 [N, 3, 32, 32]` and labels `u8 [N]` (candle-datasets' label type) of a split.
fn tensors(split: &Split, what: &str) -> Result<(Tensor, Tensor)> {
    check_image_count(what, split.images.len(), split.labels.len())?;
    let n = split.len();
    Ok((
        Tensor::from_slice(&split.images, (n, 3, 32, 32), &Device::Cpu)?,
        Tensor::from_slice(&split.labels, n, &Device::Cpu)?,
    ))
}

/// The training and test splits of `prepared` (normalised as prepared; the validation split,
/// which the type has no place for, is left out) as a `vision::Dataset` with `classes` labels,
/// on the CPU.
pub fn to_candle_dataset(
    prepared: &Prepared,
    classes: usize,
) -> Result<candle_datasets::vision::Dataset> {
    let (train_images, train_labels) = tensors(&prepared.train, "training split")?;
    let (test_images, test_labels) = tensors(&prepared.test, "test split")?;
    Ok(candle_datasets::vision::Dataset {
        train_images,
        train_labels,
        test_images,
        test_labels,
        labels: classes,
    })
}
