//! A [`ModelSpec`] turned into trainable candle tensors.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::ops::ReluBackward;
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

/// What [`Network::input_gradient`] propagates back to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The logit of class `0..classes`.
    Class(usize),
    /// Channel `unit` of convolution `conv` (counted from 1, as in `conv{i}.weight`), at the
    /// spatial position where it is largest in each image (the first such position on ties).
    Unit {
        /// Which convolution (1-based).
        conv: usize,
        /// Which of its output channels (0-based).
        unit: usize,
    },
}

/// Where a unit of a convolution is largest in one image: the position [`Target::Unit`] takes its
/// gradient at (the first such position on ties, row-major).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitPeak {
    /// Row of the convolution's output.
    pub row: usize,
    /// Column of the convolution's output.
    pub col: usize,
    /// The unit's output there (after its ReLU, if any).
    pub activation: f32,
}

impl UnitPeak {
    /// Whether the unit fired (was positive) anywhere in the image. A unit that never fired is
    /// 0 everywhere after its ReLU, so its "largest" position is the first one, (0, 0), and
    /// its reconstruction shows nothing the image made it do.
    pub fn fired(&self) -> bool {
        self.activation > 0.0
    }
}

/// A forward pass that keeps what the visualisation needs: every convolution's output.
#[derive(Debug, Clone)]
pub struct Traced {
    /// Output of each convolution (after its ReLU, if any), `conv_outputs[i]` of `conv{i+1}`.
    pub conv_outputs: Vec<Tensor>,
    /// The logits `[B, classes]`.
    pub logits: Tensor,
}

/// One of the networks, its weights held in a [`VarMap`] as `conv{i}.weight` `[out, in, kh, kw]`
/// and `conv{i}.bias` `[out]` (`i` counts the convolutions from 1), PyTorch names and layouts.
#[derive(Debug, Clone)]
pub struct Network {
    /// The layers, walked in order by every pass.
    spec: ModelSpec,
    /// `(weight, bias)` of each convolution of `spec`, in order: the tensors of the VarMap's
    /// variables.
    convs: Vec<(Tensor, Tensor)>,
}

/// What a pass over the layers does where passes differ; [`Network::walk`] is the one walk.
#[derive(Debug, Clone, Copy)]
enum Pass {
    /// [`Network::forward`]: dropout drawn in training mode (and fused into the layer before it
    /// where an op does both), skipped in evaluation.
    Forward(Mode),
    /// [`Network::forward_traced`]: evaluation, every ReLU passing gradients back by the rule.
    Traced(ReluBackward),
}

