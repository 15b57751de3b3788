//! Exact per-channel statistics of raw images.

use crate::format::{RawSplit, IMAGE_BYTES};

const PLANE: usize = IMAGE_BYTES / 3;

/// Per-channel mean and population standard deviation on the 0-255 scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChannelStats {
    /// Mean of R, G, B over every pixel of every image.
    pub mean: [f64; 3],
    /// Population standard deviation (divide by the pixel count) of R, G, B.
    pub std: [f64; 3],
}

/// Per-channel mean and population std of `split`, in f64.
///
/// Sums of bytes and of squared bytes are accumulated in `u64`, which is exact for any split
/// that fits in memory, so the only rounding is in the final divisions.
pub fn channel_stats(split: &RawSplit) -> ChannelStats {
    let mut sum = [0u64; 3];
    let mut sum_sq = [0u64; 3];
    for image in split.images.chunks_exact(IMAGE_BYTES) {
        for (c, plane) in image.chunks_exact(PLANE).enumerate() {
            let (s, q) = plane.iter().fold((0u64, 0u64), |(s, q), &v| {
                let v = u64::from(v);
                (s + v, q + v * v)
            });
            sum[c] += s;
            sum_sq[c] += q;
        }
    }
    let count = (split.len() * PLANE) as f64;
    let mut stats = ChannelStats {
        mean: [f64::NAN; 3],
        std: [f64::NAN; 3],
    };
    if split.is_empty() {
        return stats;
    }
    for c in 0..3 {
        let mean = sum[c] as f64 / count;
        // E[x^2] - E[x]^2 with exact integer sums: n*sum_sq - sum^2 is formed in u128, exactly.
        let n = (split.len() * PLANE) as u128;
        let numer = n * u128::from(sum_sq[c]) - u128::from(sum[c]) * u128::from(sum[c]);
        stats.mean[c] = mean;
        stats.std[c] = (numer as f64 / (count * count)).sqrt();
    }
    stats
}

/// Number of images of each class 0-9.
pub fn label_counts(labels: &[u8]) -> [usize; 10] {
    let mut counts = [0usize; 10];
    for &l in labels {
        if let Some(slot) = counts.get_mut(l as usize) {
            *slot += 1;
        }
    }
    counts
}
