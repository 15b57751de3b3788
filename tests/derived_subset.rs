//! The gpu-smoke experiment makes its data subset however it is named (docs/configuration.md,
//! `data.derive_subset`): `--preset gpu-smoke`, `--config configs/gpu-smoke.yaml`, with
//! `--data-dir` or with `--set data.dir=`. Synthetic data, no network: a fetch would fail.

mod common;

use std::path::Path;

/// The repository's gpu-smoke experiment file.
fn smoke_yaml() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gpu-smoke.yaml")
}

/// A working folder with the full (synthetic) CIFAR-10 at its default place
/// `data/cifar-10-batches-bin` (1,000 images per training file, 1,000 test images: what the
/// gpu-smoke subset takes) and the gpu-smoke file at `configs/gpu-smoke.yaml`, as in the
/// repository.
fn workdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("data/cifar-10-batches-bin");
    allconv_cifar::write_synthetic_dir(&full, 1000, 1000, 11).unwrap();
    std::fs::create_dir_all(tmp.path().join("configs")).unwrap();
    std::fs::copy(smoke_yaml(), tmp.path().join("configs/gpu-smoke.yaml")).unwrap();
    tmp
}

/// `allconv reproduce` of the gpu-smoke experiment named by `route`, in `cwd`, on the CPU and
/// cut to one epoch of 50 images (the data step under test is unchanged by that).
fn reproduce(cwd: &Path, route: &[&str]) -> std::process::Output {
    common::allconv()
        .current_dir(cwd)
        .env_remove("ALLCONV_DATA")
        .arg("reproduce")
        .args(route)
        .args([
            "--device",
            "cpu",
            "--models",
            "strided-cnn-a",
            "--epochs",
            "1",
        ])
        .args(["--runs", "runs", "--set", "data.train_subset=50"])
        .args([
            "--set",
            "data.test_subset=20",
            "--set",
            "data.preprocessing=scale",
        ])
        .args([
            "--set",
            "data.cache_dir=null",
            "--set",
            "training.batch_size=25",
        ])
        .output()
        .unwrap()
}

/// Every file of a folder, by name, with its bytes.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn gpu_smoke_makes_its_subset_whichever_way_it_is_named() {
    let yaml = smoke_yaml();
    let yaml = yaml.to_str().unwrap();
    let routes: [(&[&str], &str); 4] = [
        (&["--preset", "gpu-smoke"], "data/cifar-10-smoke"),
        (&["--config", yaml], "data/cifar-10-smoke"),
        (&["--config", yaml, "--data-dir", "elsewhere"], "elsewhere"),
        (&["--config", yaml, "--set", "data.dir=there"], "there"),
    ];
    let mut made = Vec::new();
    for (route, subset) in routes {
        let tmp = workdir();
        let full = files(&tmp.path().join("data/cifar-10-batches-bin"));
        let out = reproduce(tmp.path(), route);
        assert!(out.status.success(), "{route:?}: {}", common::text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("fetching"), "{route:?}: {stderr}");
        let dir = tmp.path().join(subset);
        let written = files(&dir);
        // docs/configuration.md: the first 1,000 images of each training file and the first
        // 1,000 test images, in the official layout (3,073-byte records), marked as a subset.
        for name in allconv_cifar::TRAIN_FILES
            .iter()
            .chain([&allconv_cifar::TEST_FILE])
        {
            assert_eq!(written[*name].len(), 1000 * 3073, "{route:?}: {name}");
            assert_eq!(
                written[*name][..],
                full[*name][..1000 * 3073],
                "{route:?}: {name} is the first 1,000 records"
            );
        }
        let mut written = written;
        assert!(
            written.remove(allconv_cifar::SUBSET_MARKER).is_some(),
            "{route:?}: marked as a subset (the marker names its source folder)"
        );
        // The full data set is left as it was.
        assert_eq!(files(&tmp.path().join("data/cifar-10-batches-bin")), full);
        // The run recorded the subset folder as its data.
        let config = std::fs::read_to_string(
            tmp.path()
                .join("runs/strided-cnn-a/lr-0.05/seed-0/config.yaml"),
        )
        .unwrap();
        assert!(
            config.contains(&format!("data_dir: {subset}")),
            "{route:?}: {config}"
        );
        assert!(config.contains("derive_subset:"), "{route:?}: {config}");
        made.push(written);
    }
    assert!(
        made.windows(2).all(|w| w[0] == w[1]),
        "every route made the same subset"
    );
}
