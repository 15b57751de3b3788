//! The fitted ZCA is cached in a safetensors file: the second run loads it, any change of the
//! training images or fit parameters names another file, and a damaged file is refitted rather
//! than trusted. (Each fit is an eigendecomposition of a 3072x3072 matrix, so this file fits
//! only twice; which file a fit goes to is checked through `zca_cache_file`.)

use allconv_cifar::{
    prepare, synthetic_split, zca_cache_file, PrepareOptions, Prepared, RawDataset,
};

fn data() -> RawDataset {
    RawDataset {
        train: synthetic_split(30, 4, 0),
        test: synthetic_split(10, 4, 1),
    }
}

fn cache_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn second_run_loads_the_cache_and_a_damaged_file_is_refitted() {
    let cache = tempfile::tempdir().unwrap();
    let data = data();
    let opts = PrepareOptions::default();
    let first = prepare(&data, &opts, Some(cache.path())).unwrap();
    assert!(!first.from_cache);
    let files = cache_files(cache.path());
    assert_eq!(
        files,
        vec![zca_cache_file(&data, &opts, cache.path()).unwrap()]
    );
    let second = prepare(&data, &opts, Some(cache.path())).unwrap();
    assert!(second.from_cache);
    assert_eq!(
        first,
        Prepared {
            from_cache: false,
            ..second.clone()
        }
    );
    // The test subset does not change the fit: still a cache hit, same test images.
    let fewer_test = PrepareOptions {
        test_subset: Some(4),
        ..opts.clone()
    };
    let third = prepare(&data, &fewer_test, Some(cache.path())).unwrap();
    assert!(third.from_cache);
    assert_eq!(third.test.images, first.test.images[..4 * 3072]);

    // Damage the file: it is refitted to the same numbers and replaced.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let again = prepare(&data, &opts, Some(cache.path())).unwrap();
    assert!(!again.from_cache);
    assert_eq!(again.train, first.train);
    assert!(
        prepare(&data, &fewer_test, Some(cache.path()))
            .unwrap()
            .from_cache
    );
    assert_eq!(cache_files(cache.path()).len(), 1);
}

#[test]
fn the_cache_file_changes_with_training_images_and_fit_parameters() {
    let dir = std::path::Path::new("cache");
    let data = data();
    let opts = PrepareOptions::default();
    let base = zca_cache_file(&data, &opts, dir).unwrap();
    assert_eq!(base.parent(), Some(dir));
    let variants = [
        PrepareOptions {
            validation: 5,
            ..opts.clone()
        },
        PrepareOptions {
            zca_epsilon: 0.01,
            ..opts.clone()
        },
        PrepareOptions {
            gcn_scale: 1.0,
            ..opts.clone()
        },
        PrepareOptions {
            train_subset: Some(20),
            ..opts.clone()
        },
    ];
    let mut seen = vec![base.clone()];
    for v in &variants {
        let file = zca_cache_file(&data, v, dir).unwrap();
        assert!(!seen.contains(&file), "{v:?} reuses {}", file.display());
        seen.push(file);
    }
    let mut changed = data.clone();
    changed.train.images[5] ^= 1;
    assert_ne!(zca_cache_file(&changed, &opts, dir).unwrap(), base);
    // Labels and test images play no part in the fit.
    let mut relabelled = data.clone();
    relabelled.train.labels[0] = (relabelled.train.labels[0] + 1) % 10;
    relabelled.test.images[0] ^= 1;
    assert_eq!(zca_cache_file(&relabelled, &opts, dir).unwrap(), base);
}

#[test]
fn altered_tensors_or_a_cache_without_checksum_are_refitted() {
    let cache = tempfile::tempdir().unwrap();
    let data = data();
    let opts = PrepareOptions::default();
    let first = prepare(&data, &opts, Some(cache.path())).unwrap();
    assert!(!first.from_cache);
    let file = zca_cache_file(&data, &opts, cache.path()).unwrap();
    let good = std::fs::read(&file).unwrap();

    // 16 altered bytes at the end of the file: the safetensors layout is an 8-byte header
    // length, the JSON header, then the tensor bytes, so these are the last four values of
    // `w`. The file stays well-formed; only a checksum of the tensors can tell.
    let mut altered = good.clone();
    let len = altered.len();
    altered[len - 16..].iter_mut().for_each(|b| *b ^= 0x5a);
    safetensors::SafeTensors::deserialize(&altered).expect("still a valid safetensors file");
    std::fs::write(&file, &altered).unwrap();
    let refitted = prepare(&data, &opts, Some(cache.path())).unwrap();
    assert!(!refitted.from_cache, "altered tensors were trusted");
    assert_eq!(refitted.train, first.train);
    assert_eq!(refitted.test, first.test);
    assert!(
        prepare(&data, &opts, Some(cache.path()))
            .unwrap()
            .from_cache
    );

    // A cache written before the checksum existed: the same tensors, only the key in the
    // metadata. It cannot be verified, so it is refitted (and replaced by a verifiable one).
    let bytes = std::fs::read(&file).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let key = metadata.metadata().as_ref().unwrap()["key"].clone();
    let old = safetensors::serialize(
        [
            ("mean", tensors.tensor("mean").unwrap()),
            ("w", tensors.tensor("w").unwrap()),
        ],
        Some(std::collections::HashMap::from([("key".to_string(), key)])),
    )
    .unwrap();
    std::fs::write(&file, &old).unwrap();
    let from_old = prepare(&data, &opts, Some(cache.path())).unwrap();
    assert!(!from_old.from_cache, "a cache without checksum was trusted");
    assert_eq!(from_old.train, first.train);
    assert!(
        prepare(&data, &opts, Some(cache.path()))
            .unwrap()
            .from_cache
    );
    assert_eq!(cache_files(cache.path()), vec![file]);
}
