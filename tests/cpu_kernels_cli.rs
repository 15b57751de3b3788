//! The CPU kernel path from the command line: `--cpu-kernels` or `ALLCONV_CPU_KERNELS` chooses it
//! (the flag first), `allconv bench` reports it, a training records it, and a name that is not a
//! path is refused with an error, not a crash. The refusal of a path the CPU lacks is checked
//! with injected CPU features in `src/cli/cpu_kernels.rs` (so it asserts on every CPU).

use std::process::Command;

/// `allconv bench` on one tiny measurement with `ALLCONV_CPU_KERNELS` set to `kernels`.
fn bench_with(kernels: &str) -> std::process::Output {
    bench(&[], kernels)
}

/// `allconv bench` on one tiny measurement, with the flags `extra` and `ALLCONV_CPU_KERNELS`
/// set to `var`.
fn bench(extra: &[&str], var: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_allconv"))
        .args([
            "bench",
            "--models",
            "model-a",
            "--batch-size",
            "2",
            "--iters",
            "1",
        ])
        .args(extra)
        .env("ALLCONV_CPU_KERNELS", var)
        .output()
        .expect("the allconv binary runs")
}

#[test]
fn a_forced_path_is_the_one_reported() {
    // `portable` runs on every CPU.
    let out = bench_with("portable");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CPU kernels portable"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("model-a")), "{stdout}");
}

#[test]
fn an_unknown_path_is_refused_with_the_choices() {
    let out = bench_with("sse9");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An error exit (1), not a panic (101) or a crash (a signal).
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ALLCONV_CPU_KERNELS"), "{stderr}");
    assert!(
        stderr.contains("one of auto, avx512, avx2, portable"),
        "{stderr}"
    );
    assert!(stderr.contains("'sse9'"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `allconv bench` as [`bench_with`], with `--cpu-kernels flag` and the variable `var`.
fn bench_with_flag(flag: &str, var: &str) -> std::process::Output {
    bench(&["--cpu-kernels", flag], var)
}

#[test]
fn the_flag_overrides_the_variable_even_a_misspelt_one() {
    let out = bench_with_flag("portable", "sse9");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CPU kernels portable"), "{stdout}");
    // `auto` defers to the variable.
    let out = bench_with_flag("auto", "portable");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CPU kernels portable"), "{stdout}");
    // A flag value outside the set is clap's usage error (2), listing the choices.
    let out = bench_with_flag("sse9", "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sse9") && stderr.contains("portable"),
        "{stderr}"
    );
}

#[test]
fn a_path_this_cpu_lacks_is_refused_naming_what_is_missing() {
    // Only checkable where the CPU lacks a path (e.g. AVX-512 on an AMD Zen 3 or an older Intel);
    // elsewhere the library test with injected CPU features covers the refusal.
    let features = allconv_models::ops::CpuFeatures::detect();
    for kernels in allconv_models::ops::ALL_CPU_KERNELS {
        if kernels.supported_by(features) {
            continue;
        }
        let out = bench_with(kernels.name());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("which this CPU lacks"), "{stderr}");
    }
}
