//! Training-set augmentation: random horizontal flips and integer translations, drawn per
//! image and epoch from a counter-based hash and applied to a batch on its own device.
//!
//! The augmentation runs on the preprocessed (GCN + ZCA) images, so the pixels a translation
//! uncovers are filled with zero: the whitened data has zero mean, so zero is the "average
//! pixel" and adds no signal (the same holds, per channel, for `standardize`).
//!
//! Why a hash and not an RNG stream: the draw of image `i` in epoch `e` depends on nothing but
//! (run seed, epoch, image index), so it does not depend on the batch size, on the visiting
//! order or on where a run was interrupted, and a resumed run draws the same transformations.

// SplitMix64's finaliser: consecutive inputs give unrelated outputs.
use allconv_splitmix::mix;
use candle_core::{Device, Tensor};

use crate::format::IMAGE_BYTES;
use crate::{CifarError, Result};

/// Largest translation in pixels, in either direction and either axis (the paper's 5).
pub const MAX_SHIFT: i32 = 5;

const SIDE: usize = 32;
const CHANNELS: usize = 3;
/// Side of an image padded with `MAX_SHIFT` zeros on every edge.
const PADDED: usize = SIDE + 2 * MAX_SHIFT as usize;
const PADDED_PLANE: usize = PADDED * PADDED;
const PADDED_IMAGE: usize = CHANNELS * PADDED_PLANE;

/// The transformation of one image: mirror it left-right if `flip`, then move its content
/// `dx` pixels right and `dy` pixels down (negative: left / up), filling with zero.
///
/// Output pixel `(y, x)` of every channel is input pixel `(y - dy, x')` with
/// `x' = 31 - (x - dx)` when flipped and `x' = x - dx` otherwise; zero where that lies outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AugmentParams {
    /// Mirror left-right (before the translation).
    pub flip: bool,
    /// Horizontal translation, in `[-MAX_SHIFT, MAX_SHIFT]`; positive moves content right.
    pub dx: i32,
    /// Vertical translation, in `[-MAX_SHIFT, MAX_SHIFT]`; positive moves content down.
    pub dy: i32,
}

/// A uniform integer in `[0, n)` from 32 random bits (multiply-high; the bias is below
/// n / 2^32, far below anything a training run could notice).
fn below(bits: u32, n: u32) -> u32 {
    ((u64::from(bits) * u64::from(n)) >> 32) as u32
}

impl AugmentParams {
    /// No transformation.
    pub const IDENTITY: AugmentParams = AugmentParams {
        flip: false,
        dx: 0,
        dy: 0,
    };

    /// The draw for image `index` (its position in the split, not in the batch) in `epoch` of
    /// the run with `seed`: flip with probability 1/2, `dx` and `dy` uniform in
    /// `[-MAX_SHIFT, MAX_SHIFT]`, independently.
    pub fn draw(seed: u64, epoch: u64, index: u64) -> AugmentParams {
        // A constant distinct from the dropout seeds' mixing keeps the two streams unrelated
        // even though both start from the run seed.
        let key = mix(mix(seed ^ 0x6A09_E667_F3BC_C908).wrapping_add(epoch));
        let a = mix(key.wrapping_add(index));
        let b = mix(a ^ 0x3C6E_F372_FE94_F82B);
        let span = 2 * MAX_SHIFT as u32 + 1;
        AugmentParams {
            flip: b >> 63 == 1,
            dx: below(a as u32, span) as i32 - MAX_SHIFT,
            dy: below((a >> 32) as u32, span) as i32 - MAX_SHIFT,
        }
    }

    /// Refuses a translation beyond [`MAX_SHIFT`].
    fn check(&self) -> Result<()> {
        if self.dx.abs() > MAX_SHIFT || self.dy.abs() > MAX_SHIFT {
            return Err(CifarError::InvalidOption {
                option: "augmentation shift",
                reason: format!(
                    "({}, {}) is outside [-{MAX_SHIFT}, {MAX_SHIFT}]",
                    self.dx, self.dy
                ),
            });
        }
        Ok(())
    }

    /// Applies the transformation to one `[3, 32, 32]` image on the host: the plain-loop
    /// definition that the tensor path of [`EpochAugmentation`] must match.
    pub fn apply_host(&self, image: &[f32]) -> Result<Vec<f32>> {
        self.check()?;
        if image.len() != IMAGE_BYTES {
            return Err(CifarError::InvalidOption {
                option: "augmented image",
                reason: format!("has {} values, expected {IMAGE_BYTES}", image.len()),
            });
        }
        let mut out = vec![0.0f32; IMAGE_BYTES];
        for c in 0..CHANNELS {
            for y in 0..SIDE as i32 {
                for x in 0..SIDE as i32 {
                    let (sy, sx) = (y - self.dy, x - self.dx);
                    if !(0..SIDE as i32).contains(&sy) || !(0..SIDE as i32).contains(&sx) {
                        continue;
                    }
                    let sx = if self.flip { SIDE as i32 - 1 - sx } else { sx };
                    out[c * SIDE * SIDE + y as usize * SIDE + x as usize] =
                        image[c * SIDE * SIDE + sy as usize * SIDE + sx as usize];
                }
            }
        }
        Ok(out)
    }
}

