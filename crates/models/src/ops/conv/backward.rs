//! The CPU backward pass of the convolution: `[dx; dw; db]` from one walk over the column
//! matrices, parallel over chunks of the batch (see the `conv` module documentation).

use std::mem::MaybeUninit;

use candle_core::WithDType;
use rayon::prelude::*;

use super::gemm::{matmul, Mat};
use super::geom::Geom;
use super::im2col::{col2im, columns, gather, im2col, Target};
use super::relu::{gather_relu_masked, relu_masked};
use crate::ops::buffers::{assume_init, uninit, zeroed};

/// Sum with eight independent accumulators, so the adds pipeline (and vectorise) instead of
/// waiting on one another.
fn sum<T: WithDType>(values: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |acc, &v| acc + v);
    lanes.iter().fold(tail, |acc, &v| acc + v)
}

/// Gradients of the convolution, concatenated: `[dx (only if input_grad); dw; db]`. With
/// `relu_output` (the output of a fused ReLU, or of a fused ReLU + dropout), `dy` counts only
/// where that output is positive, times `scale` if given (the dropout's `1 / (1 - rate)`).
pub(super) fn conv_backward<T: WithDType>(
    x: &[T],
    w: &[T],
    dy: &[T],
    relu_output: Option<(&[T], Option<T>)>,
    g: &Geom,
    input_grad: bool,
) -> Vec<T> {
    let scale = relu_output.and_then(|(_, scale)| scale);
    let relu_output = relu_output.map(|(y, _)| y);
    let (k, l, o) = (g.k(), g.l(), g.out_channels);
    let (chunk, group) = (g.chunk(), g.group());
    let parallelism = g.gemm_parallelism();
    let dx_len = if input_grad { g.batch * g.in_len() } else { 0 };
    let mut out = uninit::<T>(dx_len + o * k + o);
    let (dx, tail) = out.split_at_mut(dx_len);
    let work = |dx_chunk: Option<&mut [MaybeUninit<T>]>,
                x_chunk: &[T],
                dy_chunk: &[T],
                y_chunk: Option<&[T]>| {
        let n = group * l;
        // The weight gradient is accumulated transposed, `[K, O]`: the GEMM then packs the small
        // `dY` block instead of the column matrix (`K x n`, up to 1.8 MB), which measured 6-16%
        // faster forward + weight-gradient on the 16x16 layers and sums every element in the
        // same order, bit for bit (docs/benchmarks.md, weight gradient transposed).
        let mut dw_t = vec![T::zero(); k * o];
        let mut db = vec![T::zero(); o];
        let direct = g.pointwise() && group == 1;
        let mut cols = vec![T::zero(); if direct { 0 } else { k * n }];
        let mut dcols = vec![T::zero(); if direct || !input_grad { 0 } else { k * n }];
        let staged = group > 1 || y_chunk.is_some();
        let block = g.block_rows();
        let blocked = block < g.out_h;
        let mut grouped_dy = vec![T::zero(); if staged || blocked { o * n } else { 0 }];
        let mut phases = Vec::new();
        let mut y_groups = y_chunk.map(|y| y.chunks(group * g.out_len()));
        let mut dx_groups = dx_chunk.map(|d| d.chunks_mut(group * g.in_len()));
        for (x_group, dy_group) in x_chunk
            .chunks(group * g.in_len())
            .zip(dy_chunk.chunks(group * g.out_len()))
        {
            let images: Vec<&[T]> = x_group.chunks_exact(g.in_len()).collect();
            let count = images.len();
            if blocked {
                // One image (blocks imply groups of one) in blocks of output rows: each block's
                // columns, output gradient and column gradient stay in L2.
                let y_image = y_groups
                    .as_mut()
                    .map(|y| y.next().expect("one y group per dy group"));
                let mut dx_image = dx_groups
                    .as_mut()
                    .map(|d| zeroed(d.next().expect("one dx group per x group")));
                for r0 in (0..g.out_h).step_by(block) {
                    let oys = r0..(r0 + block).min(g.out_h);
                    let nb = oys.len() * g.out_w;
                    im2col(images[0], &mut cols, nb, g, oys.clone(), &mut phases);
                    // The block's output gradient, `[O, nb]`, masked as the ReLU asks.
                    for (c, d) in grouped_dy.chunks_exact_mut(nb).take(o).enumerate() {
                        let grad = &dy_group[c * l + r0 * g.out_w..][..nb];
                        match y_image {
                            Some(y) => {
                                relu_masked(grad, &y[c * l + r0 * g.out_w..][..nb], scale, d)
                            }
                            None => d.copy_from_slice(grad),
                        }
                    }
                    let dy_block = &grouped_dy[..o * nb];
                    matmul(
                        &mut dw_t,
                        (k, o, nb),
                        Mat::rows(&cols, nb),
                        Mat::transposed(dy_block, nb),
                        true,
                        parallelism,
                    );
                    for (d, row) in db.iter_mut().zip(dy_block.chunks_exact(nb)) {
                        *d += sum(row);
                    }
                    if let Some(dx_image) = dx_image.as_deref_mut() {
                        matmul(
                            &mut dcols,
                            (k, nb, o),
                            Mat::transposed(w, k),
                            Mat::rows(dy_block, nb),
                            false,
                            parallelism,
                        );
                        col2im(&dcols, nb, (dx_image, Target::Any), g, oys, &mut phases);
                    }
                }
                continue;
            }
            let n = count * l;
            let cols_ref = columns(&images, &mut cols, g, &mut phases);
            let y_group = y_groups
                .as_mut()
                .map(|y| y.next().expect("one y group per dy group"));
            let dy_ref: &[T] = if !staged {
                dy_group
            } else {
                let grads: Vec<&[T]> = dy_group.chunks_exact(g.out_len()).collect();
                match y_group {
                    Some(y_group) => {
                        let outputs: Vec<&[T]> = y_group.chunks_exact(g.out_len()).collect();
                        gather_relu_masked(&grads, &outputs, o, l, scale, &mut grouped_dy);
                    }
                    None => gather(&grads, o, l, &mut grouped_dy),
                }
                &grouped_dy[..o * n]
            };
            // dW^T [K, O] += cols [K, n] x dY^T [n, O]
            matmul(
                &mut dw_t,
                (k, o, n),
                Mat::rows(cols_ref, n),
                Mat::transposed(dy_ref, n),
                true,
                parallelism,
            );
            for (d, row) in db.iter_mut().zip(dy_ref.chunks_exact(n)) {
                *d += sum(row);
            }
            if let Some(groups) = dx_groups.as_mut() {
                let dx_group = zeroed(groups.next().expect("one dx group per x group"));
                // dcols [K, n] = W^T [K, O] x dY [O, n]
                let target: &mut [T] = if direct { dx_group } else { &mut dcols };
                matmul(
                    target,
                    (k, n, o),
                    Mat::transposed(w, k),
                    Mat::rows(dy_ref, n),
                    false,
                    parallelism,
                );
                if !direct {
                    for (i, dxb) in dx_group.chunks_exact_mut(g.in_len()).enumerate() {
                        if g.pointwise() {
                            for (r, row) in dxb.chunks_exact_mut(l).enumerate() {
                                row.copy_from_slice(&dcols[r * n + i * l..][..l]);
                            }
                        } else {
                            col2im(
                                &dcols[i * l..],
                                n,
                                (dxb, Target::Zeros),
                                g,
                                0..g.out_h,
                                &mut phases,
                            );
                        }
                    }
                }
            }
        }
        (dw_t, db)
    };
    let y_chunk = |i: usize| relu_output.and_then(|y| y.chunks(chunk * g.out_len()).nth(i));
    let partials: Vec<(Vec<T>, Vec<T>)> = if input_grad {
        dx.par_chunks_mut(chunk * g.in_len())
            .zip(x.par_chunks(chunk * g.in_len()))
            .zip(dy.par_chunks(chunk * g.out_len()))
            .enumerate()
            .map(|(i, ((dx_chunk, x_chunk), dy_chunk))| {
                work(Some(dx_chunk), x_chunk, dy_chunk, y_chunk(i))
            })
            .collect()
    } else {
        x.par_chunks(chunk * g.in_len())
            .zip(dy.par_chunks(chunk * g.out_len()))
            .enumerate()
            .map(|(i, (x_chunk, dy_chunk))| work(None, x_chunk, dy_chunk, y_chunk(i)))
            .collect()
    };
    let mut partials = partials.into_iter();
    let (mut dw_t, mut db) = partials.next().expect("at least one chunk");
    for (pw, pb) in partials {
        dw_t.iter_mut().zip(&pw).for_each(|(a, b)| *a += *b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += *b);
    }
    let (dw_slots, db_slots) = tail.split_at_mut(o * k);
    for (kk, row) in dw_t.chunks_exact(o).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dw_slots[c * k + kk].write(v);
        }
    }
    for (slot, &v) in db_slots.iter_mut().zip(&db) {
        slot.write(v);
    }
    // SAFETY: `dx` is covered by the chunks, whose every group went through `zeroed`; `tail`
    // (o * k + o elements) was written just above from dw_t transposed (o * k) and db (o).
    unsafe { assume_init(out) }
}
