//! Seeded mini-batches as candle tensors.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::format::{check_image_count, IMAGE_BYTES};
use crate::preprocess::Split;
use crate::{CifarError, Result};

/// The order in which a split is visited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Image 0, 1, 2, ... (evaluation).
    Sequential,
    /// A permutation drawn from ChaCha20 seeded with `seed`, stream `epoch`: the same
    /// (seed, epoch) always gives the same order (so a resumed run sees the batches it would
    /// have seen), different epochs give independent orders. candle's own CPU RNG cannot be
    /// seeded, hence our own.
    Shuffled {
        /// Run seed.
        seed: u64,
        /// Epoch number (any numbering, as long as it is the same on resume).
        epoch: u64,
    },
}

impl Order {
    /// The visiting order of `n` images.
    pub fn permutation(self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        if let Order::Shuffled { seed, epoch } = self {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            rng.set_stream(epoch);
            order.shuffle(&mut rng);
        }
        order
    }
}

/// Number of batches of `batch_size` from `n` images; with `keep_last` a final partial batch
/// counts, without it it is dropped.
pub fn batch_count(n: usize, batch_size: usize, keep_last: bool) -> usize {
    if batch_size == 0 {
        return 0;
    }
    if keep_last {
        n.div_ceil(batch_size)
    } else {
        n / batch_size
    }
}

/// The number of images that batches of `batch_size` visit out of `n` (all with `keep_last`,
/// else only whole batches); refuses a batch size of 0.
fn batched_end(n: usize, batch_size: usize, keep_last: bool) -> Result<usize> {
    if batch_size == 0 {
        return Err(CifarError::InvalidOption {
            option: "batch_size",
            reason: "must be at least 1".to_string(),
        });
    }
    Ok(batch_count(n, batch_size, keep_last)
        .saturating_mul(batch_size)
        .min(n))
}

/// Iterator over `(images f32 [B,3,32,32], labels u32 [B])` on a device; see [`batches`].
pub struct Batches<'a> {
    split: &'a Split,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    end: usize,
    device: Device,
}

/// Mini-batches of `split` in `order`. With `keep_last`, the last batch may be smaller than
/// `batch_size`; without, images that do not fill a whole batch are skipped this epoch.
pub fn batches<'a>(
    split: &'a Split,
    batch_size: usize,
    order: Order,
    keep_last: bool,
    device: &Device,
) -> Result<Batches<'a>> {
    check_image_count("batched split", split.images.len(), split.labels.len())?;
    let n = split.len();
    let end = batched_end(n, batch_size, keep_last)?;
    Ok(Batches {
        split,
        order: order.permutation(n),
        batch_size,
        next: 0,
        end,
        device: device.clone(),
    })
}

impl Batches<'_> {
    fn build(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let mut images = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(&self.split.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]);
            labels.push(u32::from(self.split.labels[i]));
        }
        let b = indices.len();
        let x = Tensor::from_vec(images, (b, 3, 32, 32), &self.device)?;
        let y = Tensor::from_vec(labels, b, &self.device)?;
        Ok((x, y))
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let stop = (self.next + self.batch_size).min(self.end);
        let indices = self.order[self.next..stop].to_vec();
        self.next = stop;
        Some(self.build(&indices))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// A split uploaded to a device once: images `f32 [N,3,32,32]` and labels `u32 [N]`.
///
/// Why: on a GPU, building every mini-batch on the host and copying it over costs a transfer
/// per step; here each epoch uploads only its permutation (4 bytes per image) and every batch is
/// gathered on the device with `index_select`. The batches are the same, value for value and in
/// the same order, as [`batches`] gives for the same split, order and batch size.
pub struct DeviceSplit {
    images: Tensor,
    labels: Tensor,
}

impl DeviceSplit {
    /// Uploads `split` to `device`.
    pub fn new(split: &Split, device: &Device) -> Result<Self> {
        check_image_count(
            "split uploaded to the device",
            split.images.len(),
            split.labels.len(),
        )?;
        let n = split.len();
        let images = Tensor::from_slice(&split.images, (n, 3, 32, 32), device)?;
        let labels: Vec<u32> = split.labels.iter().map(|&l| u32::from(l)).collect();
        let labels = Tensor::from_vec(labels, n, device)?;
        Ok(DeviceSplit { images, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    /// Whether the split has no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the split lives on.
    pub fn device(&self) -> &Device {
        self.images.device()
    }

    /// Mini-batches in `order`, with [`batches`]' rule for the last partial batch.
    pub fn batches(
        &self,
        batch_size: usize,
        order: Order,
        keep_last: bool,
    ) -> Result<DeviceBatches<'_>> {
        let n = self.len();
        let end = batched_end(n, batch_size, keep_last)?;
        // Sequential batches are plain views; only a shuffled order needs the gather.
        let order = match order {
            Order::Sequential => None,
            shuffled => {
                let permutation: Vec<u32> = shuffled
                    .permutation(n)
                    .into_iter()
                    .map(|i| i as u32)
                    .collect();
                Some(Tensor::from_vec(permutation, n, self.images.device())?)
            }
        };
        Ok(DeviceBatches {
            split: self,
            order,
            batch_size,
            next: 0,
            end,
        })
    }
}

/// Iterator over `(images f32 [B,3,32,32], labels u32 [B])` of a [`DeviceSplit`].
pub struct DeviceBatches<'a> {
    split: &'a DeviceSplit,
    order: Option<Tensor>,
    batch_size: usize,
    next: usize,
    end: usize,
}

impl DeviceBatches<'_> {
    fn build(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let (images, labels) = (&self.split.images, &self.split.labels);
        Ok(match &self.order {
            None => (images.narrow(0, start, len)?, labels.narrow(0, start, len)?),
            Some(order) => {
                let indices = order.narrow(0, start, len)?;
                (
                    images.index_select(&indices, 0)?,
                    labels.index_select(&indices, 0)?,
                )
            }
        })
    }
}

impl Iterator for DeviceBatches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let stop = (self.next + self.batch_size).min(self.end);
        let start = self.next;
        self.next = stop;
        Some(self.build(start, stop - start))
    }

    /// Skips `n` batches without gathering them (a run resumed part-way through an epoch
    /// starts at its step this way), then yields the next.
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.next = self
            .next
            .saturating_add(n.saturating_mul(self.batch_size))
            .min(self.end);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for DeviceBatches<'_> {}
