//! The normalisations that need no fitted matrix: per-channel standardisation and pylearn2's
//! global contrast normalisation.

use crate::format::IMAGE_BYTES;

pub(super) fn standardize(images: &[u8], mean: &[f64; 3], std: &[f64; 3]) -> Vec<f32> {
    let plane = IMAGE_BYTES / 3;
    let mut out = Vec::with_capacity(images.len());
    for image in images.chunks_exact(IMAGE_BYTES) {
        for (c, values) in image.chunks_exact(plane).enumerate() {
            // A constant channel would divide by zero; leave it centred instead.
            let std = if std[c] > 0.0 { std[c] } else { 1.0 };
            out.extend(
                values
                    .iter()
                    .map(|&v| ((f64::from(v) - mean[c]) / std) as f32),
            );
        }
    }
    out
}

/// Global contrast normalisation of images of `dim` bytes each, as pylearn2's
/// `global_contrast_normalize(X, scale, subtract_mean=True, use_std=False, sqrt_bias=0,
/// min_divisor=1e-8)`: per image subtract its mean, divide by `||x - mean|| / scale`, except
/// that a divisor below 1e-8 (a constant image) is replaced by 1. Computed in f64.
pub fn gcn(images: &[u8], dim: usize, scale: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(images.len());
    let mut centred = vec![0f64; dim];
    for image in images.chunks_exact(dim) {
        let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / dim as f64;
        for (c, &v) in centred.iter_mut().zip(image) {
            *c = f64::from(v) - mean;
        }
        let norm = centred.iter().map(|c| c * c).sum::<f64>().sqrt() / scale;
        let divisor = if norm < 1e-8 { 1.0 } else { norm };
        out.extend(centred.iter().map(|c| (c / divisor) as f32));
    }
    out
}
