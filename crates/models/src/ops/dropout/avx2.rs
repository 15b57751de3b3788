//! The hash on 4 u64 lanes with AVX2 intrinsics. Every lane computes exactly the integers of
//! `bits` in `mask.rs` (wrapping adds and multiplies, logical shifts). Written by hand because LLVM's own
//! vectorisation of the scalar loop was no faster than the scalar loop; AVX-512's 64-bit
//! multiply would be faster still but its intrinsics need Rust 1.89 (MSRV is 1.85).

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
        let packed =
            _mm256_shuffle_ps::<0b10_00_10_00>(_mm256_castsi256_ps(low), _mm256_castsi256_ps(high));
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