impl Pass {
    /// The seed of the dropout masks, in training only.
    fn dropout_seed(self) -> Option<u64> {
        match self {
            Pass::Forward(Mode::Train { dropout_seed }) => Some(dropout_seed),
            Pass::Forward(Mode::Eval) | Pass::Traced(_) => None,
        }
    }
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
        let mut convs = Vec::new();
        for layer in &spec.layers {
            if let LayerSpec::Conv { kernel, out, .. } = *layer {
                let fan_in = channels * kernel * kernel;
                let w = initial_weights(options.init, fan_in, out * fan_in, &mut rng);
                let w = Tensor::from_vec(w, (out, channels, kernel, kernel), device)?
                    .to_dtype(dtype)?;
                let b = Tensor::full(options.bias_init, out, device)?.to_dtype(dtype)?;
                let weight = Var::from_tensor(&w)?;
                let bias = Var::from_tensor(&b)?;
                convs.push((weight.as_tensor().clone(), bias.as_tensor().clone()));
                let conv_index = convs.len();
                data.insert(format!("conv{conv_index}.weight"), weight);
                data.insert(format!("conv{conv_index}.bias"), bias);
                channels = out;
            }
        }
        Ok(Self {
            spec: spec.clone(),
            convs,
        })
    }

    /// The description this network was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Logits `[B, classes]` (before softmax) of images `x [B, 3, H, W]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.walk(x, Pass::Forward(mode), None)
    }

    /// Number of convolutions (`conv1` ... `conv{n}`).
    pub fn conv_count(&self) -> usize {
        self.convs.len()
    }

    /// The evaluation forward pass (no dropout) of `x [B, 3, H, W]` whose ReLUs pass gradients
    /// back by `rule`, keeping every convolution's output. With [`ReluBackward::Backprop`] its
    /// values and gradients are those of `forward(x, Mode::Eval)`.
    pub fn forward_traced(&self, x: &Tensor, rule: ReluBackward) -> candle_core::Result<Traced> {
        let mut conv_outputs = Vec::new();
        let logits = self.walk(x, Pass::Traced(rule), Some(&mut conv_outputs))?;
        Ok(Traced {
            conv_outputs,
            logits,
        })
    }

    /// The layers applied to `x` in order, as `pass` does them; each convolution's output
    /// (after its ReLU) pushed to `conv_outputs` if given (a pass that fuses no dropout). In
    /// training a layer followed by dropout runs as one op where one exists: the max-pool (see
    /// `ops::max_pool2d_dropout`) and a convolution with ReLU (the strided convolutions of the
    /// Strided-CNN and All-CNN models, see `ops::conv2d_relu_dropout`), the same values and
    /// gradients with one graph node fewer. Dropout layers are counted from 1 (their mask
    /// stream) whether fused or not.
    fn walk(
        &self,
        x: &Tensor,
        pass: Pass,
        mut conv_outputs: Option<&mut Vec<Tensor>>,
    ) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let mut dropout_index = 0u64;
        let mut convs = self.convs.iter();
        let mut layers = self.spec.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            let next_dropout = match layers.peek() {
                Some(LayerSpec::Dropout { rate }) => Some(*rate),
                _ => None,
            };
            // In training, the dropout after a max-pool or a convolution with ReLU is taken
            // here (counted and skipped) and applied by the fused op.
            let fused = match (layer, next_dropout, pass.dropout_seed()) {
                (
                    LayerSpec::MaxPool { .. } | LayerSpec::Conv { relu: true, .. },
                    Some(rate),
                    Some(seed),
                ) => {
                    layers.next();
                    dropout_index += 1;
                    Some(ops::Dropout::new(rate, seed, dropout_index)?)
                }
                _ => None,
            };
            h = match (*layer, fused) {
                (LayerSpec::Dropout { rate }, _) => {
                    dropout_index += 1;
                    match pass.dropout_seed() {
                        Some(seed) => dropout(&h, rate, seed, dropout_index)?,
                        None => h,
                    }
                }
                (
                    LayerSpec::Conv {
                        stride, pad, relu, ..
                    },
                    fused,
                ) => {
                    let weights = convs.next().expect("one (weight, bias) per convolution");
                    let y = conv(&h, weights, (stride, pad, relu), fused, pass)?;
                    if let Some(outputs) = conv_outputs.as_deref_mut() {
                        outputs.push(y.clone());
                    }
                    y
                }
                (
                    LayerSpec::MaxPool {
                        kernel,
                        stride,
                        pad,
                    },
                    Some(dropout),
                ) => ops::max_pool2d_dropout(&h, kernel, stride, pad, dropout)?,
                (
                    LayerSpec::MaxPool {
                        kernel,
                        stride,
                        pad,
                    },
                    None,
                ) => ops::max_pool2d(&h, kernel, stride, pad)?,
                (LayerSpec::GlobalAvgPool, _) => h.mean((2, 3))?,
            };
        }
        Ok(h)
    }

    /// The gradient `[B, 3, H, W]` of `target` (summed over the batch; images do not interact
    /// without dropout) with respect to the input `x`, every ReLU passing it back by `rule`:
    /// plain backpropagation, the deconvnet rule or guided backpropagation
    /// (docs/protocol.md, "Visualising what the networks learned").
    pub fn input_gradient(
        &self,
        x: &Tensor,
        target: Target,
        rule: ReluBackward,
    ) -> Result<Tensor, ModelError> {
        let input = Var::from_tensor(&x.detach())?;
        let traced = self.forward_traced(input.as_tensor(), rule)?;
        let objective = match target {
            Target::Class(k) => {
                let classes = traced.logits.dim(D::Minus1)?;
                if k >= classes {
                    return Err(ModelError::InvalidTarget(format!(
                        "class {k}: the network has classes 0..{classes}"
                    )));
                }
                traced.logits.narrow(1, k, 1)?.sum_all()?
            }
            Target::Unit { conv, unit } => {
                let plane = unit_plane(&traced, conv, unit)?.flatten_from(1)?;
                let one_hot = first_argmax_one_hot(&plane)?;
                (plane * one_hot)?.sum_all()?
            }
        };
        let grads = objective.backward()?;
        match grads.get(input.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => Ok(input.as_tensor().zeros_like()?),
        }
    }

    /// For each image of `x`, where unit `unit` of convolution `conv` is largest: the position
    /// [`Network::input_gradient`] of that [`Target::Unit`] takes the gradient at, and whether
    /// the unit fired at all ([`UnitPeak::fired`]).
    pub fn unit_peaks(
        &self,
        x: &Tensor,
        conv: usize,
        unit: usize,
    ) -> Result<Vec<UnitPeak>, ModelError> {
        let traced = self.forward_traced(&x.detach(), ReluBackward::Backprop)?;
        let plane = unit_plane(&traced, conv, unit)?;
        let width = plane.dim(3)?;
        Ok(row_peaks(&plane.flatten_from(1)?)?
            .into_iter()
            .map(|(best, value)| UnitPeak {
                row: best / width,
                col: best % width,
                activation: value as f32,
            })
            .collect())
    }
}

