//! One training step (forward, cross-entropy loss, backward) of each network from the same
//! weights and batch, dropout off.
//!
//! Reference: on CUDA the same step on the CPU in f32; on the CPU the same network in f64.
//! Tolerances: the loss to 1e-5 relative and every gradient to 1e-3 relative to its largest
//! entry in fp32, which allow for a different summation order; 1e-3 and 5e-2 with TF32
//! products (10-bit mantissas).
//!
//! A ReLU whose input lies within rounding of zero can take the other branch on the two sides
//! (a kink, not an error) and then moves a whole-network gradient by about 1e-3 of its largest
//! entry: on the CPU, f32 against f64 at batch 8, it happened at 2 of 4 batches for one of the
//! 12 networks. It is a property of the batch, so a network whose gradients miss the tolerance
//! is stepped again on a second, independent batch and fails only if that one misses too; a
//! wrong op misses on every batch. The row says when the second batch decided.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use super::compare::{compare, perturb, Tolerance};
use super::context::{cached, case, op_error, row, to_f64, values, Context, Gradients};
use super::{Case, CheckError, Precision};
use crate::{spec, Mode, ModelOptions, ModelSpec, Network, INPUT_CHANNELS, INPUT_SIZE};

/// The networks to check, all 12 when `models` is empty. Without the final ReLU: with it most
/// class scores are zero at initialisation and the early layers' gradients can be zero on both
/// sides, which would compare nothing.
pub(crate) fn specs(models: &[String]) -> Result<Vec<ModelSpec>, CheckError> {
    let options = ModelOptions {
        final_relu: false,
        ..ModelOptions::default()
    };
    let names: Vec<String> = if models.is_empty() {
        crate::MODEL_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        models.to_vec()
    };
    names
        .iter()
        .map(|name| spec(name, &options).map_err(CheckError::from))
        .collect()
}

/// Seeds of the batches a step is compared on: the first, and the second used only when the
/// first one's gradients miss the tolerance (see the module documentation).
const BATCH_SEEDS: [u64; 2] = [9, 10];

/// The perturbation ([`super::CheckOptions::perturb`]) that moves the step gradients of the first batch only, as a
/// kink would: the tests use it to show that the second batch decides.
const FIRST_BATCH_ONLY: &str = "step_grad_first_batch";

/// Loss and gradients (sorted by parameter name) of one step of `spec` on `device` in `dtype`,
/// weights from init seed 3, on the batch drawn from `batch_seed`.
fn step(
    spec: &ModelSpec,
    device: &Device,
    dtype: DType,
    batch: usize,
    batch_seed: u64,
) -> candle_core::Result<(f64, Gradients)> {
    let varmap = VarMap::new();
    let net = Network::with_dtype(spec, &varmap, device, dtype, 3)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let pixels = batch * INPUT_CHANNELS * INPUT_SIZE * INPUT_SIZE;
    // Pixels in [-2, 2), about the range of the whitened data.
    let x: Vec<f64> = values(pixels, batch_seed)
        .into_iter()
        .map(|v| 2.0 * v)
        .collect();
    let x = Tensor::from_vec(
        x,
        (batch, INPUT_CHANNELS, INPUT_SIZE, INPUT_SIZE),
        &Device::Cpu,
    )?
    .to_dtype(dtype)?
    .to_device(device)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 7 + 3) % 10).collect();
    let y = Tensor::from_vec(labels, batch, device)?;
    let loss = candle_nn::loss::cross_entropy(&net.forward(&x, Mode::Eval)?, &y)?;
    let grads = loss.backward()?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the VarMap lock is poisoned".into()))?;
    let mut out = Vec::with_capacity(data.len());
    for (name, var) in data.iter() {
        let g = grads
            .get(var.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg(format!("{name}: no gradient")))?;
        out.push((name.clone(), to_f64(g)?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, out))
}

/// Two rows per network: `step_loss` and `step_grad` (the worst over its parameters, each
/// gradient relative to its own largest entry).
pub(crate) fn step_cases(
    ctx: &Context<'_>,
    specs: &[ModelSpec],
    push: &mut dyn FnMut(Case),
) -> Result<(), CheckError> {
    let (loss_tol, grad_tol) = match ctx.precision() {
        Precision::Fp32 => (1e-5, 1e-3),
        Precision::Tf32 => (1e-3, 5e-2),
    };
    let batch = if ctx.quick { 2 } else { 8 };
    for spec in specs {
        let shape = format!("{} batch {batch}", spec.name);
        let tolerance = Tolerance::Relative(grad_tol);
        for (attempt, &batch_seed) in BATCH_SEEDS.iter().enumerate() {
            let (loss, grads) = step(spec, ctx.device, DType::F32, batch, batch_seed)
                .map_err(op_error("step_loss"))?;
            let reference = cached(
                &ctx.references.steps,
                format!("{} {batch} {batch_seed}", spec.name),
                || {
                    let dtype = if ctx.device.is_cuda() {
                        DType::F32
                    } else {
                        DType::F64
                    };
                    step(spec, &Device::Cpu, dtype, batch, batch_seed)
                        .map_err(op_error("step_loss"))
                },
            )?;
            let (ref_loss, ref_grads) = (reference.0, &reference.1);
            let (mut max_abs, mut max_rel, mut pass) = (0f64, 0f64, grads.len() == ref_grads.len());
            for (i, ((name, mut g), (ref_name, r))) in grads.into_iter().zip(ref_grads).enumerate()
            {
                if i == 0 {
                    let engine = ctx.setting.map(|s| s.engine);
                    perturb(ctx.perturb, "step_grad", engine, &mut g);
                    if attempt == 0 {
                        // A miss on the first batch only: the second must decide.
                        perturb(ctx.perturb, FIRST_BATCH_ONLY, engine, &mut g);
                    }
                }
                let (a, rel, ok) = compare(&g, r, tolerance);
                max_abs = max_abs.max(a);
                max_rel = max_rel.max(rel);
                pass &= ok && name == *ref_name;
            }
            let last = attempt + 1 == BATCH_SEEDS.len();
            if !pass && !last {
                continue;
            }
            let which = if attempt == 0 {
                ""
            } else {
                ", 2nd batch (1st: a kink or an error)"
            };
            push(case(
                ctx,
                "step_loss",
                format!("{shape}{which}"),
                vec![loss],
                &[ref_loss],
                Tolerance::Relative(loss_tol),
            ));
            push(row(
                ctx,
                "step_grad",
                format!("{shape}, {} tensors{which}", ref_grads.len()),
                (max_abs, max_rel, pass),
                tolerance,
            ));
            break;
        }
    }
    Ok(())
}
