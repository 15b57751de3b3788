//! The gate's rule on the CPU (no GPU): which remembered outcomes let a run through, which
//! settings are checked, and when `auto` falls back to candle's engine (docs/protocol.md,
//! Device check). The check itself is a closure here, the injected outcome of a run.

use super::*;

fn setting(precision: Precision, deterministic: bool, engine: ConvEngine) -> Setting {
    Setting {
        precision,
        deterministic,
        engine,
    }
}

/// The outcome of `settings`, failing `failed` on the `failing` engine (every setting of it).
fn outcomes(
    settings: &[Setting],
    failing: Option<ConvEngine>,
    failed: &[&str],
) -> Vec<CheckedSetting> {
    settings
        .iter()
        .map(|s| CheckedSetting {
            precision: s.precision.name().into(),
            deterministic: s.deterministic,
            conv_engine: s.engine.name().into(),
            cases: 10,
            failed_ops: if Some(s.engine) == failing {
                failed.iter().map(|op| op.to_string()).collect()
            } else {
                Vec::new()
            },
        })
        .collect()
}

fn needs(tf32: bool, deterministic: bool, choice: ConvEngineChoice) -> Needs {
    let training = TrainingConfig {
        precision: Precision::from_tf32(tf32),
        deterministic,
        conv_engine: choice,
        ..TrainingConfig::default()
    };
    Needs::of(&training)
}

fn never(_: &[Setting]) -> anyhow::Result<Vec<CheckedSetting>> {
    panic!("the check ran although every setting was on record")
}

#[test]
fn a_pass_is_remembered_per_identity_and_setting() {
    let dir = tempfile::tempdir().unwrap();
    let runs = RunsRoot::new(dir.path());
    let own = needs(false, true, ConvEngineChoice::Own);
    let mut asked = Vec::new();
    let first = gate(&runs, "gpu A", &own, |s| {
        asked = s.to_vec();
        Ok(outcomes(s, None, &[]))
    })
    .unwrap();
    assert_eq!((first.gate, first.engine), (Gate::Passed, ConvEngine::Own));
    // The run's own setting: fp32 (no TF32), deterministic algorithms, our engine.
    assert_eq!(asked, [setting(Precision::Fp32, true, ConvEngine::Own)]);
    let again = gate(&runs, "gpu A", &own, never).unwrap();
    assert_eq!(again.gate, Gate::Remembered);
    // Another identity (driver, cuDNN, binary) is checked afresh.
    let mut ran = false;
    let other = gate(&runs, "gpu A, newer driver", &own, |s| {
        ran = true;
        Ok(outcomes(s, None, &[]))
    });
    assert_eq!(other.unwrap().gate, Gate::Passed);
    assert!(ran);
}

#[test]
fn a_remembered_check_of_another_setting_is_refused_and_the_runs_setting_checked() {
    let dir = tempfile::tempdir().unwrap();
    let runs = RunsRoot::new(dir.path());
    // On record: a pass with the free algorithm choice only (as `allconv check
    // --deterministic false --runs` writes it).
    let free = setting(Precision::Fp32, false, ConvEngine::Own);
    let mut record = DeviceCheckRecord::new("gpu C");
    record.merge(outcomes(&[free], None, &[]));
    runs.write_device_check(&record).unwrap();
    // A deterministic run (training's default) does not accept it: its own setting is checked,
    // and when that fails, it refuses to train although a pass is on record.
    let deterministic = needs(false, true, ConvEngineChoice::Own);
    let mut asked = Vec::new();
    let err = gate(&runs, "gpu C", &deterministic, |s| {
        asked = s.to_vec();
        Ok(outcomes(s, Some(ConvEngine::Own), &["conv_bwd_filter"]))
    })
    .unwrap_err()
    .to_string();
    assert_eq!(asked, [setting(Precision::Fp32, true, ConvEngine::Own)]);
    assert!(err.contains("refusing to train"), "{err}");
    assert!(err.contains("own engine: conv_bwd_filter"), "{err}");
    // The free setting's pass still stands for runs in that setting.
    let free_run = needs(false, false, ConvEngineChoice::Own);
    assert_eq!(
        gate(&runs, "gpu C", &free_run, never).unwrap().gate,
        Gate::Remembered
    );
    // A TF32 run needs TF32 checked too: only the setting missing from the record runs.
    let tf32_run = needs(true, false, ConvEngineChoice::Own);
    let mut asked = Vec::new();
    let passed = gate(&runs, "gpu C", &tf32_run, |s| {
        asked = s.to_vec();
        Ok(outcomes(s, None, &[]))
    })
    .unwrap();
    assert_eq!(passed.gate, Gate::Passed);
    assert_eq!(asked, [setting(Precision::Tf32, false, ConvEngine::Own)]);
}

#[test]
fn a_failed_check_refuses_naming_the_ops_and_is_checked_again_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let runs = RunsRoot::new(dir.path());
    let own = needs(false, true, ConvEngineChoice::Own);
    let err = gate(&runs, "gpu B", &own, |s| {
        Ok(outcomes(
            s,
            Some(ConvEngine::Own),
            &["conv_bwd_filter", "step_grad"],
        ))
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("conv_bwd_filter, step_grad"), "{err}");
    assert!(err.contains("refusing to train"), "{err}");
    let record = runs.device_check("gpu B").unwrap().unwrap();
    let fp32 = record.find("fp32", true, "own").unwrap();
    assert_eq!(fp32.failed_ops, ["conv_bwd_filter", "step_grad"]);
    // With one engine to try, a failure is not a verdict: the next start checks again.
    let next = gate(&runs, "gpu B", &own, |s| Ok(outcomes(s, None, &[]))).unwrap();
    assert_eq!(next.gate, Gate::Passed);
    assert!(runs
        .device_check("gpu B")
        .unwrap()
        .unwrap()
        .find("fp32", true, "own")
        .unwrap()
        .passed());
}

