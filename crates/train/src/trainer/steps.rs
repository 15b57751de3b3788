//! One step's numbers kept on the device until they are needed, the evaluation of a split, and
//! the per-step dropout seed.

use allconv_cifar::{DeviceSplit, Order};
use allconv_models::{Mode, Network};
use candle_core::{DType, Tensor};

use crate::error::Result;

/// The dropout seed of one training step, a mix of run seed, epoch and step so every step draws
/// fresh masks and a resumed run draws the same ones (splitmix64 finaliser: consecutive inputs
/// give unrelated outputs).
pub fn dropout_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    allconv_splitmix::mix(
        seed.wrapping_mul(allconv_splitmix::GAMMA)
            .wrapping_add((epoch as u64) << 32)
            .wrapping_add(step as u64),
    )
}

/// Mean cross-entropy and accuracy (fraction) of `net` on `split` in evaluation mode (no dropout);
/// `None` for an empty split. The per-batch results stay on the device until one read at the end.
pub fn evaluate(
    net: &Network,
    split: &DeviceSplit,
    batch_size: usize,
) -> Result<Option<(f64, f64)>> {
    if split.is_empty() {
        return Ok(None);
    }
    let mut pending = PendingSteps::default();
    for batch in split.batches(batch_size, Order::Sequential, true)? {
        let (x, y) = batch?;
        let logits = net.forward(&x, Mode::Eval)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        pending.push(&loss, &logits, &y)?;
    }
    let mut loss_sum = 0.0;
    let mut correct = 0u64;
    for step in pending.read()? {
        loss_sum += step.loss * step.batch as f64;
        correct += step.correct;
    }
    let n = split.len() as f64;
    Ok(Some((loss_sum / n, correct as f64 / n)))
}

/// Losses and correct counts of steps not yet read from the device.
///
/// Why: `to_scalar` waits for the device to finish all queued work; doing it every step keeps a
/// GPU idle while the host prepares the next one. The tensors are detached so they do not keep
/// the step's autograd graph (all its activations) alive.
#[derive(Default)]
pub(crate) struct PendingSteps {
    losses: Vec<Tensor>,
    correct: Vec<Tensor>,
    batches: Vec<usize>,
}

/// One step's numbers, read back.
pub(crate) struct StepResult {
    pub(crate) loss: f64,
    pub(crate) correct: u64,
    pub(crate) batch: usize,
}

impl PendingSteps {
    pub(crate) fn push(&mut self, loss: &Tensor, logits: &Tensor, labels: &Tensor) -> Result<()> {
        self.losses.push(loss.detach());
        let correct = logits
            .detach()
            .argmax(1)?
            .eq(labels)?
            .to_dtype(DType::U32)?
            .sum_all()?;
        self.correct.push(correct);
        self.batches.push(labels.dims1()?);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }

    /// Reads every pending step (one transfer each for losses and counts) and clears.
    pub(crate) fn read(&mut self) -> Result<Vec<StepResult>> {
        if self.batches.is_empty() {
            return Ok(Vec::new());
        }
        let losses: Vec<f32> = Tensor::stack(&self.losses, 0)?.to_vec1()?;
        let correct: Vec<u32> = Tensor::stack(&self.correct, 0)?.to_vec1()?;
        let steps = losses
            .into_iter()
            .zip(correct)
            .zip(&self.batches)
            .map(|((loss, correct), &batch)| StepResult {
                loss: f64::from(loss),
                correct: u64::from(correct),
                batch,
            })
            .collect();
        self.losses.clear();
        self.correct.clear();
        self.batches.clear();
        Ok(steps)
    }
}
