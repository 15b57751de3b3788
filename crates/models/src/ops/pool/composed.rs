//! The max-pool composed from candle ops that have gradients, for devices and dtypes without
//! our own kernel (and as a reference for the tests).

use candle_core::{Result, Tensor};

/// Rows (dim 2) or columns (dim 3) `start, start + stride, ...` (`count` of them) of `x`.
fn strided_slice(
    x: &Tensor,
    dim: usize,
    start: usize,
    stride: usize,
    count: usize,
) -> Result<Tensor> {
    let taken = x.narrow(dim, start, stride * count)?;
    let mut dims = taken.dims().to_vec();
    dims[dim] = count;
    dims.insert(dim + 1, stride);
    taken.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

/// The same pooling from candle ops that have gradients (`narrow`, `reshape`, `maximum`), for
/// devices without the custom kernel. Padding is -inf. On exact ties candle's `maximum` backward
/// may split or duplicate the gradient differently from PyTorch.
pub(super) fn max_pool2d_composed(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (out_h, out_w) = (
        (h + 2 * pad - kernel) / stride + 1,
        (w + 2 * pad - kernel) / stride + 1,
    );
    // Pad so that every strided slice of length stride*out fits: (kernel-1) + stride*out.
    let (total_h, total_w) = (kernel - 1 + stride * out_h, kernel - 1 + stride * out_w);
    let fill = |rows: usize, cols: usize| {
        Tensor::full(f64::NEG_INFINITY, (n, c, rows, cols), x.device())?.to_dtype(x.dtype())
    };
    let mut padded = x.clone();
    let (bottom, right) = (
        total_h.saturating_sub(h + pad),
        total_w.saturating_sub(w + pad),
    );
    let mut cols_parts = Vec::new();
    if pad > 0 {
        cols_parts.push(fill(h, pad)?);
    }
    cols_parts.push(padded.clone());
    if right > 0 {
        cols_parts.push(fill(h, right)?);
    }
    padded = Tensor::cat(&cols_parts, 3)?;
    let width = padded.dim(3)?;
    let mut row_parts = Vec::new();
    if pad > 0 {
        row_parts.push(fill(pad, width)?);
    }
    row_parts.push(padded);
    if bottom > 0 {
        row_parts.push(fill(bottom, width)?);
    }
    let padded = Tensor::cat(&row_parts, 2)?;
    let mut result: Option<Tensor> = None;
    for i in 0..kernel {
        let rows = strided_slice(&padded, 2, i, stride, out_h)?;
        for j in 0..kernel {
            let window = strided_slice(&rows, 3, j, stride, out_w)?;
            result = Some(match result {
                None => window,
                Some(r) => r.maximum(&window)?,
            });
        }
    }
    result.ok_or_else(|| candle_core::Error::Msg("max_pool2d: empty kernel".into()))
}
