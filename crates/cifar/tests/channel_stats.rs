//! Per-channel statistics against hand computation.

use allconv_cifar::{channel_stats, label_counts, RawSplit};

/// Image A: R = 10, G = 0 on the first 512 pixels and 100 on the rest, B = 200.
/// Image B: R = 30, G = 50, B = 240.
fn two_images() -> RawSplit {
    let mut images = Vec::new();
    images.extend(std::iter::repeat_n(10u8, 1024));
    images.extend(std::iter::repeat_n(0u8, 512));
    images.extend(std::iter::repeat_n(100u8, 512));
    images.extend(std::iter::repeat_n(200u8, 1024));
    images.extend(std::iter::repeat_n(30u8, 1024));
    images.extend(std::iter::repeat_n(50u8, 1024));
    images.extend(std::iter::repeat_n(240u8, 1024));
    RawSplit {
        images,
        labels: vec![1, 2],
    }
}

#[test]
fn mean_and_population_std_per_channel_match_hand_computation() {
    let stats = channel_stats(&two_images());
    // R: half the pixels 10, half 30 -> mean 20, std 10.
    // G: 512 x 0, 512 x 100, 1024 x 50 -> mean 50, variance (1024 * 50^2) / 2048 = 1250.
    // B: half 200, half 240 -> mean 220, std 20.
    let mean = [20.0, 50.0, 220.0];
    let std = [10.0, 1250f64.sqrt(), 20.0];
    for c in 0..3 {
        assert!(
            (stats.mean[c] - mean[c]).abs() < 1e-12,
            "mean {c}: {:?}",
            stats.mean
        );
        assert!(
            (stats.std[c] - std[c]).abs() < 1e-12,
            "std {c}: {:?}",
            stats.std
        );
    }
}

#[test]
fn statistics_do_not_lose_precision_on_large_uniform_data() {
    // 1,000 images whose pixels are 0 or 255 alternately: mean 127.5, std 127.5 exactly.
    let images: Vec<u8> = (0..1000 * 3072)
        .map(|i| if i % 2 == 0 { 0 } else { 255 })
        .collect();
    let stats = channel_stats(&RawSplit {
        images,
        labels: vec![0; 1000],
    });
    assert_eq!(stats.mean, [127.5; 3]);
    assert_eq!(stats.std, [127.5; 3]);
}

#[test]
fn label_counts_count_each_class() {
    assert_eq!(
        label_counts(&[0, 0, 3, 9, 9, 9]),
        [2, 0, 0, 1, 0, 0, 0, 0, 0, 3]
    );
}
