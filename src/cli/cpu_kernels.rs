//! The CPU kernel path of a command (docs/configuration.md, `training.cpu_kernels`): the first
//! path named by `--cpu-kernels`, by the configuration's `training.cpu_kernels` (on the commands
//! that read one), or by the environment variable [`CPU_KERNELS_VAR`]; `auto` in any of them
//! leaves the choice to the next, and the widest path this CPU runs is the last word. The binary
//! reads the variable; the libraries read none and take the path from here.

use allconv_models::ops::{self, CpuFeatures, CpuKernels, CpuKernelsChoice};
use anyhow::Context;

/// The environment variable that names a path where neither the flag nor the configuration does
/// (`auto`, `avx512`, `avx2` or `portable`).
pub const CPU_KERNELS_VAR: &str = "ALLCONV_CPU_KERNELS";

/// A request for a kernel path and where it came from, in the user's words
/// (`--cpu-kernels avx512`), or `None` for no request (`auto` everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    choice: CpuKernelsChoice,
    source: Option<String>,
}

/// The request of the flag `flag`, the configuration's key `config` and the variable's value
/// `var`, in that order: the first that names a path. The variable is read only when it
/// decides, so a flag overrides even a misspelt one.
fn request(
    flag: Option<CpuKernelsChoice>,
    config: Option<CpuKernelsChoice>,
    var: Option<&str>,
) -> anyhow::Result<Request> {
    let named = |choice: Option<CpuKernelsChoice>| choice.filter(|c| c.fixed().is_some());
    if let Some(choice) = named(flag) {
        return Ok(Request {
            choice,
            source: Some(format!("--cpu-kernels {choice}")),
        });
    }
    if let Some(choice) = named(config) {
        return Ok(Request {
            choice,
            source: Some(format!("training.cpu_kernels: {choice}")),
        });
    }
    match var.filter(|v| !v.trim().is_empty()) {
        Some(value) => Ok(Request {
            choice: CpuKernelsChoice::parse(value)
                .with_context(|| format!("{CPU_KERNELS_VAR}={value}"))?,
            source: Some(format!("{CPU_KERNELS_VAR}={value}")),
        }),
        None => Ok(Request {
            choice: CpuKernelsChoice::Auto,
            source: None,
        }),
    }
}

/// The path `request` gives on a CPU with `features`; a path it lacks is the error the user
/// sees, naming where the request came from and the missing extension.
fn resolve(request: &Request, features: CpuFeatures) -> anyhow::Result<CpuKernels> {
    request.choice.resolve(features).with_context(|| {
        request
            .source
            .clone()
            .unwrap_or_else(|| "the CPU kernels".to_string())
    })
}

/// Sets the kernel path of this process from `--cpu-kernels` (`flag`), the configuration's
/// `training.cpu_kernels` (`config`, where the command reads one) and [`CPU_KERNELS_VAR`], and
/// returns it.
pub fn choose(
    flag: Option<CpuKernelsChoice>,
    config: Option<CpuKernelsChoice>,
) -> anyhow::Result<CpuKernels> {
    let var = match std::env::var(CPU_KERNELS_VAR) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(value)) => {
            anyhow::bail!("{CPU_KERNELS_VAR}={value:?}: not a CPU kernel path (auto, avx512, avx2 or portable)")
        }
    };
    let request = request(flag, config, var.as_deref())?;
    let kernels = resolve(&request, CpuFeatures::detect())?;
    ops::set_cpu_kernels(kernels)?;
    Ok(kernels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AVX2 CPU without AVX-512 (AMD Zen 3, Intel before Skylake-SP).
    const AVX2_ONLY: CpuFeatures = CpuFeatures {
        avx512f: false,
        avx2_fma: true,
    };
    /// A CPU with neither (an older x86, or any aarch64).
    const NEITHER: CpuFeatures = CpuFeatures {
        avx512f: false,
        avx2_fma: false,
    };

    fn refusal(request: &Request, features: CpuFeatures) -> String {
        format!("{:#}", resolve(request, features).unwrap_err())
    }

    #[test]
    fn a_path_the_cpu_lacks_is_refused_naming_where_it_was_asked_and_what_is_missing() {
        // The messages are those a user sees on such a CPU, whatever CPU runs the test.
        let flag = request(Some(CpuKernelsChoice::Avx512), None, None).unwrap();
        assert_eq!(
            refusal(&flag, AVX2_ONLY),
            "--cpu-kernels avx512: CPU kernels 'avx512' need AVX-512F, which this CPU lacks; use \
             'avx2' (the widest it supports) or 'auto'"
        );
        let config = request(None, Some(CpuKernelsChoice::Avx2), None).unwrap();
        assert_eq!(
            refusal(&config, NEITHER),
            "training.cpu_kernels: avx2: CPU kernels 'avx2' need AVX2 and FMA, which this CPU \
             lacks; use 'portable' (the widest it supports) or 'auto'"
        );
        let var = request(None, None, Some("avx512")).unwrap();
        assert_eq!(
            refusal(&var, NEITHER),
            "ALLCONV_CPU_KERNELS=avx512: CPU kernels 'avx512' need AVX-512F, which this CPU \
             lacks; use 'portable' (the widest it supports) or 'auto'"
        );
        // What such a CPU has is accepted; without any request, the widest it has.
        assert_eq!(resolve(&config, AVX2_ONLY).unwrap(), CpuKernels::Avx2);
        let none = request(None, None, None).unwrap();
        assert_eq!(resolve(&none, AVX2_ONLY).unwrap(), CpuKernels::Avx2);
        assert_eq!(resolve(&none, NEITHER).unwrap(), CpuKernels::Portable);
    }

    #[test]
    fn the_flag_comes_first_then_the_configuration_then_the_variable() {
        use CpuKernelsChoice::{Auto, Avx2, Avx512, Portable};
        let chosen = |flag, config, var| request(flag, config, var).unwrap().choice;
        assert_eq!(chosen(Some(Avx2), Some(Avx512), Some("portable")), Avx2);
        assert_eq!(chosen(None, Some(Avx512), Some("portable")), Avx512);
        assert_eq!(chosen(None, None, Some("portable")), Portable);
        // `auto` leaves the choice to the next; an empty variable is no request.
        assert_eq!(chosen(Some(Auto), Some(Auto), Some(" Avx2 ")), Avx2);
        assert_eq!(chosen(Some(Auto), Some(Avx512), None), Avx512);
        assert_eq!(chosen(None, None, Some("")), Auto);
        // A misspelt variable is refused when it decides, naming it and what it takes...
        let error = request(None, Some(Auto), Some("sse9")).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "ALLCONV_CPU_KERNELS=sse9: unknown CPU kernels 'sse9': expected one of auto, avx512, \
             avx2, portable"
        );
        // ...and left alone when a flag decides.
        assert_eq!(chosen(Some(Portable), None, Some("sse9")), Portable);
    }
}