/// One convolution in `pass`: with ReLU and the dropout after it where training fused one, else
/// plain or with ReLU (whose backward follows the traced pass's rule).
fn conv(
    h: &Tensor,
    (weight, bias): &(Tensor, Tensor),
    (stride, pad, relu): (usize, usize, bool),
    fused: Option<ops::Dropout>,
    pass: Pass,
) -> candle_core::Result<Tensor> {
    match (fused, relu, pass) {
        (Some(dropout), _, _) => ops::conv2d_relu_dropout(h, weight, bias, stride, pad, dropout),
        (None, false, _) => ops::conv2d(h, weight, bias, stride, pad),
        (None, true, Pass::Forward(_)) => ops::conv2d_relu(h, weight, bias, stride, pad),
        (None, true, Pass::Traced(rule)) => {
            ops::conv2d_relu_rule(h, weight, bias, stride, pad, rule)
        }
    }
}

/// The output `[B, 1, H, W]` of unit `unit` of convolution `conv` (1-based) in a traced pass;
/// an error names a convolution or unit the network does not have.
fn unit_plane(traced: &Traced, conv: usize, unit: usize) -> Result<Tensor, ModelError> {
    let Some(a) = conv.checked_sub(1).and_then(|i| traced.conv_outputs.get(i)) else {
        return Err(ModelError::InvalidTarget(format!(
            "conv{conv}: the network has conv1..conv{}",
            traced.conv_outputs.len()
        )));
    };
    let channels = a.dim(1)?;
    if unit >= channels {
        return Err(ModelError::InvalidTarget(format!(
            "unit {unit} of conv{conv}: it has units 0..{channels}"
        )));
    }
    Ok(a.narrow(1, unit, 1)?)
}

/// The index of the first largest element of `row` (0 for an empty row).
fn first_argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Per row of a `[B, L]` tensor: the index of its first largest element and the value there
/// (0 and 0.0 for an empty row).
fn row_peaks(flat: &Tensor) -> candle_core::Result<Vec<(usize, f64)>> {
    let rows = flat.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    Ok(rows
        .iter()
        .map(|row| {
            let best = first_argmax(row);
            (best, row.get(best).copied().unwrap_or(0.0))
        })
        .collect())
}

/// A `[B, L]` tensor like `plane`, 1 at the first largest element of each row and 0 elsewhere.
fn first_argmax_one_hot(plane: &Tensor) -> candle_core::Result<Tensor> {
    let width = plane.dim(1)?;
    let mut mask = Vec::with_capacity(plane.elem_count());
    for (best, _) in row_peaks(plane)? {
        mask.extend((0..width).map(|i| if i == best { 1.0 } else { 0.0 }));
    }
    Tensor::from_vec(mask, plane.shape(), &Device::Cpu)?
        .to_dtype(plane.dtype())?
        .to_device(plane.device())
}

/// Inverted dropout: zero each element with probability `rate` (in `[0, 1)`), scale the rest by
/// `1 / (1 - rate)`. The mask is a hash of `(seed, stream, element index)`, the same on every
/// device ([`ops::Dropout`]); the backward pass regenerates it. `rate` 0 returns `x`.
pub fn dropout(x: &Tensor, rate: f64, seed: u64, stream: u64) -> candle_core::Result<Tensor> {
    ops::dropout(x, rate, seed, stream)
}