/// One epoch's augmentation of the training batches, kept on the training device.
///
/// Why this shape: a batch is padded with zeros on the device and every output pixel gathered
/// from it with one `index_select`; the gather index is the sum of three small tables already on
/// the device (image and channel offsets, source rows per image, source columns per image), so
/// training a batch moves nothing between host and device. The row and column tables of every
/// visiting position are built on the host and uploaded once per epoch (64 `u32` per image).
pub struct EpochAugmentation {
    /// `u32 [N, 32]`: padded source row of each output row, times the padded side.
    rows: Tensor,
    /// `u32 [N, 32]`: padded source column of each output column.
    cols: Tensor,
    /// `u32 [max_batch, 3, 1, 1]`: offset of image b, channel c in a padded batch.
    base: Tensor,
    max_batch: usize,
}

impl EpochAugmentation {
    /// The augmentation of an epoch that visits the images `order` (split indices, in visiting
    /// order) of the run with `seed` in batches of at most `max_batch`.
    pub fn new(
        seed: u64,
        epoch: u64,
        order: &[usize],
        max_batch: usize,
        device: &Device,
    ) -> Result<Self> {
        let params: Vec<AugmentParams> = order
            .iter()
            .map(|&i| AugmentParams::draw(seed, epoch, i as u64))
            .collect();
        Self::from_params(&params, max_batch, device)
    }

    /// The augmentation that gives visiting position `p` the transformation `params[p]`.
    pub fn from_params(
        params: &[AugmentParams],
        max_batch: usize,
        device: &Device,
    ) -> Result<Self> {
        if max_batch == 0 {
            return Err(CifarError::InvalidOption {
                option: "batch_size",
                reason: "must be at least 1".to_string(),
            });
        }
        let n = params.len();
        let mut rows = Vec::with_capacity(n * SIDE);
        let mut cols = Vec::with_capacity(n * SIDE);
        let pad = MAX_SHIFT;
        for p in params {
            p.check()?;
            for y in 0..SIDE as i32 {
                // In [0, 41]: rows outside the image land in the zero border.
                rows.push(((y - p.dy + pad) as usize * PADDED) as u32);
            }
            for x in 0..SIDE as i32 {
                let sx = x - p.dx;
                let sx = if p.flip { SIDE as i32 - 1 - sx } else { sx };
                cols.push((sx + pad) as u32);
            }
        }
        let base: Vec<u32> = (0..max_batch)
            .flat_map(|b| (0..CHANNELS).map(move |c| (b * PADDED_IMAGE + c * PADDED_PLANE) as u32))
            .collect();
        Ok(EpochAugmentation {
            rows: Tensor::from_vec(rows, (n, SIDE), device)?,
            cols: Tensor::from_vec(cols, (n, SIDE), device)?,
            base: Tensor::from_vec(base, (max_batch, CHANNELS, 1, 1), device)?,
            max_batch,
        })
    }

    /// Augments `images` (`f32 [B, 3, 32, 32]`), the batch at visiting positions
    /// `start .. start + B`, on their device.
    pub fn apply(&self, images: &Tensor, start: usize) -> Result<Tensor> {
        let b = images.dim(0)?;
        let n = self.rows.dim(0)?;
        if b > self.max_batch || start + b > n {
            return Err(CifarError::InvalidOption {
                option: "augmented batch",
                reason: format!(
                    "positions {start}..{} of {n} with at most {} per batch",
                    start + b,
                    self.max_batch
                ),
            });
        }
        let pad = MAX_SHIFT as usize;
        let padded = images
            .pad_with_zeros(2, pad, pad)?
            .pad_with_zeros(3, pad, pad)?
            .flatten_all()?;
        let rows = self.rows.narrow(0, start, b)?.reshape((b, 1, SIDE, 1))?;
        let cols = self.cols.narrow(0, start, b)?.reshape((b, 1, 1, SIDE))?;
        let index = self
            .base
            .narrow(0, 0, b)?
            .broadcast_add(&rows)?
            .broadcast_add(&cols)?
            .flatten_all()?;
        Ok(padded
            .index_select(&index, 0)?
            .reshape((b, CHANNELS, SIDE, SIDE))?)
    }
}
