//! The run's data: loaded, normalised and uploaded to the device once, and the batch size
//! checked against it.

use allconv_cifar::{batch_count, DeviceSplit};
use candle_core::Device;

use crate::config::{ConfigError, RunConfig};
use crate::error::{Result, TrainError};

/// The three splits, uploaded to the device once.
pub(super) struct DeviceData {
    pub(super) train: DeviceSplit,
    pub(super) validation: DeviceSplit,
    pub(super) test: DeviceSplit,
}

/// Loads, normalises and uploads the run's data; returns it with the md5 of the
/// preprocessing statistics it was normalised with.
pub(super) fn load_data(config: &RunConfig, device: &Device) -> Result<(DeviceData, String)> {
    let exp = &config.config;
    let data_dir = exp.data.resolved_dir();
    let raw = allconv_cifar::load_dataset(exp.data.kind(), &data_dir)?;
    let data = allconv_cifar::prepare(
        &raw,
        &exp.data.prepare_options(),
        exp.data.cache_dir.as_deref(),
    )
    .map_err(|e| match e {
        // Name the configuration key, not the library's option.
        allconv_cifar::CifarError::InvalidOption { option, reason } => {
            TrainError::invalid(ConfigError::inconsistent(
                format!("data.{option}"),
                format!("data.{option}: {reason} (data in {})", data_dir.display()),
            ))
        }
        other => other.into(),
    })?;
    drop(raw);
    if data.train.is_empty() {
        return Err(TrainError::invalid(ConfigError::inconsistent(
            "data.validation",
            format!(
                "no training images left in {} after the validation split (data.validation) \
                 and data.train_subset",
                data_dir.display()
            ),
        )));
    }
    // Uploaded once: every batch is then gathered on the device (see `DeviceSplit`).
    Ok((
        DeviceData {
            train: DeviceSplit::new(&data.train, device)?,
            validation: DeviceSplit::new(&data.validation, device)?,
            test: DeviceSplit::new(&data.test, device)?,
        },
        data.statistics_md5,
    ))
}

/// Refuses a batch size that trains nothing, or that the CPU cannot hold.
pub(super) fn check_batches(
    config: &RunConfig,
    train_len: usize,
    device: &Device,
) -> Result<usize> {
    let training = &config.config.training;
    if device.is_cpu() {
        // No step holds more images than the data has, whatever the batch size says.
        let spec = allconv_models::spec(&config.model, &config.config.model)?;
        let batch = training.batch_size.min(train_len);
        crate::memory::check_cpu_batch(&spec, batch, "training.batch_size")
            .map_err(|e| TrainError::invalid(ConfigError::TooLarge(e)))?;
    }
    let steps_per_epoch = batch_count(train_len, training.batch_size, training.keep_last_batch);
    if steps_per_epoch == 0 {
        return Err(TrainError::invalid(ConfigError::inconsistent(
            "training.batch_size",
            format!(
                "training.batch_size {} is larger than the {train_len} training images and \
                 training.keep_last_batch is false: an epoch would train no SGD step; lower the \
                 batch size or keep the last batch",
                training.batch_size
            ),
        )));
    }
    Ok(steps_per_epoch)
}
