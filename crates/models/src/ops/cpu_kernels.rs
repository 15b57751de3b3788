//! Which SIMD kernels the CPU ops run: chosen at run time from what the CPU supports, so one
//! release binary serves every x86-64 machine (no `target-cpu=native`, no nightly toolchain).
//!
//! - [`CpuKernels::Avx512`]: 512-bit GEMM micro-kernels (AVX-512F).
//! - [`CpuKernels::Avx2`]: 256-bit GEMM micro-kernels (AVX2 + FMA); the AVX2 dropout hash.
//! - [`CpuKernels::Portable`]: the `gemm` crate with its own dispatch (NEON on aarch64, SSE or
//!   AVX on x86) and scalar loops elsewhere; what every non-x86 CPU runs.
//!
//! The widest supported path is the default; the caller forces one with [`use_cpu_kernels`]
//! (a [`CpuKernelsChoice`], as a configuration or a command line names it) or
//! [`set_cpu_kernels`], and a path the CPU lacks is refused with an error naming the missing
//! extension (never an illegal instruction). The library reads no environment variable: where
//! the choice comes from is the caller's business. Each path sums in its own order, so the
//! paths agree to rounding, not bit for bit; a given path with a given thread count repeats
//! itself exactly.

use crate::ModelError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU8, Ordering};

/// A set of CPU kernels the ops can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuKernels {
    /// 512-bit vectors (AVX-512F).
    Avx512,
    /// 256-bit vectors with fused multiply-add (AVX2 + FMA).
    Avx2,
    /// No x86-specific kernels: the `gemm` crate's own dispatch and plain loops.
    Portable,
}

/// Every path, widest first.
pub const ALL_CPU_KERNELS: [CpuKernels; 3] =
    [CpuKernels::Avx512, CpuKernels::Avx2, CpuKernels::Portable];

/// The instruction-set extensions that decide which [`CpuKernels`] can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX2 and FMA together.
    pub avx2_fma: bool,
}

impl CpuFeatures {
    /// What this CPU supports (all false on non-x86 CPUs).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            Self {
                avx512f: std::arch::is_x86_feature_detected!("avx512f"),
                avx2_fma: std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::default()
        }
    }
}

impl CpuKernels {
    /// The path's name, as a [`CpuKernelsChoice`] spells it: `avx512`, `avx2` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }

    /// The widest path a CPU with `features` runs.
    pub fn best_for(features: CpuFeatures) -> Self {
        if features.avx512f {
            Self::Avx512
        } else if features.avx2_fma {
            Self::Avx2
        } else {
            Self::Portable
        }
    }

    /// Whether a CPU with `features` can run this path.
    pub fn supported_by(self, features: CpuFeatures) -> bool {
        match self {
            // A CPU with AVX-512F has AVX2 + FMA too, but the 512-bit kernels need only F.
            Self::Avx512 => features.avx512f,
            Self::Avx2 => features.avx2_fma,
            Self::Portable => true,
        }
    }

    /// `Ok(self)` where a CPU with `features` runs this path, else an error naming what is missing.
    pub fn require(self, features: CpuFeatures) -> Result<Self, ModelError> {
        if self.supported_by(features) {
            return Ok(self);
        }
        let missing = match self {
            Self::Avx512 => "AVX-512F",
            _ => "AVX2 and FMA",
        };
        Err(ModelError::UnsupportedCpuKernels {
            requested: self.name(),
            missing,
            best: Self::best_for(features).name(),
        })
    }

    fn code(self) -> u8 {
        match self {
            Self::Avx512 => 1,
            Self::Avx2 => 2,
            Self::Portable => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        ALL_CPU_KERNELS.into_iter().find(|k| k.code() == code)
    }
}

impl std::fmt::Display for CpuKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request for a kernel path, as a configuration (`training.cpu_kernels`) or a command line
/// writes it: one path, or `auto`, which leaves the choice to whoever asked (by default the
/// widest path this CPU runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuKernelsChoice {
    /// No path asked for: the widest this CPU runs, unless the caller decides otherwise.
    #[default]
    Auto,
    /// [`CpuKernels::Avx512`].
    Avx512,
    /// [`CpuKernels::Avx2`].
    Avx2,
    /// [`CpuKernels::Portable`].
    Portable,
}

