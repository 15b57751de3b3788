//! `allconv reproduce --gpus` refused where it cannot apply, naming the flag, and the device,
//! precision and data-set flags listing their choices (docs/configuration.md,
//! `training.device`). The assignment of runs to GPUs is tested in `src/cli/reproduce/gpus.rs`.

mod common;

fn failure(args: &[&str], config: Option<&std::path::Path>) -> String {
    let mut command = common::allconv();
    command.args(args);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let out = command.output().unwrap();
    assert!(!out.status.success(), "{}", common::text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn gpus_on_a_cpu_experiment_or_with_other_flags_is_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = common::tiny_grid(tmp.path(), 1);
    let err = failure(&["reproduce", "--gpus", "0,1"], Some(&config));
    assert!(
        err.contains("--gpus 0,1: the experiment trains on the cpu"),
        "{err}"
    );
    assert!(!runs.exists(), "nothing trained: {err}");
    let err = failure(&["reproduce", "--jobs-per-gpu", "2"], Some(&config));
    assert!(err.contains("--gpus"), "{err}");
    let err = failure(&["reproduce", "--gpus", "0", "--jobs", "2"], Some(&config));
    assert!(err.contains("--gpus") && err.contains("--jobs"), "{err}");
    let slurm = tmp.path().join("slurm");
    let slurm = slurm.to_str().unwrap();
    let err = failure(
        &[
            "reproduce",
            "--device",
            "cuda",
            "--gpus",
            "0",
            "--emit-slurm",
            slurm,
        ],
        Some(&config),
    );
    assert!(
        err.contains("--gpus 0") && err.contains("--emit-slurm"),
        "{err}"
    );
    // A Slurm task sees only the GPU it is given, as cuda:0.
    let err = failure(
        &["reproduce", "--device", "cuda:1", "--emit-slurm", slurm],
        Some(&config),
    );
    assert!(
        err.contains("cuda:1") && err.contains("--device cuda"),
        "{err}"
    );
}

#[test]
fn device_precision_and_data_set_flags_list_their_choices() {
    for (args, choices) in [
        (&["train", "--help"][..], &["cpu", "cuda", "cuda:N"][..]),
        (&["check", "--help"][..], &["cuda:N", "fp32", "tf32"][..]),
        (&["bench", "--help"][..], &["cuda:N", "fp32", "tf32"][..]),
        (&["evaluate", "--help"][..], &["cuda:N"][..]),
        (
            &["data", "fetch", "--help"][..],
            &["cifar10", "cifar100"][..],
        ),
    ] {
        let out = common::allconv().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", common::text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        for choice in choices {
            assert!(
                help.contains(&format!("- {choice}:")),
                "{args:?} does not list {choice}:\n{help}"
            );
        }
    }
    // A value that names nothing is refused by the one parser, naming the flag and the choices.
    let err = failure(&["check", "--device", "gpu"], None);
    assert!(
        err.contains("'--device <DEVICE>'")
            && err.contains("unknown device `gpu`, expected `cpu`, `cuda` or `cuda:N`"),
        "{err}"
    );
    let err = failure(&["bench", "--precision", "fp16"], None);
    assert!(err.contains("unknown precision `fp16`"), "{err}");
}
