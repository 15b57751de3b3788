//! Inverted dropout whose mask is a pure function of `(seed, stream, element index)`, computed
//! the same way on the CPU and on the GPU, so a run draws the same masks on every device and a
//! resumed run draws the same masks as an uninterrupted one.
//!
//! Why a counter-based hash rather than a sequential RNG: every element's bit can be computed
//! independently (one GPU thread or one CPU chunk each, no state to hand around), and the
//! backward pass regenerates the mask from the seed instead of storing it.
//!
//! The hash is SplitMix64 (Steele, Lea and Flood 2014, as in Java's `SplittableRandom`):
//! `key = mix(mix(seed) ^ stream)`, and element `i` draws the high 32 bits of
//! `mix(key + (i + 1) * 0x9E3779B97F4A7C15)`, i.e. of the `(i+1)`-th output of a SplitMix64
//! generator started at `key`. The element is kept iff those bits are `>= round(rate * 2^32)`,
//! so it is dropped with probability `rate` (to within 2^-33).

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (a bijection on u64).
#[inline]
fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator start of `(seed, stream)`. `mix` is a bijection, so for a fixed seed distinct
/// streams get distinct keys, and vice versa.
#[inline]
fn key(seed: u64, stream: u64) -> u64 {
    mix(mix(seed) ^ stream)
}

#[inline]
fn bits(key: u64, index: u64) -> u32 {
    (mix(key.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN_GAMMA))) >> 32) as u32
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
    fn apply<T: candle_core::WithDType>(&self, x: &[T]) -> Vec<T> {
        let (key, threshold, scale) = (key(self.seed, self.stream), self.threshold(), self.scale());
        let scale = T::from_f64(scale);
        const CHUNK: usize = 1 << 15;
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (y, x))| {
                let base = (c * CHUNK) as u64;
                for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                    // A select, not a branch: the branch would be mispredicted half the time.
                    let keep = u64::from(bits(key, base + j as u64)) >= threshold;
                    *y = if keep { x * scale } else { T::zero() };
                }
            });
        y
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "allconv-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.check()?;
        let Some((start, end)) = l.contiguous_offsets() else {
            bail!("dropout: the input must be contiguous")
        };
        let storage = match s {
            CpuStorage::F32(v) => CpuStorage::F32(self.apply(&v[start..end])),
            CpuStorage::F64(v) => CpuStorage::F64(self.apply(&v[start..end])),
            other => bail!(
                "dropout: dtype {:?} not supported by the op (f32, f64)",
                other.dtype()
            ),
        };
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

/// Whether the [`Dropout`] op runs on `x` directly.
fn has_op(x: &Tensor) -> bool {
    let float = matches!(x.dtype(), DType::F32 | DType::F64);
    match x.device() {
        Device::Cpu => float,
        Device::Cuda(_) => cfg!(feature = "cuda") && float,
        _ => false,
    }
}

/// Inverted dropout of `x` (see [`Dropout`]); `rate` 0 returns `x` itself. Other dtypes and
/// devices get the same mask, computed on the CPU in f32 and multiplied in.
pub fn dropout(x: &Tensor, rate: f64, seed: u64, stream: u64) -> Result<Tensor> {
    let op = Dropout::new(rate, seed, stream)?;
    if rate == 0.0 {
        return Ok(x.clone());
    }
    if has_op(x) {
        x.contiguous()?.apply_op1(op)
    } else {
        let mask = Tensor::ones(x.shape(), DType::F32, &Device::Cpu)?.apply_op1_no_bwd(&op)?;
        x.mul(&mask.to_dtype(x.dtype())?.to_device(x.device())?)
    }
}