/// Every request, `auto` first, then the paths widest first.
pub const ALL_CPU_KERNEL_CHOICES: [CpuKernelsChoice; 4] = [
    CpuKernelsChoice::Auto,
    CpuKernelsChoice::Avx512,
    CpuKernelsChoice::Avx2,
    CpuKernelsChoice::Portable,
];

impl CpuKernelsChoice {
    /// `auto`, `avx512`, `avx2` or `portable`.
    pub fn name(self) -> &'static str {
        match self.fixed() {
            Some(kernels) => kernels.name(),
            None => "auto",
        }
    }

    /// The path asked for, or `None` for `auto`.
    pub fn fixed(self) -> Option<CpuKernels> {
        match self {
            Self::Auto => None,
            Self::Avx512 => Some(CpuKernels::Avx512),
            Self::Avx2 => Some(CpuKernels::Avx2),
            Self::Portable => Some(CpuKernels::Portable),
        }
    }

    /// Parses a name (any letter case, blanks around it ignored).
    pub fn parse(name: &str) -> Result<Self, ModelError> {
        ALL_CPU_KERNEL_CHOICES
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ModelError::UnknownCpuKernels {
                got: name.to_string(),
            })
    }

    /// The path a CPU with `features` runs for this request: `auto` is the widest it supports;
    /// a path it lacks is an error naming the missing extension.
    pub fn resolve(self, features: CpuFeatures) -> Result<CpuKernels, ModelError> {
        match self.fixed() {
            Some(kernels) => kernels.require(features),
            None => Ok(CpuKernels::best_for(features)),
        }
    }
}

impl From<CpuKernels> for CpuKernelsChoice {
    fn from(kernels: CpuKernels) -> Self {
        match kernels {
            CpuKernels::Avx512 => Self::Avx512,
            CpuKernels::Avx2 => Self::Avx2,
            CpuKernels::Portable => Self::Portable,
        }
    }
}

impl std::fmt::Display for CpuKernelsChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The chosen path, 0 until first resolved (then one of [`CpuKernels::code`]).
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The kernel path the CPU ops use: the one [`use_cpu_kernels`] or [`set_cpu_kernels`] chose,
/// else the widest this CPU supports.
pub fn cpu_kernels() -> CpuKernels {
    if let Some(chosen) = CpuKernels::from_code(CHOSEN.load(Ordering::Relaxed)) {
        return chosen;
    }
    let widest = CpuKernels::best_for(CpuFeatures::detect());
    CHOSEN.store(widest.code(), Ordering::Relaxed);
    widest
}

/// Makes the CPU ops of the whole process run the path `choice` resolves to on this CPU
/// ([`CpuKernelsChoice::resolve`]: `auto` is the widest it supports) and returns it; a path this
/// CPU lacks is refused, naming the missing extension, and the current choice is left as it was.
pub fn use_cpu_kernels(choice: CpuKernelsChoice) -> Result<CpuKernels, ModelError> {
    let kernels = choice.resolve(CpuFeatures::detect())?;
    CHOSEN.store(kernels.code(), Ordering::Relaxed);
    Ok(kernels)
}

/// Forces a kernel path for the whole process (tests run every path on one CPU this way);
/// refused, leaving the current choice, where this CPU lacks it.
pub fn set_cpu_kernels(kernels: CpuKernels) -> Result<(), ModelError> {
    use_cpu_kernels(kernels.into()).map(drop)
}

/// The paths this CPU can run, widest first.
pub fn supported_cpu_kernels() -> Vec<CpuKernels> {
    let features = CpuFeatures::detect();
    ALL_CPU_KERNELS
        .into_iter()
        .filter(|k| k.supported_by(features))
        .collect()
}

/// Threads the CPU ops run on (rayon's pool: `RAYON_NUM_THREADS`, else one per CPU). The ops
/// split work by it, so a CPU run's numbers repeat bit for bit only with the same count.
pub fn cpu_threads() -> usize {
    rayon::current_num_threads()
}

/// The CPU as the operating system describes it: `/proc/cpuinfo`'s model name, with the x86
/// family and model numbers where present (the name alone can be as vague as "Intel(R) Xeon(R)
/// Processor"), or `"unknown CPU"`.
pub fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return "unknown CPU".to_string();
    };
    // The first processor's block: fields are `key<tabs>: value`.
    let field = |key: &str| {
        info.lines()
            .take_while(|line| !line.trim().is_empty())
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => {
            format!("{name} (family {family}, model {model})")
        }
        (Some(name), _, _) => name,
        _ => "unknown CPU".to_string(),
    }
}
