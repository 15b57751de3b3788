//! Inverted dropout whose mask is a pure function of `(seed, stream, element index)`, computed
//! the same way on the CPU and on the GPU, so a run draws the same masks on every device and a
//! resumed run draws the same masks as an uninterrupted one.
//!
//! Why a counter-based hash rather than a sequential RNG: every element's bit can be computed
//! independently (one GPU thread or one CPU chunk each, no state to hand around), and the
//! backward pass regenerates the mask from the seed instead of storing it.
//!
//! The hash is SplitMix64 (Steele, Lea and Flood 2014, as in Java's `SplittableRandom`; the one
//! copy is allconv-splitmix): `key = mix(mix(seed) ^ stream)`, and element `i` draws the high 32
//! bits of `mix(key + (i + 1) * 0x9E3779B97F4A7C15)`, i.e. of the `(i+1)`-th output of a
//! SplitMix64 generator started at `key`. The element is kept iff those bits are `>= round(rate * 2^32)`,
//! so it is dropped with probability `rate` (to within 2^-33).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffers::{contiguous, float_storage, own_kernel_runs, Kernels};

use allconv_splitmix::{mix, output};

/// The generator start of `(seed, stream)`. `mix` is a bijection, so for a fixed seed distinct
/// streams get distinct keys, and vice versa.
#[inline]
fn key(seed: u64, stream: u64) -> u64 {
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

/// Inverted dropout as a candle op: `x * keep / (1 - rate)` with `keep` from [`dropout_bits`]
/// of each element's row-major index. Its gradient is the same op applied to the output
/// gradient (the mask is regenerated, never stored). f32 and f64, on the CPU and (feature
/// `cuda`) on CUDA; see [`crate::dropout`] for the function that also covers other dtypes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of dropping an element, in `[0, 1)`.
    pub rate: f64,
    /// Seed of the mask (e.g. one per training step).
    pub seed: u64,
    /// Stream of the mask (e.g. one per dropout layer).
    pub stream: u64,
}

impl Dropout {
    /// The op, after checking that `rate` is in `[0, 1)`.
    pub fn new(rate: f64, seed: u64, stream: u64) -> Result<Self> {
        let op = Self { rate, seed, stream };
        op.check()?;
        Ok(op)
    }

    fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.rate) {
            bail!(
                "dropout: rate must be in [0, 1), got {} (stream {})",
                self.rate,
                self.stream
            )
        }
        Ok(())
    }

    /// Elements whose [`dropout_bits`] are below this are dropped: `round(rate * 2^32)`.
    pub fn threshold(&self) -> u64 {
        (self.rate * 4_294_967_296.0).round() as u64
    }

    /// The factor applied to kept elements, `1 / (1 - rate)` (rounded to the dtype).
    pub fn scale(&self) -> f64 {
        1.0 / (1.0 - self.rate)
    }

    /// Whether element `index` is kept.
    pub fn keeps(&self, index: u64) -> bool {
        u64::from(dropout_bits(self.seed, self.stream, index)) >= self.threshold()
    }

    /// `x` with the mask applied: `x * scale` where kept, 0 where dropped.
    fn apply<T: WideApply>(&self, x: &[T]) -> Vec<T> {
        let (key, threshold, scale) = (key(self.seed, self.stream), self.threshold(), self.scale());
        let scale = T::from_f64(scale);
        const CHUNK: usize = 1 << 15;
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (y, x))| {
                let base = (c * CHUNK) as u64;
                let done = T::apply_wide(key, threshold, scale, base, x, y);
                apply_scalar(
                    key,
                    threshold,
                    scale,
                    base + done as u64,
                    &x[done..],
                    &mut y[done..],
                );
            });
        y
    }
}

/// A [`Dropout`] with its generator key computed, to mask parts of a tensor in place (the
/// fused convolution + ReLU + dropout masks each output row while it is in cache).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mask {
    key: u64,
    threshold: u64,
    scale: f64,
}

impl Dropout {
    /// The mask of this dropout, ready to apply to parts of a tensor.
    pub(crate) fn mask(&self) -> Mask {
        Mask {
            key: key(self.seed, self.stream),
            threshold: self.threshold(),
            scale: self.scale(),
        }
    }
}

