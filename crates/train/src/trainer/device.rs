//! The process-wide settings of the compute device that a run's configuration asks for.

use crate::config::TrainingConfig;

/// Process-wide settings of the compute device that a run's configuration asks for; called once
/// per run before the network is built.
pub fn apply_device_settings(training: &TrainingConfig) {
    allconv_models::ops::set_tf32(training.precision.is_tf32());
    // Deterministic cuDNN algorithms only (CUDA); the CPU ops are deterministic regardless.
    allconv_models::ops::set_deterministic(training.deterministic);
    // `auto` leaves the engine the device gate chose (our own unless it failed the check).
    if let Some(engine) = training.conv_engine.fixed() {
        allconv_models::ops::set_conv_engine(engine);
    }
}
