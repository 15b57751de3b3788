//! What `allconv bench` measures: a model with the trainer's optimizer, and its input batch.

use allconv_models::{Mode, Network};
use allconv_train::optim::{Sgd, SgdConfig};
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use candle_nn::VarMap;

/// A model ready to measure: its network and the trainer's optimizer over its weights.
pub(super) struct Subject {
    net: Network,
    sgd: Sgd,
}

impl Subject {
    pub(super) fn new(spec: &allconv_models::ModelSpec, device: &Device) -> anyhow::Result<Self> {
        let varmap = VarMap::new();
        let net = Network::new(spec, &varmap, device, 0)?;
        let sgd = Sgd::from_varmap(
            &varmap,
            SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                weight_decay: 0.001,
                weight_decay_bias: true,
            },
        )?;
        Ok(Self { net, sgd })
    }

    /// One forward pass in eval mode (no dropout).
    pub(super) fn forward(&self, images: &Tensor) -> anyhow::Result<()> {
        self.net.forward(images, Mode::Eval)?;
        Ok(())
    }

    /// One training step: forward with dropout (seeded by `i`), cross-entropy, backward, SGD.
    pub(super) fn step(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        i: usize,
    ) -> anyhow::Result<()> {
        let logits = self.net.forward(
            images,
            Mode::Train {
                dropout_seed: i as u64,
            },
        )?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        self.sgd.backward_step(&loss)?;
        Ok(())
    }
}

/// The seed of the benchmark's images: every run of `allconv bench` (and PyTorch's side of a
/// comparison, which reads nothing of ours) measures the same input, so a rate never depends on
/// what a random draw happened to be (a ReLU network's speed does not, but its dropout masks and
/// any NaN would).
const IMAGES_SEED: u64 = 0x00A1_1C0F;

/// The benchmark's input: `batch` standard-normal 3 x 32 x 32 images drawn from SplitMix64
/// seeded with [`IMAGES_SEED`] (two outputs per pair of pixels, Box-Muller), and labels cycling
/// 0-9.
pub(super) fn synthetic_batch(batch: usize, device: &Device) -> anyhow::Result<(Tensor, Tensor)> {
    let images = Tensor::from_vec(
        standard_normal(batch * 3 * 32 * 32),
        (batch, 3, 32, 32),
        device,
    )?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let labels = Tensor::from_vec(labels, batch, device)?;
    Ok((images, labels))
}

/// `n` standard-normal values, the same for every call: the Box-Muller transform of uniform
/// pairs from SplitMix64 output `2i` and `2i + 1` (53 bits each, the first kept off 0 so its
/// logarithm is finite).
fn standard_normal(n: usize) -> Vec<f32> {
    let uniform =
        |i: u64| (allconv_splitmix::output(IMAGES_SEED, i) >> 11) as f64 / (1u64 << 53) as f64;
    let mut values = Vec::with_capacity(n + 1);
    for pair in 0..n.div_ceil(2) as u64 {
        let radius = (-2.0 * (1.0 - uniform(2 * pair)).ln()).sqrt();
        let angle = std::f64::consts::TAU * uniform(2 * pair + 1);
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(n);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_are_the_same_every_time_and_standard_normal() {
        let a = standard_normal(100_001);
        assert_eq!(a, standard_normal(100_001));
        assert_eq!(a.len(), 100_001);
        // Sample mean and variance of 100,001 N(0, 1) draws: standard errors 0.0032 and 0.0045,
        // so 5 standard errors is a bound a correct transform fails about once in 10^6.
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let variance = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.016, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.023, "variance {variance}");
        // P(|Z| > 1) = 0.3173 for a standard normal (erfc(1/sqrt 2)); standard error 0.0015.
        let beyond_one = a.iter().filter(|v| v.abs() > 1.0).count() as f64 / n;
        assert!((beyond_one - 0.3173).abs() < 0.0075, "{beyond_one}");
        assert!(a.iter().all(|v| v.is_finite()));
    }
}
