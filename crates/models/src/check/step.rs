//! One training step (forward, cross-entropy loss, backward) of each network from the same
//! weights and batch, dropout off.
//!
//! Reference: on CUDA the same step on the CPU in f32; on the CPU the same network in f64.
//! Tolerances: the loss to 1e-5 relative and every gradient to 1e-3 relative to its largest
//! entry in fp32, which allow for a different summation order; 1e-3 and 5e-2 with TF32
//! products (10-bit mantissas).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use super::compare::{compare, perturb, Tolerance};
use super::ops::{case, op_error, to_f64, values, Context};
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

/// Each parameter's name and gradient.
type Gradients = Vec<(String, Vec<f64>)>;

/// Loss and gradients (sorted by parameter name) of one step of `spec` on `device` in `dtype`,
/// weights from init seed 3.
fn step(
    spec: &ModelSpec,
    device: &Device,
    dtype: DType,
    batch: usize,
) -> candle_core::Result<(f64, Gradients)> {
    let varmap = VarMap::new();
    let net = Network::with_dtype(spec, &varmap, device, dtype, 3)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let pixels = batch * INPUT_CHANNELS * INPUT_SIZE * INPUT_SIZE;
    // Pixels in [-2, 2), about the range of the whitened data. A ReLU whose input lies within
    // rounding of 0 can switch between the tested path and the reference and move one term of
    // a gradient by ~1e-3 of its largest entry (a kink, not an error); this fixed batch has
    // none on the CPU at batch 2 and 8.
    let x: Vec<f64> = values(pixels, 9).into_iter().map(|v| 2.0 * v).collect();
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
    let (loss_tol, grad_tol) = match ctx.precision {
        Precision::Fp32 => (1e-5, 1e-3),
        Precision::Tf32 => (1e-3, 5e-2),
    };
    let batch = if ctx.quick { 2 } else { 8 };
    for spec in specs {
        let (loss, grads) =
            step(spec, ctx.device, DType::F32, batch).map_err(op_error("step_loss"))?;
        let (ref_loss, ref_grads) = if ctx.device.is_cuda() {
            step(spec, &Device::Cpu, DType::F32, batch)
        } else {
            step(spec, &Device::Cpu, DType::F64, batch)
        }
        .map_err(op_error("step_loss"))?;
        let shape = format!("{} batch {batch}", spec.name);
        push(case(
            ctx,
            "step_loss",
            shape.clone(),
            vec![loss],
            &[ref_loss],
            Tolerance::Relative(loss_tol),
        ));
        let tolerance = Tolerance::Relative(grad_tol);
        let (mut max_abs, mut max_rel, mut pass) = (0f64, 0f64, grads.len() == ref_grads.len());
        for (i, ((name, mut g), (ref_name, r))) in grads.into_iter().zip(&ref_grads).enumerate() {
            if i == 0 {
                perturb("step_grad", &mut g);
            }
            let (a, rel, ok) = compare(&g, r, tolerance);
            max_abs = max_abs.max(a);
            max_rel = max_rel.max(rel);
            pass &= ok && name == *ref_name;
        }
        push(Case {
            op: "step_grad",
            shape: format!("{shape}, {} tensors", ref_grads.len()),
            dtype: "f32",
            precision: ctx.precision,
            max_abs,
            max_rel,
            tolerance,
            pass,
        });
    }
    Ok(())
}
