//! The CPU convolution against its definition, one multiply-add at a time.

use super::*;
use crate::check::lcg_values as values;
use crate::ops::cpu_kernels;

/// The definition, one multiply-add at a time: `(y, dx, dw, db)` for output gradient `dy`.
#[allow(clippy::type_complexity)]
fn direct(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    dy: &[f64],
    g: &Geom,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; g.batch * g.out_len()];
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; b.len()];
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let yi = ((n * g.out_channels + o) * g.out_h + oy) * g.out_w + ox;
                    let mut acc = b[o];
                    db[o] += dy[yi];
                    for c in 0..g.in_channels {
                        for i in 0..g.kernel_h {
                            for j in 0..g.kernel_w {
                                let iy = (oy * g.stride + i) as isize - g.pad as isize;
                                let ix = (ox * g.stride + j) as isize - g.pad as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= g.height as isize
                                    || ix >= g.width as isize
                                {
                                    continue;
                                }
                                let xi = ((n * g.in_channels + c) * g.height + iy as usize)
                                    * g.width
                                    + ix as usize;
                                let wi =
                                    ((o * g.in_channels + c) * g.kernel_h + i) * g.kernel_w + j;
                                acc += w[wi] * x[xi];
                                dx[xi] += w[wi] * dy[yi];
                                dw[wi] += x[xi] * dy[yi];
                            }
                        }
                    }
                    y[yi] = acc;
                }
            }
        }
    }
    (y, dx, dw, db)
}

fn assert_close(what: &str, got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in got.iter().zip(expected).enumerate() {
        assert!((a - e).abs() < 1e-12, "{what}[{i}]: {a} vs {e}");
    }
}

/// Forward (with and without ReLU), backward (all of [dx; dw; db], parameters only, and with
/// the ReLU mask) of random x, w, b, dy (from `seeds`) against [`direct`], under each thread
/// count.
fn check_against_definition(g: &Geom, seeds: [u64; 4], threads: &[usize], label: &str) {
    let x = values(g.batch * g.in_channels * g.height * g.width, seeds[0]);
    let w = values(
        g.out_channels * g.in_channels * g.kernel_h * g.kernel_w,
        seeds[1],
    );
    let b = values(g.out_channels, seeds[2]);
    let dy = values(g.batch * g.out_len(), seeds[3]);
    let (y, dx, dw, db) = direct(&x, &w, &b, &dy, g);
    // Every kernel path this CPU runs; the lock keeps the tests that switch paths from
    // switching it under one another.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let paths = cpu_kernels::supported_cpu_kernels();
    let runs = paths
        .iter()
        .flat_map(|&p| threads.iter().map(move |&t| (p, t)));
    for (path, threads) in runs {
        cpu_kernels::set_cpu_kernels(path).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let case = format!("{label}, {path} kernels, {threads} threads");
        pool.install(|| {
            assert_close(&case, &conv_forward(&x, &w, &b, g, false, None), &y);
            let relu: Vec<f64> = y.iter().map(|v| v.max(0.0)).collect();
            assert_close(&case, &conv_forward(&x, &w, &b, g, true, None), &relu);
            let all: Vec<f64> = dx.iter().chain(&dw).chain(&db).copied().collect();
            assert_close(&case, &conv_backward(&x, &w, &dy, None, g, true), &all);
            let params: Vec<f64> = dw.iter().chain(&db).copied().collect();
            assert_close(&case, &conv_backward(&x, &w, &dy, None, g, false), &params);
            // With a fused ReLU: the gradient only where the output is positive.
            let masked: Vec<f64> = dy
                .iter()
                .zip(&y)
                .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
                .collect();
            let (_, mx, mw, mb) = direct(&x, &w, &b, &masked, g);
            let all: Vec<f64> = mx.iter().chain(&mw).chain(&mb).copied().collect();
            let got = conv_backward(&x, &w, &dy, Some((&relu, None)), g, true);
            assert_close(&format!("{case} relu"), &got, &all);
        });
    }
    cpu_kernels::set_cpu_kernels(paths[0]).unwrap();
}

#[test]
fn products_in_blocks_of_output_rows_equal_the_definition() {
    // 52 channels at 24x24 (3x3: 468 x 576 columns, 5x5: 1300 x 576) exceed
    // BLOCK_ELEMENTS, so every image goes in blocks of 11 output rows (the last one
    // shorter), forward and backward, with and without the ReLU mask.
    for (kernel, pad) in [(3, 1), (5, 2)] {
        let (batch, c, h, wd, o) = (3, 52, 24, 24, 4);
        let xl = Layout::contiguous((batch, c, h, wd));
        let wl = Layout::contiguous((o, c, kernel, kernel));
        let g = Geom::new(&xl, &wl, 1, pad).unwrap();
        assert!(g.block_rows() < g.out_h && g.out_h % g.block_rows() != 0);
        let case = format!("k{kernel} blocked");
        check_against_definition(&g, [5, 6, 7, 8], &[1, 2], &case);
    }
}

#[test]
fn grouped_and_single_image_products_equal_the_definition() {
    // 9x8 images with 7 in the batch: groups of several images (6x6 ... 9x8 outputs), a
    // last group smaller than the others (1 thread: 7 = 4 + 3 at 72 columns), single-image
    // chunks (7 threads), 1x1 convolutions (gathered, not im2col'd), stride 2 and padding.
    for (kernel, stride, pad) in [
        (3, 1, 1),
        (3, 2, 1),
        (5, 1, 2),
        (1, 1, 0),
        (1, 2, 0),
        (3, 1, 0),
        (5, 2, 2),
        (3, 3, 1),
    ] {
        // Odd and even widths: the stride-2 pair loops end on a half pair or a whole one; the
        // wider ones give stride-2 rows of 7-17 outputs (the fixed 4- and 8-value blocks, with
        // and without an overlapping last block).
        for wd in [8, 7, 15, 16, 17, 33, 34] {
            let (batch, c, h, o) = (7, 3, 9, 5);
            let xl = Layout::contiguous((batch, c, h, wd));
            let wl = Layout::contiguous((o, c, kernel, kernel));
            let g = Geom::new(&xl, &wl, stride, pad).unwrap();
            let case = format!("k{kernel} s{stride} p{pad} w{wd}");
            check_against_definition(&g, [1, 2, 3, 4], &[1, 2, 7], &case);
        }
    }
}
