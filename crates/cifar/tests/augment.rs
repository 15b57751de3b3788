//! Augmentation (docs/protocol.md, "Data augmentation"): flips and shifts on a hand-made image
//! equal a hand computation with zero-filled edges, the device tensor path equals the plain loop,
//! and the draws depend only on (seed, epoch, image index).

use allconv_cifar::{AugmentParams, EpochAugmentation, IMAGE_BYTES, MAX_SHIFT};
use candle_core::{Device, Tensor};

/// Pixel (c, y, x) holds 1 + c*1024 + y*32 + x: every value distinct and non-zero, so a zero in
/// the output can only be fill.
fn ramp() -> Vec<f32> {
    (0..IMAGE_BYTES).map(|v| (v + 1) as f32).collect()
}

fn at(image: &[f32], c: usize, y: usize, x: usize) -> f32 {
    image[c * 1024 + y * 32 + x]
}

fn device_apply(images: &[f32], params: &[AugmentParams]) -> Vec<f32> {
    let b = params.len();
    let aug = EpochAugmentation::from_params(params, b, &Device::Cpu).unwrap();
    let x = Tensor::from_slice(images, (b, 3, 32, 32), &Device::Cpu).unwrap();
    aug.apply(&x, 0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn shift_right_and_down_by_hand() {
    // dx = 2, dy = 1: content moves 2 right, 1 down; column 0-1 and row 0 become zero.
    let p = AugmentParams {
        flip: false,
        dx: 2,
        dy: 1,
    };
    let out = device_apply(&ramp(), &[p]);
    assert_eq!(at(&out, 0, 0, 5), 0.0); // top row uncovered
    assert_eq!(at(&out, 1, 7, 1), 0.0); // left two columns uncovered
    assert_eq!(at(&out, 0, 1, 2), 1.0); // input (0,0,0) = 1
    assert_eq!(at(&out, 2, 31, 31), 1.0 + 2048.0 + 30.0 * 32.0 + 29.0); // input (2,30,29) = 3038
    assert_eq!(at(&out, 1, 10, 20), 1.0 + 1024.0 + 9.0 * 32.0 + 18.0); // input (1,9,18) = 1331
                                                                       // 1 row + 2 columns uncovered: 32 + 2*31 = 94 zeros per channel.
    assert_eq!(out.iter().filter(|&&v| v == 0.0).count(), 3 * 94);
}

#[test]
fn flip_then_shift_left_and_up_by_hand() {
    // Mirror, then dx = -5, dy = -3: the right five columns and the bottom three rows are zero.
    let p = AugmentParams {
        flip: true,
        dx: -5,
        dy: -3,
    };
    let out = device_apply(&ramp(), &[p]);
    // Output (0,0,0) <- flipped (3, 5) <- input (3, 31-5 = 26): 1 + 3*32 + 26 = 123.
    assert_eq!(at(&out, 0, 0, 0), 123.0);
    // Output (1,28,26) <- flipped (31, 31) <- input (31, 0): 1 + 1024 + 992 = 2017.
    assert_eq!(at(&out, 1, 28, 26), 2017.0);
    assert_eq!(at(&out, 0, 28, 27), 0.0); // column 27 reads flipped column 32: outside
    assert_eq!(at(&out, 2, 29, 0), 0.0); // row 29 reads row 32: outside
                                         // 3 rows + 5 columns uncovered: 3*32 + 5*29 = 241 zeros per channel.
    assert_eq!(out.iter().filter(|&&v| v == 0.0).count(), 3 * 241);
}

#[test]
fn pure_flip_mirrors_every_row() {
    let p = AugmentParams {
        flip: true,
        dx: 0,
        dy: 0,
    };
    let image = ramp();
    let out = device_apply(&image, &[p]);
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(at(&out, c, y, x), at(&image, c, y, 31 - x));
            }
        }
    }
}

#[test]
fn device_path_equals_the_plain_loop_for_every_shift_in_one_batch() {
    // All 11 x 11 shifts, flipped on odd positions, each image different: one batch through the
    // tensor path equals the per-image loop of `apply_host`.
    let mut params = Vec::new();
    for dy in -MAX_SHIFT..=MAX_SHIFT {
        for dx in -MAX_SHIFT..=MAX_SHIFT {
            let flip = params.len() % 2 == 1;
            params.push(AugmentParams { flip, dx, dy });
        }
    }
    let b = params.len();
    let images: Vec<f32> = (0..b * IMAGE_BYTES)
        .map(|v| (v % 9973 + 1) as f32)
        .collect();
    let out = device_apply(&images, &params);
    for (i, p) in params.iter().enumerate() {
        let expected = p
            .apply_host(&images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES])
            .unwrap();
        assert_eq!(
            &out[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES],
            &expected[..],
            "{p:?}"
        );
    }
}

