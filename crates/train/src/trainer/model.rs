//! The network of a run and its optimizer, built from the run's configuration (a fresh
//! initialisation from the run seed; a resume or `training.init_from` loads weights into it).

use allconv_models::Network;
use candle_core::Device;
use candle_nn::VarMap;

use crate::config::RunConfig;
use crate::error::Result;
use crate::optim::{Sgd, SgdConfig};

/// The network, the variables it trains and the optimizer over them.
pub(super) struct Model {
    /// The named variables of the network (what checkpoints save and load).
    pub(super) varmap: VarMap,
    pub(super) net: Network,
    pub(super) sgd: Sgd,
    /// Parameters of the network, for the result.
    pub(super) parameters: usize,
}

impl Model {
    /// Builds the network of `config.model` on `device`, initialised from the run seed, and the
    /// optimizer of the run's `optim:` section.
    pub(super) fn build(config: &RunConfig, device: &Device) -> Result<Model> {
        let exp = &config.config;
        let spec = allconv_models::spec(&config.model, &exp.model)?;
        let varmap = VarMap::new();
        let net = Network::new(&spec, &varmap, device, config.seed)?;
        let sgd = Sgd::from_varmap(
            &varmap,
            SgdConfig {
                lr: config.lr,
                momentum: exp.optim.momentum,
                weight_decay: exp.optim.weight_decay,
                weight_decay_bias: exp.optim.weight_decay_bias,
            },
        )?;
        Ok(Model {
            varmap,
            net,
            sgd,
            parameters: spec.parameter_count(),
        })
    }
}
