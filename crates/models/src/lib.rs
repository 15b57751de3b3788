#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod check;
mod device;
mod init;
pub mod network;
pub mod ops;
pub mod spec;

pub use device::open_device;
pub use network::{dropout, Mode, Network, Target, Traced, UnitPeak};
pub use ops::ReluBackward;
pub use spec::{
    spec, window_output, Init, LayerSpec, ModelOptions, ModelSpec, INPUT_CHANNELS, INPUT_SIZE,
    MODEL_NAMES,
};

/// Makes glibc keep freed activation buffers for reuse instead of returning them to the
/// kernel; call once at program start. Returns whether the setting was applied.
///
/// Why: a training step allocates and frees tens of buffers of up to ~50 MB. glibc serves
/// every allocation above its mmap threshold (at most 32 MB by default) with a fresh `mmap`,
/// so each one page-faults and is zeroed by the kernel again; on the first convolution layer
/// that was about half of its time. Raising the thresholds lets the heap recycle them. Does
/// nothing (returns false) on other platforms.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called before the buffers
        // it affects exist and is thread-safe in glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model name that is not one of [`MODEL_NAMES`].
    #[error("unknown model '{name}'; valid models (case-insensitive): {valid}")]
    UnknownModel {
        /// The name as given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// An option outside its range.
    #[error("model option '{key}': expected {expected}, got {got}")]
    InvalidOption {
        /// The option's key in the `model:` config section.
        key: String,
        /// What is allowed.
        expected: String,
        /// The value given.
        got: String,
    },
    /// A CPU kernel path was asked for (`ops::use_cpu_kernels`, `ops::set_cpu_kernels`) that
    /// this CPU cannot run.
    #[error(
        "CPU kernels '{requested}' need {missing}, which this CPU lacks; use '{best}' (the widest \
         it supports) or 'auto'"
    )]
    UnsupportedCpuKernels {
        /// The path asked for.
        requested: &'static str,
        /// The instruction-set extension it needs.
        missing: &'static str,
        /// The widest path this CPU runs.
        best: &'static str,
    },
    /// A name that is no CPU kernel request (`ops::CpuKernelsChoice::parse`).
    #[error("unknown CPU kernels '{got}': expected one of auto, avx512, avx2, portable")]
    UnknownCpuKernels {
        /// The name given.
        got: String,
    },
    /// A visualisation target the network does not have.
    #[error("target {0}")]
    InvalidTarget(String),
    /// The `VarMap`'s lock was poisoned by a panic in another thread.
    #[error("the VarMap lock is poisoned (another thread panicked while holding it)")]
    Poisoned,
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
