//! The CPU forward pass of the convolution: GEMM, bias, ReLU and an optional dropout mask per
//! output row in cache, parallel over chunks of the batch (see the `conv` module documentation).

use std::mem::MaybeUninit;

use candle_core::WithDType;
use rayon::prelude::*;

use super::gemm::{matmul, matmul_ld_uninit, Mat};
use super::geom::Geom;
use super::im2col::{columns, im2col};
use crate::ops::buffers::{assume_init, assume_init_mut, uninit, write_slice};
use crate::ops::dropout::mask::{Mask, WideApply};

/// `v = relu?(v + bias)` over one output row.
fn bias_act<T: WithDType>(row: &mut [T], bias: T, relu: bool) {
    if relu {
        // An unconditional select (not a conditional store) so that it vectorises.
        for v in row.iter_mut() {
            let s = *v + bias;
            *v = if s > T::zero() { s } else { T::zero() };
        }
    } else {
        for v in row.iter_mut() {
            *v += bias;
        }
    }
}

/// The convolution's output, `relu`'d if asked, then (if `mask`) with a dropout mask applied
/// to each output row while it is in cache (mask index: the row-major output index).
pub(super) fn conv_forward<T: WideApply>(
    x: &[T],
    w: &[T],
    b: &[T],
    g: &Geom,
    relu: bool,
    mask: Option<Mask>,
) -> Vec<T> {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let (chunk, group) = (g.chunk(), g.group());
    let parallelism = g.gemm_parallelism();
    let mut y = uninit::<T>(g.batch * g.out_len());
    y.par_chunks_mut(chunk * g.out_len())
        .zip(x.par_chunks(chunk * g.in_len()))
        .enumerate()
        .for_each(|(chunk_index, (y_chunk, x_chunk))| {
            // Bias, activation and dropout of output row `c` of image `image`.
            let finish = |row: &mut [T], image: usize, c: usize| {
                bias_act(row, b[c], relu);
                if let Some(mask) = &mask {
                    mask.apply_in_place(((image * o + c) * l) as u64, row);
                }
            };
            let n = group * l;
            let mut cols = if g.pointwise() && group == 1 {
                Vec::new()
            } else {
                vec![T::zero(); k * n]
            };
            let mut grouped_y = vec![T::zero(); if group > 1 { o * n } else { 0 }];
            let mut phases = Vec::new();
            for (group_index, (y_group, x_group)) in y_chunk
                .chunks_mut(group * g.out_len())
                .zip(x_chunk.chunks(group * g.in_len()))
                .enumerate()
            {
                let first = chunk_index * chunk + group_index * group;
                let images: Vec<&[T]> = x_group.chunks_exact(g.in_len()).collect();
                if images.len() == 1 {
                    conv_image(
                        images[0],
                        w,
                        g,
                        y_group,
                        &mut cols,
                        &mut phases,
                        parallelism,
                    );
                    // SAFETY: `conv_image` wrote all `o x l` outputs of the image.
                    let y_group = unsafe { assume_init_mut(y_group) };
                    for (c, row) in y_group.chunks_exact_mut(l).enumerate() {
                        finish(row, first, c);
                    }
                    continue;
                }
                let n = images.len() * l;
                let cols_ref = columns(&images, &mut cols, g, &mut phases);
                // Images side by side: scatter every image's block of columns back.
                matmul(
                    &mut grouped_y,
                    (o, n, k),
                    Mat::rows(w, k),
                    Mat::rows(cols_ref, n),
                    false,
                    parallelism,
                );
                for (i, yb) in y_group.chunks_exact_mut(g.out_len()).enumerate() {
                    for (c, row) in yb.chunks_exact_mut(l).enumerate() {
                        let row = write_slice(row, &grouped_y[c * n + i * l..][..l]);
                        finish(row, first + i, c);
                    }
                }
            }
        });
    // SAFETY: the chunks cover `y`, and every group of every chunk was written whole above.
    unsafe { assume_init(y) }
}

/// `y [O, Ho * Wo] = W x cols(image)` for one image, over memory not yet initialised (every
/// element is written): in blocks of output rows, each written straight into NCHW, when the
/// image's column matrix would not fit in L2 ([`Geom::block_rows`]). `cols` holds at least
/// `K x` the columns of one block (of the whole image when there are no blocks).
fn conv_image<T: WithDType>(
    image: &[T],
    w: &[T],
    g: &Geom,
    y: &mut [MaybeUninit<T>],
    cols: &mut [T],
    phases: &mut Vec<T>,
    parallelism: gemm::Parallelism,
) {
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    if g.pointwise() {
        // The image itself is the column matrix.
        matmul_ld_uninit(
            y,
            l,
            (o, l, k),
            Mat::rows(w, k),
            Mat::rows(image, l),
            parallelism,
        );
        return;
    }
    for r0 in (0..g.out_h).step_by(g.block_rows()) {
        let oys = r0..(r0 + g.block_rows()).min(g.out_h);
        let nb = oys.len() * g.out_w;
        im2col(image, cols, nb, g, oys, phases);
        matmul_ld_uninit(
            &mut y[r0 * g.out_w..],
            l,
            (o, nb, k),
            Mat::rows(w, k),
            Mat::rows(cols, nb),
            parallelism,
        );
    }
}
