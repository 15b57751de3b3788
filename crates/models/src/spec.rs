//! The declarative description of the 12 networks: three base models written once as layer
//! lists, and three rules that turn a base model into its Strided-CNN, ConvPool-CNN and All-CNN
//! variants.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::init::Init;
use crate::ModelError;

/// Channels of the input images (CIFAR RGB).
pub const INPUT_CHANNELS: usize = 3;
/// Height and width of the input images (CIFAR).
pub const INPUT_SIZE: usize = 32;

/// The 12 canonical model names, in the order of the paper's tables (A, B, C; each with its
/// base model, Strided-CNN, ConvPool-CNN and All-CNN).
pub const MODEL_NAMES: [&str; 12] = [
    "model-a",
    "strided-cnn-a",
    "convpool-cnn-a",
    "all-cnn-a",
    "model-b",
    "strided-cnn-b",
    "convpool-cnn-b",
    "all-cnn-b",
    "model-c",
    "strided-cnn-c",
    "convpool-cnn-c",
    "all-cnn-c",
];

/// One layer of a network. Input channels are implied by the layer before.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerSpec {
    /// Inverted dropout with this drop probability (training mode only).
    Dropout {
        /// Probability of zeroing an element.
        rate: f64,
    },
    /// Square convolution with bias, optionally followed by a ReLU.
    Conv {
        /// Kernel height and width.
        kernel: usize,
        /// Output channels.
        out: usize,
        /// Stride in both directions.
        stride: usize,
        /// Zero padding on every side.
        pad: usize,
        /// Whether a ReLU follows.
        relu: bool,
    },
    /// Max-pooling with implicit -inf padding (PyTorch `MaxPool2d(kernel, stride, padding=pad)`).
    MaxPool {
        /// Window height and width.
        kernel: usize,
        /// Stride in both directions.
        stride: usize,
        /// Padding on every side (never selected by the max).
        pad: usize,
    },
    /// Average over all spatial positions: `[B, C, H, W]` -> `[B, C]`.
    GlobalAvgPool,
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayerSpec::Dropout { rate } => write!(f, "dropout {rate}"),
            LayerSpec::Conv {
                kernel,
                out,
                stride,
                pad,
                relu,
            } => {
                write!(f, "{kernel}x{kernel} conv {out}")?;
                if stride != 1 {
                    write!(f, " stride {stride}")?;
                }
                write!(f, " pad {pad}")?;
                if relu {
                    write!(f, " + ReLU")?;
                }
                Ok(())
            }
            LayerSpec::MaxPool {
                kernel,
                stride,
                pad,
            } => write!(f, "{kernel}x{kernel} max-pool stride {stride} pad {pad}"),
            LayerSpec::GlobalAvgPool => write!(f, "global average pool"),
        }
    }
}

/// Options of the networks that a config may set (the `model:` section of the trainer's YAML).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelOptions {
    /// Number of classes (outputs of the last 1x1 convolution).
    pub num_classes: usize,
    /// ReLU after the final class-score convolution (the paper's table has it).
    pub final_relu: bool,
    /// Dropout rate on the input image.
    pub input_dropout: f64,
    /// Dropout rate after each pooling layer or the layer that replaces it.
    pub pool_dropout: f64,
    /// Weight initialisation.
    pub init: Init,
    /// Constant initial value of every bias.
    pub bias_init: f64,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            num_classes: 10,
            final_relu: true,
            input_dropout: 0.2,
            pool_dropout: 0.5,
            init: Init::Xavier,
            bias_init: 0.0,
        }
    }
}

impl ModelOptions {
    /// Checks ranges: at least one class, dropout rates in `[0, 1)`, a positive finite sigma.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |key: &str, expected: &str, got: String| {
            Err(ModelError::InvalidOption {
                key: key.to_string(),
                expected: expected.to_string(),
                got,
            })
        };
        if self.num_classes == 0 {
            return bad("num_classes", "at least 1", self.num_classes.to_string());
        }
        for (key, rate) in [
            ("input_dropout", self.input_dropout),
            ("pool_dropout", self.pool_dropout),
        ] {
            if !(0.0..1.0).contains(&rate) {
                return bad(key, "a rate in [0, 1)", rate.to_string());
            }
        }
        if let Init::Gaussian { sigma } = self.init {
            if !(sigma.is_finite() && sigma > 0.0) {
                return bad(
                    "init.gaussian.sigma",
                    "a positive number",
                    sigma.to_string(),
                );
            }
        }
        if !self.bias_init.is_finite() {
            return bad("bias_init", "a finite number", self.bias_init.to_string());
        }
        Ok(())
    }
}

/// A network as data: its canonical name and its layers in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Canonical name, one of [`MODEL_NAMES`].
    pub name: String,
    /// Layers in order; the input is `INPUT_CHANNELS x INPUT_SIZE x INPUT_SIZE`.
    pub layers: Vec<LayerSpec>,
    /// Weight initialisation of every convolution.
    pub init: Init,
    /// Constant initial value of every bias.
    pub bias_init: f64,
}

impl ModelSpec {
    /// Number of trainable parameters (weights and biases of every convolution).
    pub fn parameter_count(&self) -> usize {
        let mut channels = INPUT_CHANNELS;
        let mut total = 0;
        for layer in &self.layers {
            if let LayerSpec::Conv { kernel, out, .. } = *layer {
                total += out * channels * kernel * kernel + out;
                channels = out;
            }
        }
        total
    }