#[test]
fn batches_at_an_offset_use_their_own_positions() {
    // Three positions, batch of two starting at position 1: the identity at position 0 must not
    // be used for the first image of that batch.
    let params = [
        AugmentParams::IDENTITY,
        AugmentParams {
            flip: true,
            dx: 0,
            dy: 0,
        },
        AugmentParams {
            flip: false,
            dx: 0,
            dy: 5,
        },
    ];
    let aug = EpochAugmentation::from_params(&params, 2, &Device::Cpu).unwrap();
    let images: Vec<f32> = [ramp(), ramp()].concat();
    let x = Tensor::from_slice(&images, (2, 3, 32, 32), &Device::Cpu).unwrap();
    let out: Vec<f32> = aug
        .apply(&x, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(out[0], 32.0); // flipped: (0,0,0) <- (0,0,31) = 32
    assert_eq!(out[IMAGE_BYTES + 4 * 32], 0.0); // shifted down 5: row 4 is fill
    assert_eq!(out[IMAGE_BYTES + 5 * 32], 1.0); // row 5 <- row 0
                                                // A batch past the last position, or larger than the tables, is refused.
    assert!(aug.apply(&x, 2).is_err());
    let too_many = Tensor::zeros((3, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(aug.apply(&too_many, 0).is_err());
}

#[test]
fn draws_depend_only_on_seed_epoch_and_index_and_are_roughly_uniform() {
    let a = AugmentParams::draw(3, 7, 41);
    assert_eq!(a, AugmentParams::draw(3, 7, 41));
    // Over 11,000 draws of one epoch: each shift value has probability 1/11 (expected 1,000,
    // binomial sd ~ 30, so 850..1150 is a 5-sd band) and flips are half (5,500, sd ~ 52).
    let draws: Vec<AugmentParams> = (0..11_000).map(|i| AugmentParams::draw(3, 7, i)).collect();
    for v in -MAX_SHIFT..=MAX_SHIFT {
        let nx = draws.iter().filter(|p| p.dx == v).count();
        let ny = draws.iter().filter(|p| p.dy == v).count();
        assert!((850..1150).contains(&nx), "dx = {v}: {nx}");
        assert!((850..1150).contains(&ny), "dy = {v}: {ny}");
    }
    let flips = draws.iter().filter(|p| p.flip).count();
    assert!((5_240..5_760).contains(&flips), "{flips}");
    // Another epoch or seed gives other draws for most images (equal by chance 1/242 each).
    let same_next_epoch = (0..1000)
        .filter(|&i| AugmentParams::draw(3, 8, i) == draws[i as usize])
        .count();
    let same_other_seed = (0..1000)
        .filter(|&i| AugmentParams::draw(4, 7, i) == draws[i as usize])
        .count();
    assert!(same_next_epoch < 20, "{same_next_epoch}");
    assert!(same_other_seed < 20, "{same_other_seed}");
}

#[test]
fn same_seed_and_epoch_give_the_same_batch_whatever_the_batch_size() {
    // Image i's transformation follows the image, not its batch: an epoch in batches of 4 and of
    // 3 gives the same augmented images at the same positions.
    let n = 12;
    let images: Vec<f32> = (0..n * IMAGE_BYTES)
        .map(|v| (v % 7919 + 1) as f32)
        .collect();
    let order: Vec<usize> = vec![5, 0, 11, 3, 8, 1, 9, 2, 7, 10, 4, 6];
    let gathered: Vec<f32> = order
        .iter()
        .flat_map(|&i| images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES].to_vec())
        .collect();
    let run = |batch: usize| -> Vec<f32> {
        let aug = EpochAugmentation::new(9, 2, &order, batch, &Device::Cpu).unwrap();
        let mut out = Vec::new();
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            let x = Tensor::from_slice(
                &gathered[start * IMAGE_BYTES..(start + b) * IMAGE_BYTES],
                (b, 3, 32, 32),
                &Device::Cpu,
            )
            .unwrap();
            let y: Vec<f32> = aug
                .apply(&x, start)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            out.extend(y);
        }
        out
    };
    let a = run(4);
    assert_eq!(a, run(3));
    assert_eq!(a, run(4));
    for (p, &i) in order.iter().enumerate() {
        let expected = AugmentParams::draw(9, 2, i as u64)
            .apply_host(&images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES])
            .unwrap();
        assert_eq!(&a[p * IMAGE_BYTES..(p + 1) * IMAGE_BYTES], &expected[..]);
    }
    // Out-of-range shifts are refused.
    let bad = AugmentParams {
        flip: false,
        dx: 6,
        dy: 0,
    };
    assert!(EpochAugmentation::from_params(&[bad], 1, &Device::Cpu).is_err());
    assert!(bad.apply_host(&images[..IMAGE_BYTES]).is_err());
}
