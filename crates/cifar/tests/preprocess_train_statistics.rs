//! Statistics come from the training part only and are applied unchanged to validation and
//! test: the mistake of the seed reproduction (test set normalised with its own statistics)
//! must fail these tests.

use allconv_cifar::{
    prepare, prepare_test, synthetic_split, PrepareOptions, Preprocessing, RawDataset, RawSplit,
    IMAGE_BYTES,
};

fn constant_image(r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut v = vec![r; 1024];
    v.extend(std::iter::repeat_n(g, 1024));
    v.extend(std::iter::repeat_n(b, 1024));
    v
}

/// Training images A, B with per-channel mean (20, 50, 220) and std (10, sqrt(1250), 20)
/// (hand computation as in channel_stats.rs).
fn train_ab() -> RawSplit {
    let mut images = Vec::new();
    images.extend(std::iter::repeat_n(10u8, 1024));
    images.extend(std::iter::repeat_n(0u8, 512));
    images.extend(std::iter::repeat_n(100u8, 512));
    images.extend(std::iter::repeat_n(200u8, 1024));
    images.extend(constant_image(30, 50, 240));
    RawSplit {
        images,
        labels: vec![1, 2],
    }
}

fn standardize() -> PrepareOptions {
    PrepareOptions {
        preprocessing: Preprocessing::Standardize,
        ..PrepareOptions::default()
    }
}

#[test]
fn standardize_applies_training_statistics_to_the_test_set() {
    let data = RawDataset {
        train: train_ab(),
        test: RawSplit {
            images: constant_image(200, 200, 200),
            labels: vec![0],
        },
    };
    let p = prepare(&data, &standardize(), None).unwrap();
    // Hand computation with the training statistics: R (200-20)/10, G (200-50)/sqrt(1250),
    // B (200-220)/20. With the test set's own statistics every value would be 0.
    let expected = [18.0, 150.0 / 1250f64.sqrt(), -1.0];
    for (c, want) in expected.iter().enumerate() {
        for &v in &p.test.images[c * 1024..(c + 1) * 1024] {
            assert!((f64::from(v) - want).abs() < 1e-5, "channel {c}: {v}");
        }
    }
    // The training images themselves: image B, R = (30 - 20)/10 = 1.
    assert!((p.train.images[IMAGE_BYTES] - 1.0).abs() < 1e-6);
}

#[test]
fn the_validation_split_is_the_last_images_and_is_excluded_from_the_statistics() {
    let mut train = train_ab();
    train.images.extend(constant_image(255, 255, 255));
    train.labels.push(7);
    let data = RawDataset {
        train,
        test: RawSplit {
            images: constant_image(0, 0, 0),
            labels: vec![0],
        },
    };
    let opts = PrepareOptions {
        validation: 1,
        ..standardize()
    };
    let p = prepare(&data, &opts, None).unwrap();
    assert_eq!(p.train.labels, vec![1, 2]);
    assert_eq!(p.validation.labels, vec![7]);
    // Statistics of A and B only; had image C been included, R's mean would be 295/3.
    let expected = [
        (255.0 - 20.0) / 10.0,
        205.0 / 1250f64.sqrt(),
        (255.0 - 220.0) / 20.0,
    ];
    for (c, want) in expected.iter().enumerate() {
        let v = f64::from(p.validation.images[c * 1024]);
        assert!((v - want).abs() < 1e-5, "channel {c}: {v}");
    }
    // The test set gets the same statistics: R (0 - 20)/10 = -2.
    assert!((p.test.images[0] + 2.0).abs() < 1e-6);
}

