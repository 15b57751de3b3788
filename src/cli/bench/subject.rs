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

/// The benchmark's input: `batch` standard-normal 3 x 32 x 32 images and labels cycling 0-9.
pub(super) fn synthetic_batch(batch: usize, device: &Device) -> anyhow::Result<(Tensor, Tensor)> {
    let images = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), device)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let labels = Tensor::from_vec(labels, batch, device)?;
    Ok((images, labels))
}
