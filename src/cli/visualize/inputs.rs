//! The pictures a visualisation starts from (test images or PNGs) and their preprocessed tensor.

use std::path::Path;

use allconv_cifar::{RawDataset, RawSplit, IMAGE_BYTES};
use anyhow::{bail, Context};
use candle_core::Tensor;

use crate::cli::source::{self, Loaded};

/// One picture to show: what it is, its raw pixels and where it came from.
pub(super) struct Picture {
    /// `test:17` or the PNG's path.
    pub(super) name: String,
    /// The class name, for test images.
    pub(super) label: Option<String>,
    /// Its bytes as CIFAR stores an image: three 32 x 32 planes, R, G, B.
    pub(super) raw: Vec<u8>,
}

pub(super) fn test_pictures(
    test: &RawSplit,
    indices: impl IntoIterator<Item = usize>,
    names: &[String],
) -> anyhow::Result<Vec<Picture>> {
    Ok(indices
        .into_iter()
        .map(|i| Picture {
            name: format!("test:{i}"),
            label: names.get(test.labels[i] as usize).cloned(),
            raw: test.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES].to_vec(),
        })
        .collect())
}

/// A 32x32 PNG as CIFAR planes; any other size is refused (the networks saw 32x32 images).
pub(super) fn read_png(path: &Path) -> anyhow::Result<Picture> {
    let img = image::open(path)
        .with_context(|| format!("--image {}: not a readable image", path.display()))?;
    if (img.width(), img.height()) != (32, 32) {
        bail!(
            "--image {}: {}x{} pixels, expected a 32x32 RGB picture like CIFAR's",
            path.display(),
            img.width(),
            img.height()
        );
    }
    let rgb = img.to_rgb8();
    let mut raw = vec![0u8; IMAGE_BYTES];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            raw[c * 1024 + i] = p.0[c];
        }
    }
    Ok(Picture {
        name: path.display().to_string(),
        label: None,
        raw,
    })
}

/// The pictures preprocessed with the statistics fitted on the network's training data, as a
/// `[N, 3, 32, 32]` tensor on its device.
pub(super) fn preprocessed(
    loaded: &Loaded,
    data: &RawDataset,
    pictures: &[Picture],
) -> anyhow::Result<Tensor> {
    let chosen = RawSplit {
        images: pictures
            .iter()
            .flat_map(|p| p.raw.iter().copied())
            .collect(),
        labels: vec![0; pictures.len()],
    };
    let mut experiment = loaded.experiment.clone();
    // The pictures are the test split here: all of them.
    experiment.data.test_subset = None;
    let with_pictures = RawDataset {
        train: data.train.clone(),
        test: chosen,
    };
    let prepared = source::prepare_test(&experiment, &with_pictures)?;
    Ok(Tensor::from_vec(
        prepared.test.images,
        (pictures.len(), 3, 32, 32),
        &loaded.device,
    )?)
}
