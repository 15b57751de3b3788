//! The dropout mask itself: the generator key of `(seed, stream)`, each element's 32 bits, and
//! the mask applied to values, one element at a time or in the vector loops of [`WideApply`]
//! (AVX2, `avx2.rs`).

use allconv_splitmix::{mix, output};

/// The generator start of `(seed, stream)`. `mix` is a bijection, so for a fixed seed distinct
/// streams get distinct keys, and vice versa.
#[inline]
pub(super) fn key(seed: u64, stream: u64) -> u64 {
    mix(mix(seed) ^ stream)
}

/// The high half of output `index` of the generator started at `key`.
#[inline]
fn bits(key: u64, index: u64) -> u32 {
    (output(key, index) >> 32) as u32
}

/// The 32 random bits that decide whether element `index` of dropout `(seed, stream)` is kept
/// (kept iff `bits >= round(rate * 2^32)`). The CUDA kernel computes the same integers.
pub fn dropout_bits(seed: u64, stream: u64, index: u64) -> u32 {
    bits(key(seed, stream), index)
}

/// A [`super::Dropout`] with its generator key computed, to mask parts of a tensor in place (the
/// fused convolution + ReLU + dropout masks each output row while it is in cache).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mask {
    pub(super) key: u64,
    pub(super) threshold: u64,
    pub(super) scale: f64,
}

impl Mask {
    /// Masks `v`, elements `base..base + v.len()` of the tensor (row-major indices), in place:
    /// bit for bit what [`super::Dropout`]'s op writes for those elements.
    pub(crate) fn apply_in_place<T: WideApply>(&self, base: u64, v: &mut [T]) {
        // The vector loop reads and writes separate slices, so each block is copied to the
        // stack first (a block in L1 costs far less than the hash).
        const BLOCK: usize = 256;
        let scale = T::from_f64(self.scale);
        let mut block = [T::zero(); BLOCK];
        for (b, chunk) in v.chunks_mut(BLOCK).enumerate() {
            let x = &mut block[..chunk.len()];
            x.copy_from_slice(chunk);
            self.apply(scale, base + (b * BLOCK) as u64, x, chunk);
        }
    }

    /// `y` = `x` masked, elements `base..base + x.len()` of the tensor, kept ones times `scale`
    /// (this mask's scale in `T`): the vector loop where it runs, then the scalar loop for the
    /// rest.
    pub(super) fn apply<T: WideApply>(&self, scale: T, base: u64, x: &[T], y: &mut [T]) {
        let done = T::apply_wide(self.key, self.threshold, scale, base, x, y);
        apply_scalar(
            self.key,
            self.threshold,
            scale,
            base + done as u64,
            &x[done..],
            &mut y[done..],
        );
    }
}

/// The mask applied one element at a time: `y[j] = x[j] * scale` if element `base + j` is kept,
/// else 0.
fn apply_scalar<T: candle_core::WithDType>(
    key: u64,
    threshold: u64,
    scale: T,
    base: u64,
    x: &[T],
    y: &mut [T],
) {
    for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
        // A select, not a branch: the branch would be mispredicted half the time.
        let keep = u64::from(bits(key, base + j as u64)) >= threshold;
        *y = if keep { x * scale } else { T::zero() };
    }
}

/// A dtype with a vectorised dropout loop on some CPUs.
pub(crate) trait WideApply: candle_core::WithDType {
    /// Applies the mask to a prefix of `x` (elements `base..`), bit-identical to
    /// [`apply_scalar`], and returns the prefix's length (0 where no vector loop runs).
    fn apply_wide(
        key: u64,
        threshold: u64,
        scale: Self,
        base: u64,
        x: &[Self],
        y: &mut [Self],
    ) -> usize;
}

/// Whether the AVX2 loops run: on the AVX2 and AVX-512 paths of a CPU with AVX2; the portable
/// path keeps to the scalar loop.
#[cfg(target_arch = "x86_64")]
fn avx2_runs() -> bool {
    crate::ops::cpu_kernels::cpu_kernels() != crate::ops::cpu_kernels::CpuKernels::Portable
        && std::arch::is_x86_feature_detected!("avx2")
}

impl WideApply for f32 {
    fn apply_wide(
        key: u64,
        threshold: u64,
        scale: f32,
        base: u64,
        x: &[f32],
        y: &mut [f32],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        if avx2_runs() {
            // SAFETY: the CPU supports AVX2 (`avx2_runs`).
            return unsafe { super::avx2::apply_f32(key, threshold, scale, base, x, y) };
        }
        let _ = (key, threshold, scale, base, x, y);
        0
    }
}

impl WideApply for f64 {
    fn apply_wide(
        key: u64,
        threshold: u64,
        scale: f64,
        base: u64,
        x: &[f64],
        y: &mut [f64],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        if avx2_runs() {
            // SAFETY: the CPU supports AVX2 (`avx2_runs`).
            return unsafe { super::avx2::apply_f64(key, threshold, scale, base, x, y) };
        }
        let _ = (key, threshold, scale, base, x, y);
        0
    }
}
