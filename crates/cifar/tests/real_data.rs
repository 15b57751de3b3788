//! Checks on the real data set, which CI does not have: run with
//! `ALLCONV_DATA=<data root> cargo test -p allconv-cifar --test real_data -- --ignored`
//! after `allconv data fetch` (the folder read is `cifar-10-batches-bin` in the data root,
//! default `data`; a relative root is taken from the workspace).

use std::path::PathBuf;

use allconv_cifar::{
    channel_stats, default_data_dir, label_counts, load_dir, verify_checksums, Dataset,
    OFFICIAL_MD5,
};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(default_data_dir(Dataset::Cifar10))
}

#[test]
#[ignore = "needs the real data set (allconv data fetch)"]
fn real_files_match_the_official_md5s() {
    verify_checksums(&data_dir(), OFFICIAL_MD5).unwrap();
}

#[test]
#[ignore = "needs the real data set (allconv data fetch)"]
fn real_statistics_match_the_published_values() {
    let data = load_dir(&data_dir()).unwrap();
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    let train = channel_stats(&data.train);
    // Published values, listed in docs/protocol.md, Data (0-255 scale, population std).
    let mean = [125.306918046875, 122.950394140625, 113.86538318359375];
    let std = [62.99321927813685, 62.088707640014405, 66.70489964063101];
    for c in 0..3 {
        assert!((train.mean[c] - mean[c]).abs() < 1e-6, "{:?}", train.mean);
        assert!((train.std[c] - std[c]).abs() < 1e-6, "{:?}", train.std);
    }
    let test = channel_stats(&data.test);
    let test_mean = [126.025, 123.709, 114.854];
    for (got, want) in test.mean.iter().zip(test_mean) {
        assert!((got - want).abs() < 1e-3, "{:?}", test.mean);
    }
    assert_eq!(
        label_counts(&data.train.labels[..10_000]),
        [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    );
}
