//! The process-wide settings of the compute device that a run's configuration asks for.

use crate::config::TrainingConfig;
use crate::config_error::ConfigError;
use crate::error::{Result, TrainError};

/// Process-wide settings of the compute device that a run's configuration asks for; called once
/// per run before the network is built. A CPU kernel path this CPU lacks
/// (`training.cpu_kernels`) is refused, naming the key and the missing extension.
pub fn apply_device_settings(training: &TrainingConfig) -> Result<()> {
    allconv_models::ops::set_tf32(training.precision.is_tf32());
    // Deterministic cuDNN algorithms only (CUDA); the CPU ops are deterministic regardless.
    allconv_models::ops::set_deterministic(training.deterministic);
    // `auto` leaves the engine the device gate chose (our own unless it failed the check).
    if let Some(engine) = training.conv_engine.fixed() {
        allconv_models::ops::set_conv_engine(engine);
    }
    // `auto` leaves the path the caller chose (by default the widest this CPU runs).
    if let Some(kernels) = training.cpu_kernels.fixed() {
        allconv_models::ops::set_cpu_kernels(kernels).map_err(|refused| {
            TrainError::invalid(ConfigError::Model {
                key: "training.cpu_kernels",
                refused,
            })
        })?;
    }
    Ok(())
}
