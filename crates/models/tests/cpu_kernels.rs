//! Choosing the CPU kernel path: names, what each path needs, and the refusal of a path the
//! CPU lacks (with injected CPU features, so every case is checked on every CPU).

use allconv_models::ops::{
    cpu_kernels, set_cpu_kernels, supported_cpu_kernels, CpuFeatures, CpuKernels, ALL_CPU_KERNELS,
    CPU_KERNELS_ENV,
};

const NONE: CpuFeatures = CpuFeatures {
    avx512f: false,
    avx2_fma: false,
};
const AVX2: CpuFeatures = CpuFeatures {
    avx512f: false,
    avx2_fma: true,
};
const AVX512: CpuFeatures = CpuFeatures {
    avx512f: true,
    avx2_fma: true,
};

#[test]
fn names_round_trip_and_ignore_case_and_spaces() {
    for kernels in ALL_CPU_KERNELS {
        assert_eq!(CpuKernels::parse(kernels.name()).unwrap(), kernels);
    }
    assert_eq!(CpuKernels::parse(" AVX512 ").unwrap(), CpuKernels::Avx512);
    assert_eq!(CpuKernels::parse("Avx2").unwrap(), CpuKernels::Avx2);
}

#[test]
fn an_unknown_name_is_refused_naming_the_variable_and_the_choices() {
    let message = CpuKernels::parse("sse4").unwrap_err().to_string();
    assert!(message.contains(CPU_KERNELS_ENV), "{message}");
    assert!(message.contains("avx512, avx2, portable"), "{message}");
    assert!(message.contains("'sse4'"), "{message}");
}

#[test]
fn the_widest_supported_path_is_the_default() {
    assert_eq!(CpuKernels::best_for(AVX512), CpuKernels::Avx512);
    assert_eq!(CpuKernels::best_for(AVX2), CpuKernels::Avx2);
    assert_eq!(CpuKernels::best_for(NONE), CpuKernels::Portable);
}

#[test]
fn a_path_the_cpu_lacks_is_refused_with_what_is_missing_and_what_to_use() {
    // An AVX2-only CPU (e.g. AMD Zen 3, Intel before Skylake-SP) asked for AVX-512.
    let message = CpuKernels::Avx512.require(AVX2).unwrap_err().to_string();
    assert!(message.contains("'avx512'"), "{message}");
    assert!(message.contains("AVX-512F"), "{message}");
    assert!(message.contains("use 'avx2'"), "{message}");
    // A CPU without AVX2 (or an aarch64 one) asked for AVX2.
    let message = CpuKernels::Avx2.require(NONE).unwrap_err().to_string();
    assert!(message.contains("AVX2 and FMA"), "{message}");
    assert!(message.contains("use 'portable'"), "{message}");
    // What a CPU has is accepted; the portable path runs everywhere.
    assert_eq!(CpuKernels::Avx2.require(AVX512).unwrap(), CpuKernels::Avx2);
    assert_eq!(
        CpuKernels::Portable.require(NONE).unwrap(),
        CpuKernels::Portable
    );
}

#[test]
fn this_cpu_runs_what_it_reports_and_refuses_the_rest() {
    let features = CpuFeatures::detect();
    let supported = supported_cpu_kernels();
    assert_eq!(supported[0], CpuKernels::best_for(features));
    assert_eq!(supported.last(), Some(&CpuKernels::Portable));
    for kernels in ALL_CPU_KERNELS {
        let before = cpu_kernels().unwrap();
        match set_cpu_kernels(kernels) {
            Ok(()) => {
                assert!(supported.contains(&kernels));
                assert_eq!(cpu_kernels().unwrap(), kernels);
            }
            Err(_) => {
                // Refused: the choice is left as it was.
                assert!(!supported.contains(&kernels));
                assert_eq!(cpu_kernels().unwrap(), before);
            }
        }
    }
}
