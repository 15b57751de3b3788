//! An independent check of our CIFAR-10 reader: candle-datasets' own loader
//! (`candle_datasets::vision::cifar::load_dir`) reads the same synthetic folder into exactly our
//! images (scaled as it scales them) and labels; and our prepared splits convert to its
//! `vision::Dataset` unchanged. Needs `--features candle-datasets`.
#![cfg(feature = "candle-datasets")]

use allconv_cifar::{load_dir, prepare, to_candle_dataset, write_synthetic_dir, PrepareOptions};

#[test]
fn candle_datasets_reads_our_synthetic_folder_as_we_do() {
    let tmp = tempfile::tempdir().unwrap();
    // candle-datasets reads exactly 10,000 records per file, the official size.
    write_synthetic_dir(tmp.path(), 10_000, 10_000, 11).unwrap();
    let ours = load_dir(tmp.path()).unwrap();
    let theirs = candle_datasets::vision::cifar::load_dir(tmp.path()).unwrap();
    assert_eq!(theirs.labels, 10);
    // It scales with `tensor / 255.`, which candle computes as x * (1/255) in f32.
    let scale = (1.0f64 / 255.0) as f32;
    for (our, images, labels) in [
        (&ours.train, &theirs.train_images, &theirs.train_labels),
        (&ours.test, &theirs.test_images, &theirs.test_labels),
    ] {
        assert_eq!(images.dims(), [our.len(), 3, 32, 32]);
        let values: Vec<f32> = images.flatten_all().unwrap().to_vec1().unwrap();
        let expected: Vec<f32> = our.images.iter().map(|&b| f32::from(b) * scale).collect();
        assert!(
            values
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "images differ"
        );
        let labels: Vec<u8> = labels.to_vec1().unwrap();
        assert_eq!(labels, our.labels);
    }
    // Our prepared splits (standardised) as its type: the same values and labels.
    let opts = PrepareOptions {
        preprocessing: allconv_cifar::Preprocessing::Standardize,
        train_subset: Some(500),
        test_subset: Some(200),
        ..Default::default()
    };
    let prepared = prepare(&ours, &opts, None).unwrap();
    let dataset = to_candle_dataset(&prepared, 10).unwrap();
    assert_eq!(dataset.train_images.dims(), [500, 3, 32, 32]);
    let train: Vec<f32> = dataset
        .train_images
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(train, prepared.train.images);
    let test_labels: Vec<u8> = dataset.test_labels.to_vec1().unwrap();
    assert_eq!(test_labels, prepared.test.labels);
}