impl Mask {
    /// Masks `v`, elements `base..base + v.len()` of the tensor (row-major indices), in place:
    /// bit for bit what [`Dropout`]'s op writes for those elements.
    pub(crate) fn apply_in_place<T: WideApply>(&self, base: u64, v: &mut [T]) {
        // The vector loop reads and writes separate slices, so each block is copied to the
        // stack first (a block in L1 costs far less than the hash).
        const BLOCK: usize = 256;
        let scale = T::from_f64(self.scale);
        let mut block = [T::zero(); BLOCK];
        for (b, chunk) in v.chunks_mut(BLOCK).enumerate() {
            let x = &mut block[..chunk.len()];
            x.copy_from_slice(chunk);
            let start = base + (b * BLOCK) as u64;
            let done = T::apply_wide(self.key, self.threshold, scale, start, x, chunk);
            apply_scalar(
                self.key,
                self.threshold,
                scale,
                start + done as u64,
                &x[done..],
                &mut chunk[done..],
            );
        }
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
        if super::cpu_kernels::chosen() != super::cpu_kernels::CpuKernels::Portable
            && std::arch::is_x86_feature_detected!("avx2")
        {
            // SAFETY: the CPU supports AVX2 (checked just above); the portable path keeps
            // to the scalar loop.
            return unsafe { avx2::apply_f32(key, threshold, scale, base, x, y) };
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
        if super::cpu_kernels::chosen() != super::cpu_kernels::CpuKernels::Portable
            && std::arch::is_x86_feature_detected!("avx2")
        {
            // SAFETY: the CPU supports AVX2 (checked just above); the portable path keeps
            // to the scalar loop.
            return unsafe { avx2::apply_f64(key, threshold, scale, base, x, y) };
        }
        let _ = (key, threshold, scale, base, x, y);
        0
    }
}

/// The hash on 4 u64 lanes with AVX2 intrinsics. Every lane computes exactly the integers of
/// [`bits`] (wrapping adds and multiplies, logical shifts). Written by hand because LLVM's own
/// vectorisation of the scalar loop was no faster than the scalar loop; AVX-512's 64-bit
/// multiply would be faster still but its intrinsics need Rust 1.89 (MSRV is 1.85).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use allconv_splitmix::{advance, GAMMA, MIX_MULTIPLIERS};
    use std::arch::x86_64::*;

