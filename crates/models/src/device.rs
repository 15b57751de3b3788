//! Opening the device a [`Device`] (`cpu`, `cuda:N`) names: the one place that turns the user's
//! word into a candle device.

use allconv_vocab::Device;

/// Opens `device`: the CPU, or CUDA GPU N (numbered as `CUDA_VISIBLE_DEVICES` leaves them; an
/// error without the `cuda` feature or without that GPU). Callers add which key or flag named
/// the device.
pub fn open_device(device: Device) -> candle_core::Result<candle_core::Device> {
    match device {
        Device::Cpu => Ok(candle_core::Device::Cpu),
        Device::Cuda(n) => candle_core::Device::new_cuda(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_opens_and_a_gpu_without_cuda_is_an_error() {
        assert!(open_device(Device::Cpu).unwrap().is_cpu());
        if !candle_core::utils::cuda_is_available() {
            assert!(open_device(Device::Cuda(0)).is_err());
        }
    }
}
