//! SGD with momentum and L2 weight decay, and the step learning-rate schedule. No file I/O:
//! the checkpoint module saves and restores the buffers ([`Sgd::momentum_buffers`],
//! [`Sgd::set_momentum_buffers`]).

use std::collections::BTreeMap;

use candle_core::{backprop::GradStore, Tensor, Var};

use crate::error::{Result, TrainError};

/// Hyper-parameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum `m`.
    pub momentum: f64,
    /// L2 weight decay `wd`.
    pub weight_decay: f64,
    /// Decay parameters whose name ends in `bias` too.
    pub weight_decay_bias: bool,
}

struct Param {
    name: String,
    var: Var,
    velocity: Tensor,
    decay: bool,
}

/// Stochastic gradient descent with momentum and L2 weight decay in PyTorch/Caffe semantics:
/// `v = m*v + g + wd*w; w -= lr*v`, one velocity buffer per parameter, both updated in place by
/// one fused pass per parameter ([`allconv_models::ops::sgd_step`]).
///
/// candle-nn's own `SGD` has no momentum and no weight decay, hence this type. Buffers are keyed by
/// parameter *name* (a `VarMap`'s iteration order differs between processes), so they can be saved
/// and restored across a resume.
pub struct Sgd {
    params: Vec<Param>,
    config: SgdConfig,
}

impl Sgd {
    /// An optimizer over named parameters, with zero velocity buffers. Parameters whose name ends in
    /// `bias` are decayed only when `weight_decay_bias` is set.
    pub fn from_named(vars: Vec<(String, Var)>, config: SgdConfig) -> Result<Self> {
        let mut params = Vec::with_capacity(vars.len());
        let mut seen = std::collections::BTreeSet::new();
        for (name, var) in vars {
            if !var.dtype().is_float() {
                continue;
            }
            if !seen.insert(name.clone()) {
                return Err(TrainError::DuplicateParameter { name });
            }
            let velocity = var.as_tensor().zeros_like()?;
            let decay = config.weight_decay_bias || !name.ends_with("bias");
            params.push(Param {
                name,
                var,
                velocity,
                decay,
            });
        }
        Ok(Sgd { params, config })
    }

    /// An optimizer over every variable of a `VarMap`, by name.
    pub fn from_varmap(varmap: &candle_nn::VarMap, config: SgdConfig) -> Result<Self> {
        Self::from_named(crate::vars::named_vars(varmap)?, config)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> SgdConfig {
        self.config
    }

    /// The parameter names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    /// The velocity buffers by parameter name. They share storage with the optimizer's own
    /// buffers, which [`candle_nn::Optimizer::step`] updates in place: copy them to keep a
    /// snapshot across a step.
    pub fn momentum_buffers(&self) -> BTreeMap<String, Tensor> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.velocity.clone()))
            .collect()
    }

    /// Replaces the velocity buffers; every parameter must get one of its own shape, and no
    /// unknown name is accepted.
    pub fn set_momentum_buffers(&mut self, buffers: &BTreeMap<String, Tensor>) -> Result<()> {
        let err = |reason: String| TrainError::Checkpoint {
            path: "<momentum buffers>".into(),
            reason,
        };
        for name in buffers.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(err(format!(
                    "momentum buffer for unknown parameter `{name}`"
                )));
            }
        }
        for p in &mut self.params {
            let buf = buffers
                .get(&p.name)
                .ok_or_else(|| err(format!("no momentum buffer for parameter `{}`", p.name)))?;
            if buf.dims() != p.var.dims() {
                return Err(err(format!(
                    "momentum buffer `{}` has shape {:?}, parameter has {:?}",
                    p.name,
                    buf.dims(),
                    p.var.dims()
                )));
            }
            // A copy of its own: the steps update it in place, and must not write into the
            // caller's tensor (or into storage that a view shares).
            p.velocity = buf
                .to_device(p.var.device())?
                .to_dtype(p.var.dtype())?
                .contiguous()?
                .copy()?;
        }
        Ok(())
    }

    /// The device of the parameters (the CPU for an optimizer without parameters).
    pub fn device(&self) -> candle_core::Device {
        self.params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu)
    }
}

impl candle_nn::Optimizer for Sgd {
    type Config = SgdConfig;

    /// Unnamed variables get the names `param.0`, `param.1`, ... (prefer [`Sgd::from_named`]).
    fn new(vars: Vec<Var>, config: SgdConfig) -> candle_core::Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("param.{i}"), v))
            .collect();
        Sgd::from_named(named, config).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let SgdConfig {
            lr,
            momentum,
            weight_decay,
            ..
        } = self.config;
        for p in &self.params {
            let Some(grad) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let weight_decay = if p.decay { weight_decay } else { 0.0 };
            // One fused in-place pass (one kernel on CUDA) over weights and velocity.
            allconv_models::ops::sgd_step(
                p.var.as_tensor(),
                &p.velocity,
                grad,
                lr,
                momentum,
                weight_decay,
            )?;
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr
    }
}

/// Step learning-rate schedule: the base rate multiplied by `gamma` once for every milestone
/// already passed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSchedule {
    /// Learning rate of the first epoch.
    pub base_lr: f64,
    /// Epoch counts after which the rate is multiplied by `gamma` (paper: 200, 250, 300).
    pub milestones: Vec<usize>,
    /// Factor per milestone (paper: 0.1).
    pub gamma: f64,
}

impl StepSchedule {
    /// The learning rate of 0-based epoch `epoch`: `base * gamma^(number of milestones <= epoch)`,
    /// so with milestone 200 the 201st epoch (index 200) is the first with the lower rate, as in
    /// PyTorch's `MultiStepLR` stepped once per epoch.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
        self.base_lr * self.gamma.powi(passed as i32)
    }
}
