//! YAML configuration: defaults, typos named, unknown models named, overrides, shipped configs.

use std::path::{Path, PathBuf};

use allconv_train::config::{run_dir, Device, Precision, Preprocessing};
use allconv_train::{ExperimentConfig, ExperimentGrid, GridFile, RunConfig, Setting, TrainError};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn empty_yaml_gives_the_paper_defaults() {
    let c = ExperimentConfig::from_yaml("{}").unwrap();
    // docs/protocol.md: momentum 0.9, weight decay 0.001, 350 epochs, x0.1 at 200/250/300, batch 128,
    // GCN (scale 55) + ZCA (epsilon 0.1), 12 models, lrs {0.25, 0.1, 0.05, 0.01}.
    assert_eq!(c.optim.momentum, 0.9);
    assert_eq!(c.optim.weight_decay, 0.001);
    assert!(c.optim.weight_decay_bias);
    assert_eq!(c.schedule.epochs, 350);
    assert_eq!(c.schedule.milestones, vec![200, 250, 300]);
    assert_eq!(c.schedule.gamma, 0.1);
    assert_eq!(c.training.batch_size, 128);
    assert_eq!(c.data.preprocessing, Preprocessing::GcnZca);
    assert_eq!((c.data.gcn_scale, c.data.zca_epsilon), (55.0, 0.1));
    assert_eq!(c.grid.models.len(), 12);
    assert_eq!(c.grid.lrs, vec![0.25, 0.1, 0.05, 0.01]);
    assert!(c.model.final_relu);
    assert_eq!(c.grid_points().len(), 48);
}

