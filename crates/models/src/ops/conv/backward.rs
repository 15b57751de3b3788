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
///
/// Each chunk of the batch ([`Geom::chunk`]) is one parallel task ([`Pass::chunk`]) that writes
/// its images' `dx` and returns its own partial `dw` and `db`; the partials are summed in chunk
/// order, so the result does not depend on the scheduling.
pub(super) fn conv_backward<T: WithDType>(
    x: &[T],
    w: &[T],
    dy: &[T],
    relu_output: Option<(&[T], Option<T>)>,
    g: &Geom,
    input_grad: bool,
) -> Vec<T> {
    let pass = Pass {
        w,
        g,
        scale: relu_output.and_then(|(_, scale)| scale),
        input_grad,
        parallelism: g.gemm_parallelism(),
    };
    let relu_output = relu_output.map(|(y, _)| y);
    let (k, o) = (g.k(), g.out_channels);
    let chunk = g.chunk();
    let dx_len = if input_grad { g.batch * g.in_len() } else { 0 };
    let mut out = uninit::<T>(dx_len + o * k + o);
    let (dx, tail) = out.split_at_mut(dx_len);
    let y_chunk = |i: usize| relu_output.and_then(|y| y.chunks(chunk * g.out_len()).nth(i));
    let partials: Vec<(Vec<T>, Vec<T>)> = if input_grad {
        dx.par_chunks_mut(chunk * g.in_len())
            .zip(x.par_chunks(chunk * g.in_len()))
            .zip(dy.par_chunks(chunk * g.out_len()))
            .enumerate()
            .map(|(i, ((dx_chunk, x_chunk), dy_chunk))| {
                pass.chunk(Some(dx_chunk), x_chunk, dy_chunk, y_chunk(i))
            })
            .collect()
    } else {
        x.par_chunks(chunk * g.in_len())
            .zip(dy.par_chunks(chunk * g.out_len()))
            .enumerate()
            .map(|(i, (x_chunk, dy_chunk))| pass.chunk(None, x_chunk, dy_chunk, y_chunk(i)))
            .collect()
    };
    let mut partials = partials.into_iter();
    let (mut dw_t, mut db) = partials.next().expect("at least one chunk");
    for (pw, pb) in partials {
        dw_t.iter_mut().zip(&pw).for_each(|(a, b)| *a += *b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += *b);
    }
    write_weight_and_bias(tail, &dw_t, &db, k, o);
    // SAFETY: `dx` is covered by the chunks, whose every group went through `zeroed`; `tail`
    // (o * k + o elements) was written by `write_weight_and_bias` from dw_t transposed (o * k)
    // and db (o).
    unsafe { assume_init(out) }
}

/// Writes `dw [O, K]` (from its transpose `dw_t [K, O]`) and then `db [O]` into `tail`.
fn write_weight_and_bias<T: Copy>(
    tail: &mut [MaybeUninit<T>],
    dw_t: &[T],
    db: &[T],
    k: usize,
    o: usize,
) {
    let (dw_slots, db_slots) = tail.split_at_mut(o * k);
    for (kk, row) in dw_t.chunks_exact(o).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dw_slots[c * k + kk].write(v);
        }
    }
    for (slot, &v) in db_slots.iter_mut().zip(db) {
        slot.write(v);
    }
}

/// What every chunk of one backward pass shares.
struct Pass<'a, T> {
    w: &'a [T],
    g: &'a Geom,
    /// The fused dropout's `1 / (1 - rate)`, if any.
    scale: Option<T>,
    input_grad: bool,
    parallelism: gemm::Parallelism,
}