    /// Output size `[channels, height, width]` after every layer, for a
    /// `INPUT_CHANNELS x INPUT_SIZE x INPUT_SIZE` input (`[classes, 1, 1]` after the global
    /// average pool).
    pub fn shapes(&self) -> Vec<[usize; 3]> {
        let mut shape = [INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE];
        self.layers
            .iter()
            .map(|layer| {
                shape = match *layer {
                    LayerSpec::Dropout { .. } => shape,
                    LayerSpec::Conv {
                        kernel,
                        out,
                        stride,
                        pad,
                        ..
                    } => {
                        let size = window_output(shape[1], kernel, stride, pad);
                        [out, size, size]
                    }
                    LayerSpec::MaxPool {
                        kernel,
                        stride,
                        pad,
                    } => {
                        let size = window_output(shape[1], kernel, stride, pad);
                        [shape[0], size, size]
                    }
                    LayerSpec::GlobalAvgPool => [shape[0], 1, 1],
                };
                shape
            })
            .collect()
    }

    /// Number of convolution layers.
    pub fn conv_count(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| matches!(l, LayerSpec::Conv { .. }))
            .count()
    }
}

/// Output size of a sliding window (convolution or pooling, floor mode).
pub fn window_output(size: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    (size + 2 * pad).saturating_sub(kernel) / stride + 1
}

/// The three base models of the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    A,
    B,
    C,
}

/// The rule applied to a base model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Base,
    Strided,
    ConvPool,
    AllCnn,
}

fn conv(kernel: usize, out: usize) -> LayerSpec {
    LayerSpec::Conv {
        kernel,
        out,
        stride: 1,
        pad: kernel / 2,
        relu: true,
    }
}

/// The base model, written once: input dropout, two stages ending in a 3x3/2 max-pool and
/// dropout, then the common top (unpadded 3x3, 1x1, 1x1 to the classes, global average).
fn base_layers(base: Base, options: &ModelOptions) -> Vec<LayerSpec> {
    let stage = |channels: usize| -> Vec<LayerSpec> {
        match base {
            Base::A => vec![conv(5, channels)],
            Base::B => vec![conv(5, channels), conv(1, channels)],
            Base::C => vec![conv(3, channels), conv(3, channels)],
        }
    };
    let pool = LayerSpec::MaxPool {
        kernel: 3,
        stride: 2,
        pad: 1,
    };
    let dropout = |rate: f64| (rate > 0.0).then_some(LayerSpec::Dropout { rate });
    let mut layers = Vec::new();
    layers.extend(dropout(options.input_dropout));
    for channels in [96, 192] {
        layers.extend(stage(channels));
        layers.push(pool);
        layers.extend(dropout(options.pool_dropout));
    }
    layers.push(LayerSpec::Conv {
        kernel: 3,
        out: 192,
        stride: 1,
        pad: 0,
        relu: true,
    });
    layers.push(conv(1, 192));
    layers.push(LayerSpec::Conv {
        kernel: 1,
        out: options.num_classes,
        stride: 1,
        pad: 0,
        relu: options.final_relu,
    });
    layers.push(LayerSpec::GlobalAvgPool);
    layers
}

/// Applies a variant rule to every max-pool of a base model.
fn apply_variant(layers: Vec<LayerSpec>, variant: Variant) -> Vec<LayerSpec> {
    let mut result: Vec<LayerSpec> = Vec::with_capacity(layers.len() + 2);
    for layer in layers {
        let LayerSpec::MaxPool { stride, .. } = layer else {
            result.push(layer);
            continue;
        };
        // Channels of the convolution just before the pool.
        let previous_conv = result
            .iter_mut()
            .rev()
            .find(|l| matches!(l, LayerSpec::Conv { .. }));
        let Some(LayerSpec::Conv {
            out,
            stride: previous_stride,
            ..
        }) = previous_conv
        else {
            unreachable!("every base model has a convolution before each pool")
        };
        let channels = *out;
        match variant {
            Variant::Base => result.push(layer),
            // Delete the pool; the convolution before it takes over its stride.
            Variant::Strided => *previous_stride = stride,
            // A 3x3 convolution with the same channels before the pool.
            Variant::ConvPool => {
                result.push(conv(3, channels));
                result.push(layer);
            }
            // The pool becomes a 3x3 convolution with the pool's stride.
            Variant::AllCnn => result.push(LayerSpec::Conv {
                kernel: 3,
                out: channels,
                stride,
                pad: 1,
                relu: true,
            }),
        }
    }
    result
}

/// The network called `name` (case-insensitive, one of [`MODEL_NAMES`]) with `options`.
pub fn spec(name: &str, options: &ModelOptions) -> Result<ModelSpec, ModelError> {
    options.validate()?;
    let lower = name.trim().to_ascii_lowercase();
    let index = MODEL_NAMES
        .iter()
        .position(|n| *n == lower)
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            valid: MODEL_NAMES.join(", "),
        })?;
    let base = [Base::A, Base::B, Base::C][index / 4];
    let variant = [
        Variant::Base,
        Variant::Strided,
        Variant::ConvPool,
        Variant::AllCnn,
    ][index % 4];
    Ok(ModelSpec {
        name: MODEL_NAMES[index].to_string(),
        layers: apply_variant(base_layers(base, options), variant),
        init: options.init,
        bias_init: options.bias_init,
    })
}
