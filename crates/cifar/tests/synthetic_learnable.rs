//! The synthetic data set that the trainer's tests use is learnable: after the paper's
//! preprocessing, a nearest-class-mean classifier fitted on the training images classifies
//! held-out test images far above chance (10%).

use allconv_cifar::{load_dir, prepare, write_synthetic_dir, PrepareOptions, IMAGE_BYTES};

#[test]
fn nearest_class_mean_beats_chance_by_far_after_gcn_zca() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dir(dir.path(), 20, 100, 42).unwrap();
    let data = load_dir(dir.path()).unwrap();
    let p = prepare(&data, &PrepareOptions::default(), None).unwrap();
    let mut means = vec![vec![0f64; IMAGE_BYTES]; 10];
    let mut counts = [0usize; 10];
    for (image, &label) in p
        .train
        .images
        .chunks_exact(IMAGE_BYTES)
        .zip(&p.train.labels)
    {
        counts[label as usize] += 1;
        for (m, &v) in means[label as usize].iter_mut().zip(image) {
            *m += f64::from(v);
        }
    }
    for (m, &c) in means.iter_mut().zip(&counts) {
        m.iter_mut().for_each(|v| *v /= c as f64);
    }
    let mut correct = 0;
    for (image, &label) in p.test.images.chunks_exact(IMAGE_BYTES).zip(&p.test.labels) {
        let distance = |m: &Vec<f64>| -> f64 {
            m.iter()
                .zip(image)
                .map(|(a, &b)| (a - f64::from(b)).powi(2))
                .sum()
        };
        let best = (0..10)
            .min_by(|&a, &b| distance(&means[a]).total_cmp(&distance(&means[b])))
            .unwrap();
        correct += usize::from(best == label as usize);
    }
    // Chance is 10 of 100.
    assert!(correct >= 60, "{correct} of 100 correct");
}
