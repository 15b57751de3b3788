//! `allconv config` prints the configuration a command line resolves to, as the text a run's
//! `config.yaml` records for its experiment, and `--keys` every key with its default and meaning
//! (docs/configuration.md).

mod common;

use std::path::Path;

use allconv_train::config::SavedRunConfig;
use allconv_train::{ExperimentConfig, Setting};
use common::{allconv, text, tiny_grid};

/// `allconv config ARGS`' standard output; fails the test if it fails.
fn config(args: &[&str], extra: &[&Path]) -> String {
    let out = allconv()
        .arg("config")
        .args(args)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_printed_configuration_reads_back_as_the_resolved_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, _) = tiny_grid(tmp.path(), 2);
    let printed = config(
        &["--epochs", "3", "--set", "optim.momentum=0.8", "--config"],
        &[&file],
    );
    let mut expected = ExperimentConfig::load(&file).unwrap();
    expected
        .apply(&[
            Setting::new("schedule.epochs", 3),
            Setting::new("optim.momentum", 0.8),
        ])
        .unwrap();
    let read = ExperimentConfig::from_yaml(&printed).unwrap();
    assert_eq!(
        serde_json::to_value(&read).unwrap(),
        serde_json::to_value(&expected).unwrap()
    );
    assert_eq!(read.schedule.epochs, 3);
    assert_eq!(read.optim.momentum, 0.8);
}

#[test]
fn the_printed_configuration_is_the_text_a_run_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, _) = tiny_grid(tmp.path(), 1);
    let runs = tmp.path().join("runs-here");
    let trained = allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&file)
        .arg("--runs")
        .arg(&runs)
        .output()
        .unwrap();
    assert!(trained.status.success(), "{}", text(&trained));
    let recorded =
        std::fs::read_to_string(runs.join("strided-cnn-a/lr-0.01/seed-0/config.yaml")).unwrap();
    // The `config:` block of config.yaml, its two-space indent taken off.
    let block: Vec<&str> = recorded
        .lines()
        .skip_while(|l| *l != "config:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| &l[2..])
        .collect();
    assert!(block.len() > 50, "{recorded}");
    let printed = config(&["--config"], &[&file, Path::new("--runs"), &runs]);
    assert_eq!(printed, block.join("\n") + "\n");
    // And it is the experiment the run's record holds.
    let saved: SavedRunConfig = allconv_train::config::from_yaml_str(&recorded).unwrap();
    assert_eq!(
        serde_json::to_value(&saved.config).unwrap(),
        serde_json::to_value(ExperimentConfig::from_yaml(&printed).unwrap()).unwrap()
    );
}

#[test]
fn every_preset_prints_its_file_s_experiment() {
    for (preset, dataset, augment) in [
        ("quick", "cifar10", "false"),
        ("paper", "cifar10", "false"),
        ("paper-val", "cifar10", "false"),
        ("paper-aug", "cifar10", "true"),
        ("paper-cifar100", "cifar100", "false"),
        ("gpu-smoke", "cifar10", "false"),
    ] {
        let by_preset = config(&["--preset", preset], &[]);
        let file = format!("configs/{preset}.yaml");
        assert_eq!(by_preset, config(&["--config", &file], &[]), "{preset}");
        assert!(
            by_preset.contains(&format!("  dataset: {dataset}\n")),
            "{preset}: {by_preset}"
        );
        assert!(
            by_preset.contains(&format!("  augment: {augment}\n")),
            "{preset}: {by_preset}"
        );
    }
}

#[test]
fn keys_lists_every_key_with_its_default() {
    let listed = config(&["--keys"], &[]);
    let keys: Vec<&str> = listed
        .lines()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(keys, ExperimentConfig::keys());
    // Two by hand from docs/configuration.md's table.
    assert!(listed.contains("\ntraining.batch_size = 128  # images per SGD step"));
    assert!(listed.contains("\nslurm.time = 24:00:00  # #SBATCH --time of each task"));
    // Nothing to list defaults under: refused, naming the flag.
    let out = allconv()
        .args(["config", "--keys", "--epochs", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--epochs 3"));
}
