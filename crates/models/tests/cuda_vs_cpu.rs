//! The device check (`allconv_models::check`, the code `allconv check --device cuda` runs) on
//! CUDA: every op the networks use and one training step of each of the 12 networks against
//! the CPU path, in fp32 and in TF32 (docs/protocol.md, Device check). Compiled only with
//! `--features cuda`; needs a GPU.
#![cfg(feature = "cuda")]

use allconv_models::check::{run, CheckOptions, Precision};
use candle_core::Device;

#[test]
fn the_device_check_passes_on_cuda_in_fp32_and_tf32() {
    let options = CheckOptions {
        device: Device::new_cuda(0).expect("a CUDA device"),
        precisions: vec![Precision::Fp32, Precision::Tf32],
        models: Vec::new(),
        quick: false,
    };
    let report = run(&options).expect("the check runs");
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| !c.pass)
        .map(|c| {
            format!(
                "{} {} {}: max rel {:e} > {}",
                c.op, c.shape, c.precision, c.max_rel, c.tolerance
            )
        })
        .collect();
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
    // Every op was compared in both precisions: 12 networks x (loss, gradients) each.
    for precision in [Precision::Fp32, Precision::Tf32] {
        let steps = report
            .cases
            .iter()
            .filter(|c| c.precision == precision && c.op.starts_with("step_"))
            .count();
        assert_eq!(steps, 24, "{precision}");
    }
    assert!(!report.plans.is_empty(), "cuDNN chose no plan");
}
