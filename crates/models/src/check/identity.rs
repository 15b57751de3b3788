//! What a device check's result depends on besides the binary: the GPU, its driver and cuDNN.

use candle_core::Device;

use super::CheckError;

/// The device as a check result depends on it: `cpu <model> (<kernel path>)` on the CPU;
/// `<GPU name> | driver <version> | cuDNN <version>` on CUDA.
pub fn device_identity(device: &Device) -> Result<String, CheckError> {
    match device {
        Device::Cpu => Ok(format!(
            "cpu {} ({})",
            crate::ops::cpu_model(),
            crate::ops::cpu_kernels().name()
        )),
        #[cfg(feature = "cuda")]
        Device::Cuda(dev) => cuda_identity(dev),
        _ => Err(CheckError::Invalid(format!(
            "no identity for device {:?}",
            device.location()
        ))),
    }
}

#[cfg(feature = "cuda")]
fn cuda_identity(dev: &candle_core::CudaDevice) -> Result<String, CheckError> {
    let stream = dev.cuda_stream();
    let name = stream
        .context()
        .name()
        .map_err(|e| CheckError::Invalid(format!("reading the GPU's name: {e:?}")))?;
    let mut driver: std::ffi::c_int = 0;
    // SAFETY: cuDriverGetVersion only writes the version into the given integer; the driver
    // is initialised (the context above exists).
    let status = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver) };
    if status != cudarc::driver::sys::CUresult::CUDA_SUCCESS {
        return Err(CheckError::Invalid(format!(
            "reading the CUDA driver version: {status:?}"
        )));
    }
    let cudnn = cudarc::cudnn::result::get_version();
    Ok(format!(
        "{name} | driver {}.{} | cuDNN {cudnn}",
        driver / 1000,
        (driver % 1000) / 10
    ))
}
