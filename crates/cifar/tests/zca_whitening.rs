//! ZCA whitening against independent computations: the covariance of whitened data must be
//! `C (C + eps I)^-1`, computed here by Gaussian elimination, and GCN must match pylearn2's
//! definition.

use allconv_cifar::{
    gcn, prepare, synthetic_split, zca_fit, PrepareOptions, RawDataset, IMAGE_BYTES,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` correlated rows of `d` values: independent uniform sources with scales from 0.05 to 3,
/// mixed by a random matrix, so the eigenvalues span both sides of eps = 0.1.
fn correlated(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mix: Vec<f64> = (0..d * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let s: Vec<f64> = (0..d)
            .map(|j| rng.random_range(-1.0..1.0) * (0.05 + 3.0 * j as f64 / d as f64))
            .collect();
        for i in 0..d {
            let v: f64 = (0..d).map(|j| mix[i * d + j] * s[j]).sum::<f64>() + 2.0 * i as f64;
            x.push(v as f32);
        }
    }
    x
}

/// Population covariance of row vectors, by definition, in f64.
fn covariance(x: &[f32], n: usize, d: usize) -> Vec<f64> {
    let mut mean = vec![0f64; d];
    for row in x.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v) / n as f64;
        }
    }
    let mut c = vec![0f64; d * d];
    for row in x.chunks_exact(d) {
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] +=
                    (f64::from(row[i]) - mean[i]) * (f64::from(row[j]) - mean[j]) / n as f64;
            }
        }
    }
    c
}

/// Solves `A X = B` (row-major d x d) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, d: usize) -> Vec<f64> {
    for col in 0..d {
        let pivot = (col..d)
            .max_by(|&r, &s| a[r * d + col].abs().total_cmp(&a[s * d + col].abs()))
            .unwrap();
        for k in 0..d {
            a.swap(col * d + k, pivot * d + k);
            b.swap(col * d + k, pivot * d + k);
        }
        for row in 0..d {
            if row != col {
                let f = a[row * d + col] / a[col * d + col];
                for k in 0..d {
                    a[row * d + k] -= f * a[col * d + k];
                    b[row * d + k] -= f * b[col * d + k];
                }
            }
        }
    }
    for row in 0..d {
        let p = a[row * d + row];
        for k in 0..d {
            b[row * d + k] /= p;
        }
    }
    b
}

#[test]
fn whitened_covariance_is_c_times_inverse_of_c_plus_eps() {
    // n > d: eigendecomposition of the d x d covariance.
    check_whitened_covariance(400, 6, 5);
}

#[test]
fn whitened_covariance_is_right_with_fewer_vectors_than_dimensions() {
    // n < d: the fit goes through the n x n Gram matrix; C has rank n - 1 = 6 of 12.
    check_whitened_covariance(7, 12, 6);
}

#[test]
fn w_is_symmetric_and_its_square_inverts_c_plus_eps() {
    check_w_square(300, 5, 9);
}

#[test]
fn w_from_few_vectors_is_symmetric_positive_and_its_square_inverts_c_plus_eps() {
    check_w_square(5, 9, 10);
}

fn check_whitened_covariance(n: usize, d: usize, seed: u64) {
    let eps = 0.1;
    let x = correlated(n, d, seed);
    let c = covariance(&x, n, d);
    let mut c_eps = c.clone();
    for i in 0..d {
        c_eps[i * d + i] += eps;
    }
    // C and (C + eps I) commute, so C (C + eps I)^-1 = (C + eps I)^-1 C: one linear solve.
    let expected = solve(c_eps, c.clone(), d);
    let zca = zca_fit(&x, n, d, eps).unwrap();
    let y = zca.apply(&x);
    let got = covariance(&y, n, d);
    for k in 0..d * d {
        assert!(
            (got[k] - expected[k]).abs() < 2e-4,
            "entry {k}: {} vs {}",
            got[k],
            expected[k]
        );
    }
    // The eigenvalues span both sides of eps, so the target is far from the identity.
    let trace: f64 = (0..d).map(|i| expected[i * d + i]).sum();
    assert!(trace < d.min(n) as f64 - 0.5, "trace {trace}");
}

fn check_w_square(n: usize, d: usize, seed: u64) {
    let eps = 0.1;
    let x = correlated(n, d, seed);
    let c = covariance(&x, n, d);
    let zca = zca_fit(&x, n, d, eps).unwrap();
    let w: Vec<f64> = zca.w.iter().map(|&v| f64::from(v)).collect();
    for i in 0..d {
        for j in 0..d {
            assert_eq!(zca.w[i * d + j], zca.w[j * d + i]);
        }
    }
    // W^2 (C + eps I) = I, with W = U diag(1/sqrt(lambda + eps)) U^T.
    for i in 0..d {
        for j in 0..d {
            let mut v = 0.0;
            for k in 0..d {
                let w2_ik: f64 = (0..d).map(|m| w[i * d + m] * w[m * d + k]).sum();
                let ce_kj = c[k * d + j] + if k == j { eps } else { 0.0 };
                v += w2_ik * ce_kj;
            }
            let identity = if i == j { 1.0 } else { 0.0 };
            assert!((v - identity).abs() < 1e-4, "({i},{j}): {v}");
        }
    }
    // Positive definite (the principal inverse square root, not another root): x^T W x > 0.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..20 {
        let v: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let q: f64 = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| v[i] * w[i * d + j] * v[j])
            .sum();
        assert!(q > 0.0, "x^T W x = {q}");
    }
    // The fitted mean is the data mean.
    let mean0: f64 = x.chunks_exact(d).map(|r| f64::from(r[0])).sum::<f64>() / n as f64;
    assert!((f64::from(zca.mean[0]) - mean0).abs() < 1e-4);
}

#[test]
fn gcn_matches_the_pylearn2_definition() {
    // Image of 4 values [1, 2, 3, 6]: mean 3, centred [-2, -1, 0, 3], norm sqrt(14).
    let out = gcn(&[1, 2, 3, 6, 5, 5, 5, 5], 4, 55.0);
    let norm = 14f64.sqrt();
    for (got, c) in out[..4].iter().zip([-2.0, -1.0, 0.0, 3.0]) {
        assert!((f64::from(*got) - 55.0 * c / norm).abs() < 1e-4);
    }
    // A constant image has norm 0 < min_divisor: the divisor becomes 1, the result is 0.
    assert_eq!(&out[4..], &[0.0; 4]);
}

#[test]
fn prepared_training_data_is_whitened_at_full_size() {
    // 40 synthetic images, d = 3072: check Cw (C + eps I) = C, with Cw the covariance of the
    // prepared training images and C the covariance of their GCN (both computed here), on
    // random probe vectors p, q: p^T Cw C q + eps p^T Cw q - p^T C q = 0. C has rank 39, so
    // most of the space sits at lambda = 0 and the check covers both regimes.
    let n = 40;
    let data = RawDataset {
        train: synthetic_split(n, 21, 0),
        test: synthetic_split(10, 21, 1),
    };
    // GCN scale 2 instead of 55 puts the eigenvalues of C (total variance 4 over 39
    // directions) around eps = 0.1, where the target C (C + eps I)^-1 is far from a projection;
    // with scale 55 every non-zero eigenvalue dwarfs eps and eps could not be checked.
    let gcn_scale = 2.0;
    let opts = PrepareOptions {
        gcn_scale,
        ..PrepareOptions::default()
    };
    let p = prepare(&data, &opts, None).unwrap();
    let d = IMAGE_BYTES;
    // GCN by hand: per image subtract its mean, scale to L2 norm 2; then centre on the mean.
    let mut xg = vec![0f64; n * d];
    for (i, image) in data.train.images.chunks_exact(d).enumerate() {
        let mean = image.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
        let norm = image
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            .sqrt();
        for j in 0..d {
            xg[i * d + j] = gcn_scale * (f64::from(image[j]) - mean) / norm;
        }
    }
    for j in 0..d {
        let m = (0..n).map(|i| xg[i * d + j]).sum::<f64>() / n as f64;
        (0..n).for_each(|i| xg[i * d + j] -= m);
    }
    let y: Vec<f64> = p.train.images.iter().map(|&v| f64::from(v)).collect();
    let times = |m: &[f64], v: &[f64]| -> Vec<f64> {
        m.chunks_exact(d)
            .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // Gram matrix Y Xc^T (n x n).
    let mut gram = vec![0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            gram[i * n + k] = dot(&y[i * d..(i + 1) * d], &xg[k * d..(k + 1) * d]);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let nf = n as f64;
    for _ in 0..10 {
        let pv: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let qv: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (yp, yq, xp, xq) = (
            times(&y, &pv),
            times(&y, &qv),
            times(&xg, &pv),
            times(&xg, &qv),
        );
        let gram_xq: Vec<f64> = gram.chunks_exact(n).map(|row| dot(row, &xq)).collect();
        let cw_c = dot(&yp, &gram_xq) / (nf * nf);
        let cw = dot(&yp, &yq) / nf;
        let c = dot(&xp, &xq) / nf;
        let scale = (dot(&xp, &xp) * dot(&xq, &xq)).sqrt() / nf;
        let residual = cw_c + 0.1 * cw - c;
        assert!(
            residual.abs() < 1e-3 * scale,
            "residual {residual}, scale {scale}"
        );
    }
}
