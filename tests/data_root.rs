//! `$ALLCONV_DATA` names the data root, with one folder per data set below it
//! (`cifar-10-batches-bin`, `cifar-100-binary`; docs/configuration.md, `data.dir`): a run with
//! `data.dir: null` reads its own data set's folder, whichever data set it is.

mod common;

use std::path::Path;

/// A one-epoch CIFAR-100 experiment on the CPU with no `data.dir`, writing runs to `runs`.
fn cifar100_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("c100.yaml");
    std::fs::write(
        &config,
        format!(
            "data:\n  dataset: cifar100\n  preprocessing: scale\nmodel:\n  num_classes: 100\n\
             schedule:\n  epochs: 1\n  milestones: []\ntraining:\n  batch_size: 50\n  \
             device: cpu\n  stuck_epochs: 0\ngrid:\n  models: [strided-cnn-a]\n  lrs: [0.01]\n\
             out:\n  runs: {}\n",
            dir.join("runs").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn each_data_set_is_read_from_its_own_folder_in_the_data_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    allconv_cifar::write_synthetic_dir(&root.join("cifar-10-batches-bin"), 10, 10, 5).unwrap();
    allconv_cifar::write_synthetic_cifar100_dir(&root.join("cifar-100-binary"), 100, 50, 5)
        .unwrap();

    // CIFAR-100 with data.dir null, $ALLCONV_DATA set: its own folder, not the CIFAR-10 one.
    let config = cifar100_config(tmp.path());
    let out = common::allconv()
        .env("ALLCONV_DATA", &root)
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let saved = std::fs::read_to_string(
        tmp.path()
            .join("runs/strided-cnn-a/lr-0.01/seed-0/config.yaml"),
    )
    .unwrap();
    let want = format!("data_dir: {}", root.join("cifar-100-binary").display());
    assert!(saved.contains(&want), "{saved}");

    // CIFAR-10 (`data stats` without --data-dir): the CIFAR-10 folder of the same root.
    let out = common::allconv()
        .env("ALLCONV_DATA", &root)
        .args(["data", "stats"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("folder: {}", root.join("cifar-10-batches-bin").display());
    assert!(text.contains(&want), "{text}");
    assert!(text.contains("images: 50 training, 10 test"), "{text}");
}

#[test]
fn without_the_variable_the_root_is_data() {
    let tmp = tempfile::tempdir().unwrap();
    allconv_cifar::write_synthetic_dir(&tmp.path().join("data/cifar-10-batches-bin"), 10, 10, 5)
        .unwrap();
    let out = common::allconv()
        .current_dir(tmp.path())
        .env_remove("ALLCONV_DATA")
        .args(["data", "stats"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("folder: data/cifar-10-batches-bin"), "{text}");
}

#[test]
fn a_variable_naming_the_cifar10_folder_itself_is_explained_not_fetched_below() {
    // Before, $ALLCONV_DATA named the CIFAR-10 folder: such a setting now gets a message saying
    // what it names, instead of a download into <that folder>/cifar-10-batches-bin.
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = common::tiny_grid(tmp.path(), 1);
    let text = std::fs::read_to_string(&config).unwrap();
    let data = tmp.path().join("data");
    let without_dir = text.replace(&format!("  dir: {}\n", data.display()), "");
    assert_ne!(without_dir, text, "the tiny grid names its data folder");
    std::fs::write(&config, without_dir).unwrap();
    let out = common::allconv()
        .env("ALLCONV_DATA", &data)
        .args(["reproduce", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", common::text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names the data root") && err.contains("cifar-10-batches-bin"),
        "{err}"
    );
    assert!(!err.contains("fetching"), "{err}");
    assert!(!data.join("cifar-10-batches-bin").exists());
}
