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
use mask::{key, Mask, WideApply};

#[cfg(target_arch = "x86_64")]
mod avx2;
pub(crate) mod mask;

pub use mask::dropout_bits;

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
        let mask = self.mask();
        let scale = T::from_f64(mask.scale);
        const CHUNK: usize = 1 << 15;
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(c, (y, x))| mask.apply(scale, (c * CHUNK) as u64, x, y));
        y
    }
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
