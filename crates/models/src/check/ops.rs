//! The op cases: convolution forward (with and without fused bias + ReLU) and backward (data,
//! filter, bias), the padded max-pool forward and backward, dropout masks and the fused SGD
//! update.
//!
//! References: the convolutions against the CPU path on CUDA and against the f64 loops of
//! [`super::direct`] on the CPU; the bit-exact ops (pool, dropout, SGD) against the direct
//! definitions on every device, which is what the CPU path equals bit for bit.

use candle_core::{Device, Var};

use super::compare::Tolerance;
use super::context::{cached, case, op_error, tensor, to_f64, values, Context};
use super::direct::{self, ConvInput, ConvOutput};
use super::{Case, CheckError, Precision};
use crate::ops;

/// The distinct (kernel, stride, pad) of the 12 networks' convolutions.
fn conv_geometries() -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for name in crate::MODEL_NAMES {
        let spec = crate::spec(name, &crate::ModelOptions::default()).expect("a canonical name");
        for layer in &spec.layers {
            if let crate::LayerSpec::Conv {
                kernel,
                stride,
                pad,
                ..
            } = *layer
            {
                if !out.contains(&(kernel, stride, pad)) {
                    out.push((kernel, stride, pad));
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// The convolution on `device` in f32 through the library's op: output and the gradients of
/// `sum(y * upstream)`.
/// Without `input_grad` the input is a constant (as a network's first layer sees it) and `dx`
/// is left empty.
fn conv_on(
    device: &Device,
    input: &ConvInput,
    input_grad: bool,
) -> candle_core::Result<ConvOutput> {
    let [n, c, _, _] = input.dims;
    let k = input.kernel;
    let x = Var::from_tensor(&tensor(&input.x, &input.dims, device)?)?;
    // A plain tensor is not tracked, so its gradient (backward data) is never computed.
    let x_arg = if input_grad {
        x.as_tensor().clone()
    } else {
        x.as_tensor().detach()
    };
    let w = Var::from_tensor(&tensor(&input.weight, &[input.out, c, k, k], device)?)?;
    let b = Var::from_tensor(&tensor(&input.bias, &[input.out], device)?)?;
    let (oh, ow) = input.out_hw();
    let r = tensor(&input.upstream, &[n, input.out, oh, ow], device)?;
    let f = if input.relu {
        ops::conv2d_relu
    } else {
        ops::conv2d
    };
    let y = f(&x_arg, &w, &b, input.stride, input.pad)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let grad = |v: &Var| {
        grads
            .get(v.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))
            .and_then(to_f64)
    };
    Ok(ConvOutput {
        y: to_f64(&y)?,
        dx: if input_grad { grad(&x)? } else { Vec::new() },
        dw: grad(&w)?,
        db: grad(&b)?,
    })
}

/// One convolution case: `(dims, out, kernel, stride, pad, input_grad)`.
type ConvShape = ([usize; 4], usize, usize, usize, usize, bool);

/// The shapes compared: every geometry of the networks on odd sizes and batch 1; the full check
/// adds a layer-sized case per geometry and the networks' own layer shapes (3 input channels
/// without an input gradient, as the first layer; 96 channels; an odd 15x15 and 7x7).
fn conv_shapes(quick: bool) -> Vec<ConvShape> {
    let mut shapes = Vec::new();
    for (k, s, p) in conv_geometries() {
        shapes.push(([2, 3, 9, 7], 4, k, s, p, true));
        shapes.push(([1, 2, 7, 10], 3, k, s, p, true));
        if !quick {
            shapes.push(([2, 5, 13, 11], 6, k, s, p, true));
            shapes.push(if k == 1 {
                ([2, 192, 8, 8], 192, k, s, p, true)
            } else {
                ([2, 96, 16, 16], 96, k, s, p, true)
            });
        }
    }
    if !quick {
        shapes.extend([
            ([4, 3, 32, 32], 16, 3, 1, 1, false),
            ([4, 3, 32, 32], 16, 5, 1, 2, false),
            ([4, 16, 16, 16], 24, 3, 2, 1, true),
            ([4, 8, 15, 15], 16, 5, 2, 2, true),
            ([4, 16, 8, 8], 24, 3, 1, 0, true),
            ([4, 24, 6, 6], 10, 1, 1, 0, true),
            ([3, 3, 7, 7], 5, 3, 2, 1, true),
            ([4, 96, 16, 16], 96, 3, 1, 1, true),
            ([4, 96, 8, 8], 10, 1, 1, 0, true),
        ]);
    }
    shapes
}

/// Convolution forward and backward (see [`conv_shapes`]), with and without the fused
/// bias + ReLU. With the ReLU, the upstream gradient is zeroed where the pre-activation is
/// within 1e-3 of 0, so that a rounding difference which flips the ReLU there changes nothing
/// that is compared (a kink, not an error of the op).
pub(crate) fn conv_cases(ctx: &Context<'_>, push: &mut dyn FnMut(Case)) -> Result<(), CheckError> {
    let tolerance = Tolerance::Relative(match ctx.precision() {
        Precision::Fp32 => 1e-4,
        Precision::Tf32 => 1e-2,
    });
    let mut seed = 100;
    for (dims, out, kernel, stride, pad, input_grad) in conv_shapes(ctx.quick) {
        for relu in [false, true] {
            seed += 4;
            let [n, c, _, _] = dims;
            let mut input = ConvInput {
                dims,
                out,
                kernel,
                stride,
                pad,
                relu,
                x: values(dims.iter().product(), seed),
                weight: values(out * c * kernel * kernel, seed + 1),
                bias: values(out, seed + 2),
                upstream: Vec::new(),
            };
            let (oh, ow) = input.out_hw();
            input.upstream = values(n * out * oh * ow, seed + 3);
            if relu {
                let pre = direct::conv_pre_activation(&input);
                for (g, y) in input.upstream.iter_mut().zip(pre) {
                    if y.abs() < 1e-3 {
                        *g = 0.0;
                    }
                }
            }
            let tested = conv_on(ctx.device, &input, input_grad).map_err(op_error("conv_fwd"))?;
            let reference = cached(
                &ctx.references.conv,
                format!("{dims:?} {out} {kernel} {stride} {pad} {input_grad} {relu} {seed}"),
                || {
                    if ctx.device.is_cuda() {
                        conv_on(&Device::Cpu, &input, input_grad).map_err(op_error("conv_fwd"))
                    } else {
                        Ok(direct::conv(&input))
                    }
                },
            )?;
            let shape = format!(
                "x {} w {out}x{c}x{kernel}x{kernel} s{stride} p{pad}{}",
                dims.map(|d| d.to_string()).join("x"),
                if input_grad { "" } else { " no dx" }
            );
            let names = if relu {
                [
                    "conv_relu_fwd",
                    "conv_relu_bwd_data",
                    "conv_relu_bwd_filter",
                    "conv_relu_bwd_bias",
                ]
            } else {
                [
                    "conv_fwd",
                    "conv_bwd_data",
                    "conv_bwd_filter",
                    "conv_bwd_bias",
                ]
            };
            let pairs = [
                (tested.y, &reference.y),
                (tested.dx, &reference.dx),
                (tested.dw, &reference.dw),
                (tested.db, &reference.db),
            ];
            for (i, (op, (t, r))) in names.into_iter().zip(pairs).enumerate() {
                if i == 1 && !input_grad {
                    continue;
                }
                push(case(ctx, op, shape.clone(), t, r, tolerance));
            }
        }
    }
    Ok(())
}

/// The paper's 3x3/2 pad-1 max-pool, forward and backward, bit for bit: inputs on a coarse
/// grid (many ties within a window) with the first two rows of the first plane at -inf (a row
/// of all -inf windows), upstream gradients in eighths (so the sums where windows overlap are
/// exact in f32).
pub(crate) fn pool_cases(ctx: &Context<'_>, push: &mut dyn FnMut(Case)) -> Result<(), CheckError> {
    let mut shapes = vec![[2, 3, 9, 9], [1, 2, 16, 16]];
    if !ctx.quick {
        shapes.extend([[2, 5, 32, 32], [1, 3, 7, 10]]);
    }
    for (i, dims) in shapes.into_iter().enumerate() {
        let [n, c, h, w] = dims;
        let mut x: Vec<f64> = values(n * c * h * w, 300 + i as u64)
            .into_iter()
            .map(|v| (v * 4.0).round() / 4.0)
            .collect();
        x[..2 * w].fill(f64::NEG_INFINITY);
        let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
        let upstream: Vec<f64> = values(n * c * oh * ow, 400 + i as u64)
            .into_iter()
            .map(|v| (v * 8.0).round() / 8.0)
            .collect();
        let run = || -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
            let xv = Var::from_tensor(&tensor(&x, &dims, ctx.device)?)?;
            let r = tensor(&upstream, &[n, c, oh, ow], ctx.device)?;
            let y = ops::max_pool2d_padded(&xv)?;
            let grads = (&y * &r)?.sum_all()?.backward()?;
            let dx = grads
                .get(xv.as_tensor())
                .ok_or_else(|| candle_core::Error::Msg("no gradient".into()))?;
            Ok((to_f64(&y)?, to_f64(dx)?))
        };
        let (y, dx) = run().map_err(op_error("pool_fwd"))?;
        let (ry, rdx) = direct::max_pool(&x, [n * c, h, w], 3, 2, 1, &upstream);
        let shape = format!("x {n}x{c}x{h}x{w} 3x3/2 p1");
        push(case(
            ctx,
            "pool_fwd",
            shape.clone(),
            y,
            &ry,
            Tolerance::Bits,
        ));
        push(case(ctx, "pool_bwd", shape, dx, &rdx, Tolerance::Bits));
    }
    Ok(())
}

/// Dropout at the networks' rates (0.2 on the input, 0.5 after pooling) on odd and
/// layer-sized tensors, bit for bit.
pub(crate) fn dropout_cases(
    ctx: &Context<'_>,
    push: &mut dyn FnMut(Case),
) -> Result<(), CheckError> {
    let mut shapes: Vec<(Vec<usize>, f64)> = vec![(vec![3, 7, 11], 0.2), (vec![70_001], 0.5)];
    if !ctx.quick {
        shapes.push((vec![8, 96, 16, 16], 0.5));
        shapes.push((vec![8, 3, 32, 32], 0.2));
    }
    for (i, (dims, rate)) in shapes.into_iter().enumerate() {
        let n: usize = dims.iter().product();
        let x = values(n, 500 + i as u64);
        let (seed, stream) = (1_000 + i as u64, i as u64 + 1);
        let tested = tensor(&x, &dims, ctx.device)
            .and_then(|t| ops::dropout(&t, rate, seed, stream))
            .and_then(|t| to_f64(&t))
            .map_err(op_error("dropout_mask"))?;
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let reference: Vec<f64> = direct::dropout(&x32, rate, seed, stream)
            .into_iter()
            .map(f64::from)
            .collect();
        let shape = format!(
            "{} rate {rate}",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        );
        push(case(
            ctx,
            "dropout_mask",
            shape,
            tested,
            &reference,
            Tolerance::Bits,
        ));
    }
    Ok(())
}

/// The fused SGD update (momentum 0.9, with and without weight decay) on a layer's weights
/// and an odd-length bias, bit for bit against the documented order of operations.
pub(crate) fn sgd_cases(ctx: &Context<'_>, push: &mut dyn FnMut(Case)) -> Result<(), CheckError> {
    let cases = [(96 * 96 * 9, 0.05, 0.001), (1_001, 0.01, 0.0)];
    for (i, (n, lr, wd)) in cases.into_iter().enumerate() {
        let seed = 600 + 3 * i as u64;
        let (w, v, g) = (values(n, seed), values(n, seed + 1), values(n, seed + 2));
        let run = || -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
            let (tw, tv, tg) = (
                tensor(&w, &[n], ctx.device)?,
                tensor(&v, &[n], ctx.device)?,
                tensor(&g, &[n], ctx.device)?,
            );
            ops::sgd_step(&tw, &tv, &tg, lr, 0.9, wd)?;
            Ok((to_f64(&tw)?, to_f64(&tv)?))
        };
        let (tw, tv) = run().map_err(op_error("sgd_step"))?;
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let (rw, rv) = direct::sgd(&f32s(&w), &f32s(&v), &f32s(&g), lr, 0.9, wd);
        let widen = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<_>>();
        let shape = format!("{n} lr {lr} m 0.9 wd {wd}");
        push(case(
            ctx,
            "sgd_step",
            format!("{shape}: weights"),
            tw,
            &widen(rw),
            Tolerance::Bits,
        ));
        push(case(
            ctx,
            "sgd_step",
            format!("{shape}: momentum"),
            tv,
            &widen(rv),
            Tolerance::Bits,
        ));
    }
    Ok(())
}
