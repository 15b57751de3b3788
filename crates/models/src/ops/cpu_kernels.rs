//! Which SIMD kernels the CPU ops run: chosen at run time from what the CPU supports, so one
//! release binary serves every x86-64 machine (no `target-cpu=native`, no nightly toolchain).
//!
//! - [`CpuKernels::Avx512`]: 512-bit GEMM micro-kernels (AVX-512F).
//! - [`CpuKernels::Avx2`]: 256-bit GEMM micro-kernels (AVX2 + FMA); the AVX2 dropout hash.
//! - [`CpuKernels::Portable`]: the `gemm` crate with its own dispatch (NEON on aarch64, SSE or
//!   AVX on x86) and scalar loops elsewhere; what every non-x86 CPU runs.
//!
//! The widest supported path is the default; the environment variable [`CPU_KERNELS_ENV`]
//! (`avx512`, `avx2`, `portable`) or [`set_cpu_kernels`] forces one, and a path the CPU lacks is
//! refused with an error (never an illegal instruction). Each path sums in its own order, so
//! the paths agree to rounding, not bit for bit; a given path with a given thread count repeats
//! itself exactly.

use crate::ModelError;
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that forces a kernel path: `avx512`, `avx2` or `portable`.
pub const CPU_KERNELS_ENV: &str = "ALLCONV_CPU_KERNELS";

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
    /// The name used by [`CPU_KERNELS_ENV`] and printed by `allconv bench`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }

    /// Parses a name as written in [`CPU_KERNELS_ENV`] (case-insensitive).
    pub fn parse(name: &str) -> Result<Self, ModelError> {
        ALL_CPU_KERNELS
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ModelError::InvalidOption {
                key: CPU_KERNELS_ENV.to_string(),
                expected: "one of avx512, avx2, portable".to_string(),
                got: format!("'{name}'"),
            })
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

/// The chosen path, 0 until first resolved (then one of [`CpuKernels::code`]).
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The kernel path the CPU ops use: the one set by [`set_cpu_kernels`], else the one named by
/// [`CPU_KERNELS_ENV`], else the widest this CPU supports. An unknown name, or a path this CPU
/// lacks, is an error (every CPU op returns it rather than run).
pub fn cpu_kernels() -> Result<CpuKernels, ModelError> {
    if let Some(chosen) = CpuKernels::from_code(CHOSEN.load(Ordering::Relaxed)) {
        return Ok(chosen);
    }
    let features = CpuFeatures::detect();
    let chosen = match std::env::var(CPU_KERNELS_ENV) {
        Ok(name) if !name.trim().is_empty() => CpuKernels::parse(&name)?.require(features)?,
        _ => CpuKernels::best_for(features),
    };
    CHOSEN.store(chosen.code(), Ordering::Relaxed);
    Ok(chosen)
}

/// The path the kernels run, for code that cannot return an error: the one [`cpu_kernels`]
/// resolved, else the widest this CPU supports. Every CPU op calls [`cpu_kernels`] first and
/// fails on its error, so a refused choice never reaches this fallback.
pub(crate) fn chosen() -> CpuKernels {
    cpu_kernels().unwrap_or_else(|_| CpuKernels::best_for(CpuFeatures::detect()))
}

/// Forces a kernel path for the whole process (tests run every path on one CPU this way);
/// refused, leaving the current choice, where this CPU lacks it.
pub fn set_cpu_kernels(kernels: CpuKernels) -> Result<(), ModelError> {
    kernels.require(CpuFeatures::detect())?;
    CHOSEN.store(kernels.code(), Ordering::Relaxed);
    Ok(())
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