#[test]
fn auto_falls_back_to_candles_engine_when_ours_fails_and_candles_passes() {
    let dir = tempfile::tempdir().unwrap();
    let runs = RunsRoot::new(dir.path());
    let auto = needs(true, true, ConvEngineChoice::Auto);
    let mut asked: Vec<Vec<Setting>> = Vec::new();
    let decision = gate(&runs, "gpu D", &auto, |s| {
        asked.push(s.to_vec());
        Ok(outcomes(s, Some(ConvEngine::Own), &["conv_relu_bwd_data"]))
    })
    .unwrap();
    assert_eq!(
        (decision.gate, decision.engine),
        (Gate::Passed, ConvEngine::Candle)
    );
    // Ours first (fp32 and TF32, deterministic), then candle's.
    assert_eq!(asked.len(), 2);
    assert!(asked[0]
        .iter()
        .all(|s| s.engine == ConvEngine::Own && s.deterministic));
    assert_eq!(asked[0].len(), 2);
    assert!(asked[1].iter().all(|s| s.engine == ConvEngine::Candle));
    let message = decision.fallback.unwrap();
    assert!(message.contains("own convolution engine"), "{message}");
    assert!(message.contains("conv_relu_bwd_data"), "{message}");
    assert!(message.contains("candle engine, which passed"), "{message}");
    // The next process of the grid takes both verdicts from the record, checking nothing.
    let child = gate(&runs, "gpu D", &auto, never).unwrap();
    assert_eq!(
        (child.gate, child.engine),
        (Gate::Remembered, ConvEngine::Candle)
    );
    assert!(child.fallback.unwrap().contains("remembered in"));
    // With ours passing, auto uses ours and says nothing.
    let passing = gate(&runs, "gpu E", &auto, |s| Ok(outcomes(s, None, &[]))).unwrap();
    assert_eq!(passing.engine, ConvEngine::Own);
    assert_eq!(passing.fallback, None);
}

#[test]
fn auto_refuses_when_both_engines_fail_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let runs = RunsRoot::new(dir.path());
    let auto = needs(false, false, ConvEngineChoice::Auto);
    let err = gate(&runs, "gpu F", &auto, |s| {
        let engine = s[0].engine;
        Ok(outcomes(
            s,
            Some(engine),
            &[if engine == ConvEngine::Own {
                "conv_fwd"
            } else {
                "step_grad"
            }],
        ))
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("own engine: conv_fwd; candle engine: step_grad"),
        "{err}"
    );
    assert!(err.contains("refusing to train"), "{err}");
}

#[test]
fn the_cpu_and_a_skipped_check_train_without_checking() {
    let mut experiment = ExperimentConfig::default();
    assert_eq!(ensure_checked(&experiment).unwrap(), Gate::NotCuda);
    experiment.training.device = allconv_vocab::Device::Cuda(0);
    experiment.training.skip_device_check = true;
    assert_eq!(ensure_checked(&experiment).unwrap(), Gate::Skipped);
}

/// The quick CPU check of All-CNN-C in the asked settings, as the gate's check, with the
/// check's test-only perturbation `perturb`.
fn cpu_check(settings: &[Setting], perturb: Option<&str>) -> anyhow::Result<Vec<CheckedSetting>> {
    let report = allconv_models::check::run(&CheckOptions {
        device: Device::Cpu,
        precisions: distinct(settings.iter().map(|s| s.precision)),
        deterministic: distinct(settings.iter().map(|s| s.deterministic)),
        engines: distinct(settings.iter().map(|s| s.engine)),
        models: vec!["all-cnn-c".into()],
        quick: true,
        perturb: perturb.map(String::from),
    })?;
    Ok(report.outcomes().iter().map(checked).collect())
}

#[test]
fn auto_chooses_candles_engine_from_a_real_check_with_ours_made_to_fail() {
    // The CPU check itself as the gate's check, our engine's backward filter perturbed (the
    // check's test hook, on that engine only): `auto` must read that outcome as ours failing
    // and candle's passing.
    let dir = tempfile::tempdir().unwrap();
    let runs = RunsRoot::new(dir.path());
    let auto = needs(false, true, ConvEngineChoice::Auto);
    let decision = gate(&runs, "cpu under test", &auto, |s| {
        cpu_check(s, Some("conv_bwd_filter@own"))
    })
    .unwrap();
    assert_eq!(decision.engine, ConvEngine::Candle);
    let message = decision.fallback.unwrap();
    assert!(message.contains("own convolution engine"), "{message}");
    assert!(message.contains(": conv_bwd_filter ("), "{message}");
    let record = runs.device_check("cpu under test").unwrap().unwrap();
    assert!(!record.find("fp32", true, "own").unwrap().passed());
    assert!(record.find("fp32", true, "candle").unwrap().passed());
    // Unperturbed, the same check lets our own engine through.
    let other = RunsRoot::new(dir.path().join("other"));
    let decision = gate(&other, "cpu under test", &auto, |s| cpu_check(s, None)).unwrap();
    assert_eq!(
        (decision.engine, decision.fallback),
        (ConvEngine::Own, None)
    );
}
