//! The geometry of one convolution call and how the CPU kernels split it: chunks per thread,
//! images per GEMM, blocks of output rows, and the output columns that read inside the image.

use candle_core::{bail, Layout, Result};

/// Column count that [`Geom::group`] aims for in every GEMM.
pub(super) const GROUP_COLUMNS: usize = 256;

/// Largest column matrix (elements) done in one piece; larger ones go in blocks of rows
/// ([`Geom::block_rows`]). 2^18 f32 are 1 MB, the L2 of the machine measured.
pub(super) const BLOCK_ELEMENTS: usize = 1 << 18;

/// Geometry of one convolution call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geom {
    pub(super) batch: usize,
    pub(super) in_channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) out_channels: usize,
    pub(super) kernel_h: usize,
    pub(super) kernel_w: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
}

impl Geom {
    pub(super) fn new(x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<Self> {
        let (batch, in_channels, height, width) = x.shape().dims4()?;
        let (out_channels, w_in, kernel_h, kernel_w) = w.shape().dims4()?;
        if w_in != in_channels {
            bail!("conv2d: input has {in_channels} channels, weight expects {w_in}")
        }
        if stride == 0 || height + 2 * pad < kernel_h || width + 2 * pad < kernel_w {
            bail!(
                "conv2d: kernel {kernel_h}x{kernel_w} stride {stride} pad {pad} does not fit \
                 input {height}x{width}"
            )
        }
        Ok(Self {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            pad,
            out_h: (height + 2 * pad - kernel_h) / stride + 1,
            out_w: (width + 2 * pad - kernel_w) / stride + 1,
        })
    }

    /// Rows of the column matrix: `C * kh * kw`.
    pub(super) fn k(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Columns of the column matrix: output positions `Ho * Wo`.
    pub(super) fn l(&self) -> usize {
        self.out_h * self.out_w
    }

    pub(super) fn in_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    pub(super) fn out_len(&self) -> usize {
        self.out_channels * self.l()
    }

    /// A 1x1, stride-1, unpadded convolution: the image itself is the column matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.pad == 0
    }

    /// Images per parallel chunk: one chunk per rayon thread.
    pub(super) fn chunk(&self) -> usize {
        self.batch.div_ceil(rayon::current_num_threads()).max(1)
    }

    /// Images per GEMM: several side by side when one image has few output positions, so that
    /// the products are wide enough to run the GEMM at full speed (a 6x6 output alone gives a
    /// 36-column product, at about two thirds of the speed of a 256-column one).
    pub(super) fn group(&self) -> usize {
        GROUP_COLUMNS.div_ceil(self.l()).clamp(1, self.chunk())
    }

    /// Output rows per column block of a one-image GEMM. An image whose column matrix would
    /// not fit in L2 (e.g. 96 channels at 32x32: 864 x 1024 floats, 3.5 MB) is done in blocks
    /// of about [`GROUP_COLUMNS`] columns, each block's columns written, multiplied and (in the
    /// backward pass) scattered back while they are in L2 (all output rows: no blocks).
    pub(super) fn block_rows(&self) -> usize {
        let fits = self.k() * self.l() <= BLOCK_ELEMENTS;
        if self.group() > 1 || self.pointwise() || self.l() < 2 * GROUP_COLUMNS || fits {
            self.out_h
        } else {
            GROUP_COLUMNS.div_ceil(self.out_w).min(self.out_h)
        }
    }
}

#[cfg(test)]
impl Geom {
    /// One image of `channels` planes `h x w` under a square `k x k` kernel (one output
    /// channel), for the tests of the rearrangements.
    pub(super) fn square(
        channels: usize,
        (h, w): (usize, usize),
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Geom {
            batch: 1,
            in_channels: channels,
            height: h,
            width: w,
            out_channels: 1,
            kernel_h: k,
            kernel_w: k,
            stride,
            pad,
            out_h: (h + 2 * pad - k) / stride + 1,
            out_w: (w + 2 * pad - k) / stride + 1,
        }
    }
}
