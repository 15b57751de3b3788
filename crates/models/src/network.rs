//! A [`ModelSpec`] turned into trainable candle tensors.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::spec::{Init, LayerSpec, ModelOptions, ModelSpec, INPUT_CHANNELS};
use crate::{ops, ModelError};

/// Whether the forward pass trains (dropout on) or evaluates (dropout off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Evaluation: no dropout, deterministic.
    Eval,
    /// Training: dropout masks hashed from `dropout_seed` (one stream per dropout layer, see
    /// [`ops::Dropout`]), so the same seed gives the same masks on every run and device.
    Train {
        /// Seed of this forward pass's dropout masks (e.g. derived from run seed and step).
        dropout_seed: u64,
    },
}

#[derive(Debug, Clone)]
enum Layer {
    Dropout {
        rate: f64,
    },
    Conv {
        weight: Tensor,
        bias: Tensor,
        stride: usize,
        pad: usize,
        relu: bool,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
        pad: usize,
    },
    GlobalAvgPool,
}

/// One of the networks, its weights held in a [`VarMap`] as `conv{i}.weight` `[out, in, kh, kw]`
/// and `conv{i}.bias` `[out]` (`i` counts the convolutions from 1), PyTorch names and layouts.
#[derive(Debug, Clone)]
pub struct Network {
    spec: ModelSpec,
    layers: Vec<Layer>,
}

/// Initial weights of one convolution, drawn on the host in f64.
fn initial_weights(init: Init, fan_in: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let fan_in = fan_in as f64;
    match init {
        Init::Xavier => {
            let bound = (3.0 / fan_in).sqrt();
            (0..count)
                .map(|_| rng.random_range(-bound..=bound))
                .collect()
        }
        Init::He | Init::Gaussian { .. } => {
            let sigma = match init {
                Init::Gaussian { sigma } => sigma,
                _ => (2.0 / fan_in).sqrt(),
            };
            // `validate` keeps sigma positive and finite, so this cannot fail.
            let normal = Normal::new(0.0, sigma).expect("valid standard deviation");
            (0..count).map(|_| normal.sample(rng)).collect()
        }
    }
}

impl Network {
    /// Creates the network's variables in `varmap` (replacing any of the same name) on `device`,
    /// in f32, initialised per the spec's `init` and `bias_init` from a ChaCha8 RNG seeded with
    /// `init_seed` (drawn on the host, so the same seed gives the same weights on every device).
    pub fn new(
        spec: &ModelSpec,
        varmap: &VarMap,
        device: &Device,
        init_seed: u64,
    ) -> Result<Self, ModelError> {
        Self::with_dtype(spec, varmap, device, DType::F32, init_seed)
    }

    /// Like [`Network::new`] with a chosen float `dtype` (f32 or f64 on the CPU).
    pub fn with_dtype(
        spec: &ModelSpec,
        varmap: &VarMap,
        device: &Device,
        dtype: DType,
        init_seed: u64,
    ) -> Result<Self, ModelError> {
        let options = ModelOptions {
            init: spec.init,
            bias_init: spec.bias_init,
            ..ModelOptions::default()
        };
        options.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(init_seed);
        let mut data = varmap.data().lock().map_err(|_| ModelError::Poisoned)?;
        let mut channels = INPUT_CHANNELS;
        let mut conv_index = 0;
        let mut layers = Vec::with_capacity(spec.layers.len());
        for layer in &spec.layers {
            layers.push(match *layer {
                LayerSpec::Dropout { rate } => Layer::Dropout { rate },
                LayerSpec::Conv {
                    kernel,
                    out,
                    stride,
                    pad,
                    relu,
                } => {
                    conv_index += 1;
                    let fan_in = channels * kernel * kernel;
                    let w = initial_weights(options.init, fan_in, out * fan_in, &mut rng);
                    let w = Tensor::from_vec(w, (out, channels, kernel, kernel), device)?
                        .to_dtype(dtype)?;
                    let b = Tensor::full(options.bias_init, out, device)?.to_dtype(dtype)?;
                    let weight = Var::from_tensor(&w)?;
                    let bias = Var::from_tensor(&b)?;
                    let layer = Layer::Conv {
                        weight: weight.as_tensor().clone(),
                        bias: bias.as_tensor().clone(),
                        stride,
                        pad,
                        relu,
                    };
                    data.insert(format!("conv{conv_index}.weight"), weight);
                    data.insert(format!("conv{conv_index}.bias"), bias);
                    channels = out;
                    layer
                }
                LayerSpec::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => Layer::MaxPool {
                    kernel,
                    stride,
                    pad,
                },
                LayerSpec::GlobalAvgPool => Layer::GlobalAvgPool,
            });
        }
        Ok(Self {
            spec: spec.clone(),
            layers,
        })
    }

    /// The description this network was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Logits `[B, classes]` (before softmax) of images `x [B, 3, H, W]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let mut dropout_index = 0u64;
        let mut layers = self.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            // A pool followed by dropout runs as one op (same values and gradients, one graph
            // node fewer: see `ops::max_pool2d_dropout`).
            if let (
                Layer::MaxPool {
                    kernel,
                    stride,
                    pad,
                },
                Some(Layer::Dropout { rate }),
                Mode::Train { dropout_seed },
            ) = (layer, layers.peek(), mode)
            {
                dropout_index += 1;
                let dropout = ops::Dropout::new(*rate, dropout_seed, dropout_index)?;
                h = ops::max_pool2d_dropout(&h, *kernel, *stride, *pad, dropout)?;
                layers.next();
                continue;
            }
            // Likewise a convolution with ReLU followed by dropout (the strided convolutions
            // of the Strided-CNN and All-CNN models: see `ops::conv2d_relu_dropout`).
            if let (
                Layer::Conv {
                    weight,
                    bias,
                    stride,
                    pad,
                    relu: true,
                },
                Some(Layer::Dropout { rate }),
                Mode::Train { dropout_seed },
            ) = (layer, layers.peek(), mode)
            {
                dropout_index += 1;
                let dropout = ops::Dropout::new(*rate, dropout_seed, dropout_index)?;
                h = ops::conv2d_relu_dropout(&h, weight, bias, *stride, *pad, dropout)?;
                layers.next();
                continue;
            }
            h = match layer {
                Layer::Dropout { rate } => {
                    dropout_index += 1;
                    match mode {
                        Mode::Eval => h,
                        Mode::Train { dropout_seed } => {
                            dropout(&h, *rate, dropout_seed, dropout_index)?
                        }
                    }
                }
                Layer::Conv {
                    weight,
                    bias,
                    stride,
                    pad,
                    relu,
                } => {
                    if *relu {
                        ops::conv2d_relu(&h, weight, bias, *stride, *pad)?
                    } else {
                        ops::conv2d(&h, weight, bias, *stride, *pad)?
                    }
                }
                Layer::MaxPool {
                    kernel,
                    stride,
                    pad,
                } => ops::max_pool2d(&h, *kernel, *stride, *pad)?,
                Layer::GlobalAvgPool => h.mean((2, 3))?,
            };
        }
        Ok(h)
    }
}

/// Inverted dropout: zero each element with probability `rate` (in `[0, 1)`), scale the rest by
/// `1 / (1 - rate)`. The mask is a hash of `(seed, stream, element index)`, the same on every
/// device ([`ops::Dropout`]); the backward pass regenerates it. `rate` 0 returns `x`.
pub fn dropout(x: &Tensor, rate: f64, seed: u64, stream: u64) -> candle_core::Result<Tensor> {
    ops::dropout(x, rate, seed, stream)
}
