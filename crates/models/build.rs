//! With the `cuda` feature, compiles `src/ops/cuda/kernels.cu` to PTX with nvcc into `OUT_DIR`
//! (`kernels.rs` embeds it with `include_str!`). Without the feature it does nothing, so the CPU
//! build never needs a CUDA toolkit.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/ops/cuda/kernels.cu";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("allconv_kernels.ptx");
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".to_string());
    // "90" or "9.0"; PTX for the virtual architecture is JIT-compiled by the driver for this
    // card and every newer one.
    let cap = std::env::var("CUDA_COMPUTE_CAP")
        .map(|c| c.replace('.', ""))
        .unwrap_or_else(|_| "80".to_string());
    if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_digit()) {
        panic!("CUDA_COMPUTE_CAP must be a compute capability such as 90 or 9.0, got `{cap}`");
    }
    let status = Command::new(&nvcc)
        .arg("--ptx")
        .arg(format!("-arch=compute_{cap}"))
        .arg("-O3")
        // No --use_fast_math, and no fused multiply-adds: these kernels must give the CPU's
        // results (see the comment at the top of kernels.cu).
        .arg("--fmad=false")
        .arg("-o")
        .arg(&out)
        .arg(SOURCE)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`{nvcc}` failed ({s}) compiling {SOURCE}; its messages are above"),
        Err(e) => panic!(
            "the `cuda` feature compiles {SOURCE} with nvcc, but `{nvcc}` could not be run \
             ({e}); put nvcc on PATH or set NVCC (see shared/cuda/README.md: \
             `source ../shared/cuda/env.sh`)"
        ),
    }
}
