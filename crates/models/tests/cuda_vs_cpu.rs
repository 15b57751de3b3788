//! The device check (`allconv_models::check`, the code `allconv check --device cuda` runs) on
//! CUDA in its quick form, in every setting training can use: fp32 and TF32, cuDNN's
//! deterministic and free algorithm sets, our own (cuDNN) and candle's convolution engine, each
//! against the CPU path (docs/protocol.md, Device check). The full check is `allconv check`'s
//! (scripts/gpu-check.sh runs it); this one is the test binary's short version of it. Compiled
//! only with `--features cuda`; needs a GPU.
#![cfg(feature = "cuda")]

use allconv_models::check::{run, CheckOptions, Precision};
use allconv_models::ops::{conv_engine, ConvEngine, ALL_CONV_ENGINES};
use candle_core::Device;

#[test]
fn the_quick_device_check_passes_on_cuda_in_every_setting() {
    let options = CheckOptions {
        device: Device::new_cuda(0).expect("a CUDA device"),
        precisions: vec![Precision::Fp32, Precision::Tf32],
        deterministic: vec![true, false],
        engines: ALL_CONV_ENGINES.to_vec(),
        models: Vec::new(),
        quick: true,
        perturb: None,
    };
    let report = run(&options).expect("the check runs");
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| !c.pass)
        .map(|c| {
            let setting = c
                .setting
                .map_or("any setting".to_string(), |s| s.to_string());
            format!(
                "{} {} ({setting}): max rel {:e} > {}",
                c.op, c.shape, c.max_rel, c.tolerance
            )
        })
        .collect();
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
    // 2 precisions x 2 algorithm sets x 2 engines, each with 12 networks x (loss, gradients).
    assert_eq!(report.settings.len(), 8);
    for setting in &report.settings {
        let steps = report
            .cases
            .iter()
            .filter(|c| c.setting == Some(*setting) && c.op.starts_with("step_"))
            .count();
        assert_eq!(steps, 24, "{setting}");
    }
    assert!(!report.plans.is_empty(), "cuDNN chose no plan");
    // The check sets the engine back to what it was (our own, the default).
    assert_eq!(conv_engine(), ConvEngine::Own);
}