#[test]
fn a_misspelt_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "schedule:\n  epochs: 10\n  milestone: [5]\n").unwrap();
    let err = ExperimentConfig::load(&path).unwrap_err();
    assert!(matches!(err, TrainError::Yaml { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("typo.yaml"), "{message}");
    assert!(message.contains("milestone"), "{message}");
    assert!(
        message.contains("milestones"),
        "lists the valid keys: {message}"
    );

    let top = ExperimentConfig::from_yaml("trainig:\n  batch_size: 64\n")
        .unwrap_err()
        .to_string();
    assert!(top.contains("trainig"), "{top}");
    let model = ExperimentConfig::from_yaml("model:\n  final_rleu: false\n")
        .unwrap_err()
        .to_string();
    assert!(model.contains("final_rleu"), "{model}");
    let wrong_type = ExperimentConfig::from_yaml("training:\n  batch_size: many\n")
        .unwrap_err()
        .to_string();
    assert!(wrong_type.contains("batch_size"), "{wrong_type}");
}

#[test]
fn an_unknown_model_name_is_an_error_listing_the_valid_ones() {
    let err = RunConfig::new(ExperimentConfig::default(), "all-cnn-d", 0.05, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("all-cnn-d"), "{err}");
    assert!(
        err.contains("all-cnn-c") && err.contains("model-a"),
        "{err}"
    );
    let in_grid = ExperimentConfig::from_yaml("grid:\n  models: [model-c, modle-b]\n")
        .unwrap_err()
        .to_string();
    assert!(
        in_grid.contains("grid.models") && in_grid.contains("modle-b"),
        "{in_grid}"
    );
}

#[test]
fn bad_values_are_named() {
    let err = ExperimentConfig::from_yaml("grid:\n  lrs: [0.1, -1]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("grid.lrs") && err.contains("-1"), "{err}");
    let err = ExperimentConfig::from_yaml("training:\n  batch_size: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("training.batch_size"), "{err}");
    let err = ExperimentConfig::from_yaml("training:\n  device: tpu\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("tpu"), "{err}");
}

#[test]
fn run_folder_names_use_the_shortest_decimal_lr() {
    let runs = Path::new("runs");
    assert_eq!(
        run_dir(runs, "all-cnn-c", 0.1, 0),
        Path::new("runs/all-cnn-c/lr-0.1/seed-0")
    );
    assert_eq!(
        run_dir(runs, "model-a", 0.05, 3),
        Path::new("runs/model-a/lr-0.05/seed-3")
    );
    assert_eq!(
        run_dir(runs, "model-a", 0.25, 0),
        Path::new("runs/model-a/lr-0.25/seed-0")
    );
    assert_eq!(
        run_dir(runs, "model-a", 0.01, 0),
        Path::new("runs/model-a/lr-0.01/seed-0")
    );
    // names are canonicalised, so "All-CNN-C" and "all-cnn-c" share a folder
    let rc = RunConfig::new(ExperimentConfig::default(), "All-CNN-C", 0.05, 1).unwrap();
    assert_eq!(rc.run_dir(), Path::new("runs/all-cnn-c/lr-0.05/seed-1"));
}

fn set(text: &str) -> Setting {
    text.parse().unwrap()
}

#[test]
fn command_line_overrides_replace_yaml_values() {
    let mut c =
        ExperimentConfig::from_yaml("schedule:\n  epochs: 10\ntraining:\n  batch_size: 64\n")
            .unwrap();
    c.apply(&[
        set("schedule.epochs=3"),
        Setting::new("out.runs", "elsewhere"),
        set("training.device=cuda"),
        set("data.train_subset=500"),
        set("training.dropout=false"),
        set("training.shuffle=false"),
        set("schedule.milestones=[200, 250, 300]"),
        set("optim.momentum=0.5"),
    ])
    .unwrap();
    assert_eq!(c.schedule.epochs, 3);
    assert_eq!(c.training.batch_size, 64, "not overridden: YAML value kept");
    assert_eq!(c.out.runs, Path::new("elsewhere"));
    assert_eq!(c.training.device, Device::Cuda(0));
    assert_eq!(c.data.train_subset, Some(500));
    assert!(!c.training.dropout && !c.training.shuffle);
    assert_eq!(c.schedule.milestones, [200, 250, 300]);
    assert_eq!(c.optim.momentum, 0.5);
    c.apply(&[set("data.train_subset=null")]).unwrap();
    assert_eq!(c.data.train_subset, None);

    // Each refused override names itself and what is wrong: a bad value, a misspelt key (with
    // the valid keys of its section), an unknown section, a wrong type, a key below a value.
    for (text, expected) in [
        ("training.batch_size=0", vec!["training.batch_size"]),
        ("optim.momentun=0.5", vec!["optim.momentun", "`momentum`"]),
        ("optimm.momentum=0.5", vec!["optimm", "`schedule`"]),
        ("schedule.epochs=many", vec!["schedule.epochs=", "many"]),
        ("optim.momentum.x=1", vec!["`optim.momentum` is a value"]),
    ] {
        let err = c.apply(&[set(text)]).unwrap_err().to_string();
        for part in expected {
            assert!(err.contains(part), "{text}: {err}");
        }
    }
    assert!("epochs"
        .parse::<Setting>()
        .unwrap_err()
        .contains("key=value"));
    assert!("=3".parse::<Setting>().is_err());
    // A failed override leaves the configuration as it was.
    assert_eq!(c.optim.momentum, 0.5);
}

#[test]
fn shipped_configs_load_and_describe_the_protocols() {
    let root = repo_root();
    let paper = ExperimentConfig::load(&root.join("configs/paper.yaml")).unwrap();
    assert_eq!(paper.grid_points().len(), 48, "12 models x 4 lrs x 1 seed");
    assert_eq!(paper.schedule.epochs, 350);
    assert_eq!(paper.data.validation, 0);
    assert_eq!(paper.data.preprocessing, Preprocessing::GcnZca);

    let val = ExperimentConfig::load(&root.join("configs/paper-val.yaml")).unwrap();
    assert_eq!(val.data.validation, 5000);
    assert_ne!(val.out.runs, paper.out.runs, "separate run roots");
    let mut same = val.clone();
    same.data.validation = 0;
    same.out = paper.out.clone();
    assert_eq!(
        serde_json::to_value(&same).unwrap(),
        serde_json::to_value(&paper).unwrap(),
        "paper-val differs from paper only in the validation split and the output folder"
    );

    let quick = ExperimentConfig::load(&root.join("configs/quick.yaml")).unwrap();
    assert!(quick.data.train_subset.unwrap() <= 10_000);
    assert!(quick.schedule.epochs <= 20);
    assert!(quick.grid.models.contains(&"all-cnn-c".to_string()));

    // gpu-smoke: small enough to carry (5,000 + 1,000 images = 18.4 MB of records), on CUDA,
    // exact fp32, and the exact model pair it promises.
    let smoke = ExperimentConfig::load(&root.join("configs/gpu-smoke.yaml")).unwrap();
    assert_eq!(
        smoke.training.device,
        allconv_train::config::Device::Cuda(0)
    );
    assert_eq!(smoke.training.precision, Precision::Fp32);
    assert_eq!(smoke.grid.models, ["all-cnn-c", "model-c"]);
    assert!(smoke.schedule.epochs <= 5);
    // The paper's runs read the loss from the GPU every 50 steps; exact fp32 by default.
    assert_eq!(paper.training.loss_read_every, 50);
    assert_eq!(paper.training.precision, Precision::Fp32);
}

#[test]
fn grid_files_round_trip_and_name_missing_points() {
    let dir = tempfile::tempdir().unwrap();
    let c = ExperimentConfig::from_yaml(
        "grid:\n  models: [model-a, all-cnn-c]\n  lrs: [0.1, 0.05]\n  seeds: [0, 1]\n",
    )
    .unwrap();
    let grid = GridFile::from_experiment(&c).unwrap();
    assert_eq!(grid.points.len(), 8);
    let path = dir.path().join("grid.json");
    grid.save(&path).unwrap();
    let back = GridFile::load(&path).unwrap();
    let exp = back.experiment().unwrap();
    // model-major, then lr, then seed: index 5 = all-cnn-c (second model), lr 0.1, seed 1
    let rc = back.run_config(exp, 5).unwrap();
    assert_eq!((rc.model.as_str(), rc.lr, rc.seed), ("all-cnn-c", 0.1, 1));
    let err = back.point(8).unwrap_err().to_string();
    assert!(err.contains("index 8") && err.contains("0..=7"), "{err}");

    // A grid may name a YAML file instead of embedding the configuration.
    let yaml = dir.path().join("exp.yaml");
    std::fs::write(&yaml, "schedule:\n  epochs: 7\n").unwrap();
    std::fs::write(
        &path,
        format!(
            r#"{{"config": {:?}, "points": [{{"index": 3, "model": "model-b", "lr": 0.25, "seed": 2}}]}}"#,
            yaml
        ),
    )
    .unwrap();
    let g = GridFile::load(&path).unwrap();
    let rc = g.run_config(g.experiment().unwrap(), 3).unwrap();
    assert_eq!(rc.config.schedule.epochs, 7);
    assert_eq!(rc.run_dir(), Path::new("runs/model-b/lr-0.25/seed-2"));
}

#[test]
fn the_slurm_section_parses_and_bad_resources_are_named() {
    let c = ExperimentConfig::from_yaml(
        "slurm:\n  partition: gpu\n  time: \"2-00:00:00\"\n  gpus_per_task: 2\n  extra: [--constraint=a100]\n",
    )
    .unwrap();
    assert_eq!(c.slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(c.slurm.time, "2-00:00:00");
    assert_eq!(c.slurm.gpus_per_task, Some(2));
    // Left out: the defaults of docs/configuration.md.
    assert_eq!(
        (c.slurm.signal_lead, c.slurm.max_stalled_requeues),
        (120, 3)
    );
    assert_eq!(c.slurm.cpus_per_task, None);
    for (yaml, key) in [
        ("slurm:\n  partition: \"two words\"\n", "slurm.partition"),
        ("slurm:\n  cpus_per_task: 0\n", "slurm.cpus_per_task"),
        ("slurm:\n  extra: [\"constraint=a100\"]\n", "slurm.extra"),
        ("slurm:\n  nodes: 2\n", "nodes"),
    ] {
        let err = ExperimentConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

#[test]
fn the_device_names_a_gpu_by_number_and_tf32_stays_a_boolean_key() {
    // docs/configuration.md: training.device cpu | cuda | cuda:N; training.tf32 true | false.
    let c = ExperimentConfig::from_yaml("training:\n  device: cuda:3\n  tf32: true\n").unwrap();
    assert_eq!(c.training.device, Device::Cuda(3));
    assert_eq!(c.training.precision, Precision::Tf32);
    // `cuda` is GPU 0, and is written back as `cuda:0`; tf32 is written as the boolean it was.
    let c = ExperimentConfig::from_yaml("training:\n  device: cuda\n").unwrap();
    assert_eq!(c.training.device, Device::Cuda(0));
    let yaml = allconv_train::config::to_yaml_string(&c).unwrap();
    assert!(yaml.contains("device: cuda:0"), "{yaml}");
    assert!(yaml.contains("tf32: false"), "{yaml}");
    assert_eq!(
        ExperimentConfig::from_yaml(&yaml).unwrap().training.device,
        Device::Cuda(0)
    );
    let mut c = ExperimentConfig::default();
    c.apply(&[
        Setting::new("training.device", "cuda:1"),
        Setting::new("training.tf32", true),
    ])
    .unwrap();
    assert_eq!(
        (c.training.device, c.training.precision),
        (Device::Cuda(1), Precision::Tf32)
    );
    let err = ExperimentConfig::from_yaml("training:\n  device: cuda:one\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cuda:one") && err.contains("`cuda:N`"),
        "{err}"
    );
}

#[test]
fn a_derived_subset_needs_its_own_folder_of_cifar10() {
    let ok = "data:\n  dir: data/smoke\n  derive_subset: {per_file: 1000, test: 500}\n";
    let c = ExperimentConfig::from_yaml(ok).unwrap();
    let subset = c.data.derive_subset.unwrap();
    assert_eq!((subset.per_file, subset.test), (1000, 500));
    for (yaml, named) in [
        (
            "data:\n  derive_subset: {per_file: 10, test: 10}\n",
            "data.derive_subset needs data.dir",
        ),
        (
            "data:\n  dir: d\n  derive_subset: {per_file: 0, test: 10}\n",
            "data.derive_subset.per_file must be 1 to 10000 images, got 0",
        ),
        (
            "data:\n  dir: d\n  derive_subset: {per_file: 10, test: 10001}\n",
            "data.derive_subset.test must be 1 to 10000 images, got 10001",
        ),
        (
            "data:\n  dir: d\n  dataset: cifar100\n  derive_subset: {per_file: 10, test: 10}\n\
             model:\n  num_classes: 100\n",
            "CIFAR-10 subsets only, but data.dataset is cifar100",
        ),
    ] {
        let err = ExperimentConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(named), "{yaml}: {err}");
    }
}