/// One chunk's partial gradients and scratch buffers.
struct Buffers<T> {
    /// The weight gradient, accumulated transposed, `[K, O]`: the GEMM then packs the small `dY`
    /// block instead of the column matrix (`K x n`, up to 1.8 MB), which measured 6-16% faster
    /// forward + weight-gradient on the 16x16 layers and sums every element in the same order,
    /// bit for bit (docs/benchmarks.md, weight gradient transposed).
    dw_t: Vec<T>,
    db: Vec<T>,
    /// The column matrix of a group or block, and its gradient.
    cols: Vec<T>,
    dcols: Vec<T>,
    /// The output gradient of a group or block as one GEMM operand, `[O, n]`, ReLU-masked.
    grouped_dy: Vec<T>,
    phases: Vec<T>,
}

impl<T: WithDType> Pass<'_, T> {
    /// The partial `(dW^T [K, O], db [O])` of one chunk of images `x_chunk` with output
    /// gradients `dy_chunk` (and fused-ReLU outputs `y_chunk`), writing its input gradient into
    /// `dx_chunk` if asked: a group of images at a time ([`Pass::group`]), or, where one image's
    /// column matrix would not fit in L2, one image in blocks of output rows
    /// ([`Pass::blocked_image`]).
    fn chunk(
        &self,
        dx_chunk: Option<&mut [MaybeUninit<T>]>,
        x_chunk: &[T],
        dy_chunk: &[T],
        y_chunk: Option<&[T]>,
    ) -> (Vec<T>, Vec<T>) {
        let g = self.g;
        let (k, l, o) = (g.k(), g.l(), g.out_channels);
        let group = g.group();
        let n = group * l;
        let direct = g.pointwise() && group == 1;
        let staged = group > 1 || y_chunk.is_some();
        let blocked = g.block_rows() < g.out_h;
        let mut b = Buffers {
            dw_t: vec![T::zero(); k * o],
            db: vec![T::zero(); o],
            cols: vec![T::zero(); if direct { 0 } else { k * n }],
            dcols: vec![T::zero(); if direct || !self.input_grad { 0 } else { k * n }],
            grouped_dy: vec![T::zero(); if staged || blocked { o * n } else { 0 }],
            phases: Vec::new(),
        };
        let mut y_groups = y_chunk.map(|y| y.chunks(group * g.out_len()));
        let mut dx_groups = dx_chunk.map(|d| d.chunks_mut(group * g.in_len()));
        for (x_group, dy_group) in x_chunk
            .chunks(group * g.in_len())
            .zip(dy_chunk.chunks(group * g.out_len()))
        {
            let images: Vec<&[T]> = x_group.chunks_exact(g.in_len()).collect();
            let y_group = y_groups
                .as_mut()
                .map(|y| y.next().expect("one y group per dy group"));
            let dx_group = dx_groups
                .as_mut()
                .map(|d| d.next().expect("one dx group per x group"));
            if blocked {
                // Blocks imply groups of one image.
                self.blocked_image(images[0], dy_group, y_group, dx_group.map(zeroed), &mut b);
            } else {
                self.group(&images, dy_group, y_group, dx_group, staged, &mut b);
            }
        }
        (b.dw_t, b.db)
    }

    /// One image in blocks of output rows: each block's columns, output gradient and column
    /// gradient stay in L2. `dx_image` (zeroed) receives the input gradient if asked.
    fn blocked_image(
        &self,
        image: &[T],
        dy_image: &[T],
        y_image: Option<&[T]>,
        mut dx_image: Option<&mut [T]>,
        b: &mut Buffers<T>,
    ) {
        let g = self.g;
        let (k, l, o) = (g.k(), g.l(), g.out_channels);
        let block = g.block_rows();
        for r0 in (0..g.out_h).step_by(block) {
            let oys = r0..(r0 + block).min(g.out_h);
            let nb = oys.len() * g.out_w;
            im2col(image, &mut b.cols, nb, g, oys.clone(), &mut b.phases);
            // The block's output gradient, `[O, nb]`, masked as the ReLU asks.
            for (c, d) in b.grouped_dy.chunks_exact_mut(nb).take(o).enumerate() {
                let grad = &dy_image[c * l + r0 * g.out_w..][..nb];
                match y_image {
                    Some(y) => relu_masked(grad, &y[c * l + r0 * g.out_w..][..nb], self.scale, d),
                    None => d.copy_from_slice(grad),
                }
            }
            let dy_block = &b.grouped_dy[..o * nb];
            matmul(
                &mut b.dw_t,
                (k, o, nb),
                Mat::rows(&b.cols, nb),
                Mat::transposed(dy_block, nb),
                true,
                self.parallelism,
            );
            for (d, row) in b.db.iter_mut().zip(dy_block.chunks_exact(nb)) {
                *d += sum(row);
            }
            if let Some(dx_image) = dx_image.as_deref_mut() {
                matmul(
                    &mut b.dcols,
                    (k, nb, o),
                    Mat::transposed(self.w, k),
                    Mat::rows(dy_block, nb),
                    false,
                    self.parallelism,
                );
                col2im(&b.dcols, nb, (dx_image, Target::Any), g, oys, &mut b.phases);
            }
        }
    }

    /// A group of `images` side by side as one GEMM operand: `dW^T += cols dY^T`, `db` the row
    /// sums of `dY`, and, into `dx_group` if asked, `dcols = W^T dY` scattered back by col2im.
    /// `staged`: `dY` is first gathered (and ReLU-masked) into `b.grouped_dy`; otherwise the
    /// image's own gradient is the operand.
    fn group(
        &self,
        images: &[&[T]],
        dy_group: &[T],
        y_group: Option<&[T]>,
        dx_group: Option<&mut [MaybeUninit<T>]>,
        staged: bool,
        b: &mut Buffers<T>,
    ) {
        let g = self.g;
        let (k, l, o) = (g.k(), g.l(), g.out_channels);
        let direct = g.pointwise() && g.group() == 1;
        let n = images.len() * l;
        let cols_ref = columns(images, &mut b.cols, g, &mut b.phases);
        let dy_ref: &[T] = if !staged {
            dy_group
        } else {
            let grads: Vec<&[T]> = dy_group.chunks_exact(g.out_len()).collect();
            match y_group {
                Some(y_group) => {
                    let outputs: Vec<&[T]> = y_group.chunks_exact(g.out_len()).collect();
                    gather_relu_masked(&grads, &outputs, o, l, self.scale, &mut b.grouped_dy);
                }
                None => gather(&grads, o, l, &mut b.grouped_dy),
            }
            &b.grouped_dy[..o * n]
        };
        // dW^T [K, O] += cols [K, n] x dY^T [n, O]
        matmul(
            &mut b.dw_t,
            (k, o, n),
            Mat::rows(cols_ref, n),
            Mat::transposed(dy_ref, n),
            true,
            self.parallelism,
        );
        for (d, row) in b.db.iter_mut().zip(dy_ref.chunks_exact(n)) {
            *d += sum(row);
        }
        if let Some(dx_group) = dx_group {
            let dx_group = zeroed(dx_group);
            // dcols [K, n] = W^T [K, O] x dY [O, n]
            let target: &mut [T] = if direct { dx_group } else { &mut b.dcols };
            matmul(
                target,
                (k, n, o),
                Mat::transposed(self.w, k),
                Mat::rows(dy_ref, n),
                false,
                self.parallelism,
            );
            if !direct {
                for (i, dxb) in dx_group.chunks_exact_mut(g.in_len()).enumerate() {
                    if g.pointwise() {
                        for (r, row) in dxb.chunks_exact_mut(l).enumerate() {
                            row.copy_from_slice(&b.dcols[r * n + i * l..][..l]);
                        }
                    } else {
                        col2im(
                            &b.dcols[i * l..],
                            n,
                            (dxb, Target::Zeros),
                            g,
                            0..g.out_h,
                            &mut b.phases,
                        );
                    }
                }
            }
        }
    }
}
