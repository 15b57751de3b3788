//! The scratch memory of cuDNN calls: growing the shared workspace, and the raw pointer of an
//! optional buffer as cuDNN takes it (used by the algorithm timing and by every call).

use std::ffi::c_void;
use std::sync::Arc;

use candle_core::Result;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut};

use super::{driver_error, Key};

/// Grows the shared workspace to at least `bytes`.
pub(super) fn ensure_workspace(
    workspace: &mut Option<CudaSlice<u8>>,
    stream: &Arc<CudaStream>,
    bytes: usize,
    op: &str,
    key: &Key,
) -> Result<()> {
    if bytes > workspace.as_ref().map_or(0, |w| w.len()) {
        // Free the old buffer first so the stream-ordered pool can reuse its memory.
        *workspace = None;
        // SAFETY: a workspace is scratch memory; cuDNN never reads what it did not write.
        let fresh = unsafe { stream.alloc::<u8>(bytes) }.map_err(driver_error(
            op,
            "allocating the cuDNN workspace",
            key,
        ))?;
        *workspace = Some(fresh);
    }
    Ok(())
}

/// The device pointer of an optional buffer (null when absent), with its use-tracking guard.
pub(super) fn raw_mut<'a>(
    buf: &'a mut Option<CudaSlice<u8>>,
    stream: &'a CudaStream,
) -> (*mut c_void, usize, Option<cudarc::driver::SyncOnDrop<'a>>) {
    match buf.as_mut() {
        Some(b) => {
            let len = b.len();
            let (ptr, guard) = b.device_ptr_mut(stream);
            (ptr as *mut c_void, len, Some(guard))
        }
        None => (std::ptr::null_mut(), 0, None),
    }
}
