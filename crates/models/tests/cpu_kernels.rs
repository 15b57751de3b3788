//! Choosing the CPU kernel path: names, what each path needs, and the refusal of a path the
//! CPU lacks (with injected CPU features, so every case is checked on every CPU).

use allconv_models::ops::{
    cpu_kernels, set_cpu_kernels, supported_cpu_kernels, use_cpu_kernels, CpuFeatures, CpuKernels,
    CpuKernelsChoice, ALL_CPU_KERNELS, ALL_CPU_KERNEL_CHOICES,
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
    for choice in ALL_CPU_KERNEL_CHOICES {
        assert_eq!(CpuKernelsChoice::parse(choice.name()).unwrap(), choice);
    }
    // Each path's request is spelt as the path.
    for kernels in ALL_CPU_KERNELS {
        assert_eq!(CpuKernelsChoice::from(kernels).name(), kernels.name());
        assert_eq!(CpuKernelsChoice::from(kernels).fixed(), Some(kernels));
    }
    assert_eq!(
        CpuKernelsChoice::parse(" AVX512 ").unwrap(),
        CpuKernelsChoice::Avx512
    );
    assert_eq!(
        CpuKernelsChoice::parse("Avx2").unwrap(),
        CpuKernelsChoice::Avx2
    );
    assert_eq!(
        CpuKernelsChoice::parse("AUTO").unwrap(),
        CpuKernelsChoice::Auto
    );
    // A configuration spells them the same way (`training.cpu_kernels`), `auto` by default.
    assert_eq!(CpuKernelsChoice::default(), CpuKernelsChoice::Auto);
    for choice in ALL_CPU_KERNEL_CHOICES {
        let json = serde_json::to_string(&choice).unwrap();
        assert_eq!(json, format!("\"{}\"", choice.name()));
        assert_eq!(
            serde_json::from_str::<CpuKernelsChoice>(&json).unwrap(),
            choice
        );
    }
}

#[test]
fn an_unknown_name_is_refused_naming_the_choices() {
    let message = CpuKernelsChoice::parse("sse4").unwrap_err().to_string();
    assert_eq!(
        message,
        "unknown CPU kernels 'sse4': expected one of auto, avx512, avx2, portable"
    );
}

#[test]
fn a_request_resolves_against_the_cpus_features() {
    // `auto`: the widest path of each CPU.
    assert_eq!(
        CpuKernelsChoice::Auto.resolve(AVX512).unwrap(),
        CpuKernels::Avx512
    );
    assert_eq!(
        CpuKernelsChoice::Auto.resolve(AVX2).unwrap(),
        CpuKernels::Avx2
    );
    assert_eq!(
        CpuKernelsChoice::Auto.resolve(NONE).unwrap(),
        CpuKernels::Portable
    );
    // A path: itself where the CPU has it, else the refusal naming what is missing.
    assert_eq!(
        CpuKernelsChoice::Avx2.resolve(AVX512).unwrap(),
        CpuKernels::Avx2
    );
    let message = CpuKernelsChoice::Avx512
        .resolve(AVX2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "CPU kernels 'avx512' need AVX-512F, which this CPU lacks; use 'avx2' (the widest it \
         supports) or 'auto'"
    );
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
        let before = cpu_kernels();
        match set_cpu_kernels(kernels) {
            Ok(()) => {
                assert!(supported.contains(&kernels));
                assert_eq!(cpu_kernels(), kernels);
            }
            Err(_) => {
                // Refused: the choice is left as it was.
                assert!(!supported.contains(&kernels));
                assert_eq!(cpu_kernels(), before);
            }
        }
    }
    // `auto` goes back to the widest.
    set_cpu_kernels(CpuKernels::Portable).unwrap();
    assert_eq!(
        use_cpu_kernels(CpuKernelsChoice::Auto).unwrap(),
        supported[0]
    );
    assert_eq!(cpu_kernels(), supported[0]);
}