    /// `z * c mod 2^64` per lane from three 32x32->64 products (`hi(z) * hi(c)` only affects
    /// bits above 64): `lo(z) lo(c) + ((hi(z) lo(c) + lo(z) hi(c)) << 32)`. `c_lo`, `c_hi`:
    /// the low and high halves of `c`, each in the low half of every lane.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn mul(z: __m256i, c_lo: __m256i, c_hi: __m256i) -> __m256i {
        let low = _mm256_mul_epu32(z, c_lo);
        let cross = _mm256_add_epi64(
            _mm256_mul_epu32(_mm256_srli_epi64::<32>(z), c_lo),
            _mm256_mul_epu32(z, c_hi),
        );
        _mm256_add_epi64(low, _mm256_slli_epi64::<32>(cross))
    }

    /// Constants of the hash, broadcast once per call.
    struct Hash {
        m1: (__m256i, __m256i),
        m2: (__m256i, __m256i),
        threshold: __m256i,
    }

    impl Hash {
        /// # Safety
        /// The CPU must support AVX2.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn new(threshold: u64) -> Self {
            let halves = |c: u64| {
                (
                    _mm256_set1_epi64x((c & 0xFFFF_FFFF) as i64),
                    _mm256_set1_epi64x((c >> 32) as i64),
                )
            };
            Self {
                m1: halves(MIX_MULTIPLIERS[0]),
                m2: halves(MIX_MULTIPLIERS[1]),
                threshold: _mm256_set1_epi64x(threshold as i64),
            }
        }

        /// All-ones in the lanes whose element is dropped (`bits < threshold`), given the
        /// generator states. Both sides of the compare are below 2^33, so the signed compare
        /// (AVX2 has no unsigned one) is exact.
        ///
        /// # Safety
        /// The CPU must support AVX2.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn dropped(&self, z: __m256i) -> __m256i {
            let z = _mm256_xor_si256(z, _mm256_srli_epi64::<30>(z));
            let z = mul(z, self.m1.0, self.m1.1);
            let z = _mm256_xor_si256(z, _mm256_srli_epi64::<27>(z));
            let z = mul(z, self.m2.0, self.m2.1);
            let z = _mm256_xor_si256(z, _mm256_srli_epi64::<31>(z));
            _mm256_cmpgt_epi64(self.threshold, _mm256_srli_epi64::<32>(z))
        }
    }

    /// The generator states `key + (base + k + 1) * GAMMA` of elements `base + k`, `k = 0..4`,
    /// and the increment that moves them on by 4 elements.
    fn states(key: u64, base: u64) -> ([u64; 4], u64) {
        let first = advance(key, base.wrapping_add(1));
        let lanes = [0u64, 1, 2, 3].map(|k| advance(first, k));
        (lanes, GAMMA.wrapping_mul(4))
    }

    /// f32 in blocks of 8 (two hash vectors per float vector); returns the elements done.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn apply_f32(
        key: u64,
        threshold: u64,
        scale: f32,
        base: u64,
        x: &[f32],
        y: &mut [f32],
    ) -> usize {
        let n = x.len().min(y.len()) / 8 * 8;
        let hash = Hash::new(threshold);
        let (lanes, step) = states(key, base);
        let mut z = _mm256_loadu_si256(lanes.as_ptr().cast());
        let step = _mm256_set1_epi64x(step as i64);
        let scale = _mm256_set1_ps(scale);
        for (x, y) in x[..n].chunks_exact(8).zip(y[..n].chunks_exact_mut(8)) {
            let low = hash.dropped(z);
            z = _mm256_add_epi64(z, step);
            let high = hash.dropped(z);
            z = _mm256_add_epi64(z, step);
            // One 32-bit lane per element, in order: the shuffle takes the low half of each
            // 64-bit mask lane (per 128-bit half: low 0 1, high 0 1 | low 2 3, high 2 3), the
            // permute restores element order.
            let packed = _mm256_shuffle_ps::<0b10_00_10_00>(
                _mm256_castsi256_ps(low),
                _mm256_castsi256_ps(high),
            );
            let dropped = _mm256_castsi256_ps(_mm256_permute4x64_epi64::<0b11_01_10_00>(
                _mm256_castps_si256(packed),
            ));
            // `x` and `y` are chunks of exactly 8 f32, so both 32-byte (unaligned) accesses
            // stay in bounds.
            let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr()), scale);
            _mm256_storeu_ps(y.as_mut_ptr(), _mm256_andnot_ps(dropped, v));
        }
        n
    }

    /// f64 in blocks of 4; returns the elements done.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn apply_f64(
        key: u64,
        threshold: u64,
        scale: f64,
        base: u64,
        x: &[f64],
        y: &mut [f64],
    ) -> usize {
        let n = x.len().min(y.len()) / 4 * 4;
        let hash = Hash::new(threshold);
        let (lanes, step) = states(key, base);
        let mut z = _mm256_loadu_si256(lanes.as_ptr().cast());
        let step = _mm256_set1_epi64x(step as i64);
        let scale = _mm256_set1_pd(scale);
        for (x, y) in x[..n].chunks_exact(4).zip(y[..n].chunks_exact_mut(4)) {
            let dropped = _mm256_castsi256_pd(hash.dropped(z));
            z = _mm256_add_epi64(z, step);
            // `x` and `y` are chunks of exactly 4 f64, so both 32-byte (unaligned) accesses
            // stay in bounds.
            let v = _mm256_mul_pd(_mm256_loadu_pd(x.as_ptr()), scale);
            _mm256_storeu_pd(y.as_mut_ptr(), _mm256_andnot_pd(dropped, v));
        }
        n
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "allconv-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.check()?;
        const OP: &str = "dropout";
        let storage =
            float_storage!(OP, s.dtype(), T => self.apply::<T>(contiguous(s, l, OP, "input")?));
        Ok((storage, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.check()?;
        let y = super::cuda::dropout(
            (s, l),
            key(self.seed, self.stream),
            self.threshold(),
            self.scale(),
        )?;
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

/// Inverted dropout of `x` (see [`Dropout`]); `rate` 0 returns `x` itself. Other dtypes and
/// devices get the same mask, computed on the CPU in f32 and multiplied in.
pub fn dropout(x: &Tensor, rate: f64, seed: u64, stream: u64) -> Result<Tensor> {
    let op = Dropout::new(rate, seed, stream)?;
    if rate == 0.0 {
        return Ok(x.clone());
    }
    if own_kernel_runs(x, Kernels::CpuAndCuda) {
        x.contiguous()?.apply_op1(op)
    } else {
        let mask = Tensor::ones(x.shape(), DType::F32, &Device::Cpu)?.apply_op1_no_bwd(&op)?;
        x.mul(&mask.to_dtype(x.dtype())?.to_device(x.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector loops (where the CPU has them) and the scalar tails must give, element by
    /// element, the mask of [`Dropout::keeps`] (whose hash `tests/dropout.rs` pins to values
    /// from a Python transcription), at every length, across chunk boundaries, in f32 and f64.
    #[test]
    fn every_length_gets_the_per_element_mask() {
        for (rate, seed, stream) in [(0.5, 7, 3), (0.2, 42, 1), (0.9, 1, 2), (0.0, 5, 5)] {
            let op = Dropout { rate, seed, stream };
            let scale = op.scale();
            for n in (0..70).chain([1000, 32_768, 70_001]) {
                let x: Vec<f64> = (0..n)
                    .map(|i| ((i * 37) % 101) as f64 / 7.0 - 6.0)
                    .collect();
                let y = op.apply(&x);
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let y32 = op.apply(&x32);
                for (i, (&v, (&a, &b))) in x.iter().zip(y.iter().zip(&y32)).enumerate() {
                    let keep = op.keeps(i as u64);
                    let want = if keep { v * scale } else { 0.0 };
                    let want32 = if keep { v as f32 * scale as f32 } else { 0.0 };
                    assert_eq!(a.to_bits(), want.to_bits(), "f64 n {n} i {i} rate {rate}");
                    assert_eq!(b.to_bits(), want32.to_bits(), "f32 n {n} i {i} rate {rate}");
                }
            }
        }
    }
}