#[test]
fn subsets_take_the_first_images_and_validation_comes_from_the_subset() {
    let data = RawDataset {
        train: synthetic_split(50, 3, 0),
        test: synthetic_split(20, 3, 1),
    };
    let opts = PrepareOptions {
        preprocessing: Preprocessing::Scale,
        validation: 10,
        train_subset: Some(40),
        test_subset: Some(5),
        ..PrepareOptions::default()
    };
    let p = prepare(&data, &opts, None).unwrap();
    assert_eq!(p.train.labels, data.train.labels[..30]);
    assert_eq!(p.validation.labels, data.train.labels[30..40]);
    assert_eq!(p.test.labels, data.test.labels[..5]);
    // scale is x / 255.
    let byte = data.train.images[30 * IMAGE_BYTES + 17];
    assert_eq!(p.validation.images[17], f32::from(byte) / 255.0);
    assert_eq!(p.train.images.len(), 30 * IMAGE_BYTES);
}

#[test]
fn impossible_splits_are_errors_naming_the_option() {
    let data = RawDataset {
        train: synthetic_split(10, 3, 0),
        test: synthetic_split(5, 3, 1),
    };
    let bad = [
        PrepareOptions {
            validation: 10,
            ..standardize()
        },
        PrepareOptions {
            train_subset: Some(11),
            ..standardize()
        },
        PrepareOptions {
            test_subset: Some(6),
            ..standardize()
        },
    ];
    for (opts, name) in bad
        .iter()
        .zip(["validation", "train_subset", "test_subset"])
    {
        let err = prepare(&data, opts, None).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn gcn_zca_whitens_with_training_statistics_only() {
    // Training images are the synthetic classes; test images are the same kind of images with a
    // red cast, so their statistics differ from the training ones.
    let train = synthetic_split(60, 11, 0);
    let mut test = synthetic_split(20, 11, 1);
    for image in test.images.chunks_exact_mut(IMAGE_BYTES) {
        for v in &mut image[..1024] {
            *v = v.saturating_add(80);
        }
    }
    let data = RawDataset { train, test };
    let p = prepare(&data, &PrepareOptions::default(), None).unwrap();
    let mean_abs = |images: &[f32]| {
        let n = images.len() / IMAGE_BYTES;
        let mut mean = vec![0f64; IMAGE_BYTES];
        for image in images.chunks_exact(IMAGE_BYTES) {
            for (m, &v) in mean.iter_mut().zip(image) {
                *m += f64::from(v) / n as f64;
            }
        }
        mean.iter().map(|m| m.abs()).sum::<f64>() / IMAGE_BYTES as f64
    };
    // Fitted on the training part: its whitened mean is zero (up to f32 round-off)...
    let train_mean = mean_abs(&p.train.images);
    assert!(train_mean < 1e-4, "train mean {train_mean}");
    // ...while the test set keeps its shift, over 100 times the training bound. Fitting on the
    // test set would make this ~0 too.
    let test_mean = mean_abs(&p.test.images);
    assert!(test_mean > 0.01, "test mean {test_mean}");
}

#[test]
fn prepare_test_gives_prepares_test_split_bit_for_bit_and_no_other() {
    // For every preprocessing, with a validation split and a cache folder (gcn_zca fits once,
    // then loads): the test images and labels equal `prepare`'s exactly; training and
    // validation are left out.
    let data = RawDataset {
        train: synthetic_split(60, 5, 0),
        test: synthetic_split(15, 5, 1),
    };
    let cache = tempfile::tempdir().unwrap();
    for preprocessing in [
        Preprocessing::Scale,
        Preprocessing::Standardize,
        Preprocessing::GcnZca,
    ] {
        let opts = PrepareOptions {
            preprocessing,
            validation: 10,
            ..Default::default()
        };
        let full = prepare(&data, &opts, Some(cache.path())).unwrap();
        let test_only = prepare_test(&data, &opts, Some(cache.path())).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(full.test.labels, test_only.test.labels, "{preprocessing:?}");
        assert_eq!(
            bits(&full.test.images),
            bits(&test_only.test.images),
            "{preprocessing:?}"
        );
        assert!(full.train.len() == 50 && full.validation.len() == 10);
        assert!(test_only.train.is_empty() && test_only.train.images.is_empty());
        assert!(test_only.validation.is_empty() && test_only.validation.images.is_empty());
    }
}
