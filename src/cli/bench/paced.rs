//! `allconv bench --paced`: measurements on request, one per line of standard input, for a
//! driver that alternates them with another tool's (`scripts/compare_pytorch.py`).

use allconv_models::ops;
use allconv_vocab::Precision;
use anyhow::Context;
use candle_core::Device;

use super::subject::{synthetic_batch, Subject};
use super::timing::{timed, warm_up_calls};

/// `--paced`: every model built and warmed up, then one measurement per line of standard input
/// (`MODEL eval|train`), answered on standard output as soon as it is done.
pub(super) fn paced(
    specs: &[allconv_models::ModelSpec],
    device: &Device,
    precision: Precision,
    batch: usize,
    iters: usize,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    ops::set_tf32(precision == Precision::Tf32);
    let (images, labels) = synthetic_batch(batch, device)?;
    let mut subjects = Vec::new();
    for s in specs {
        let mut subject = Subject::new(s, device)?;
        for i in 0..warm_up_calls(device) {
            subject.forward(&images)?;
            subject.step(&images, &labels, i)?;
        }
        subjects.push((s.name.to_ascii_lowercase(), subject));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", ops::cpu_kernels())?;
    out.flush()?;
    let mut steps = 0;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading a --paced request from standard input")?;
        let request: Vec<&str> = line.split_whitespace().collect();
        let [model, mode] = request[..] else {
            anyhow::bail!(
                "--paced request {}: expected 'MODEL eval' or 'MODEL train', got '{line}'",
                number + 1
            );
        };
        let Some((_, subject)) = subjects
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(model))
        else {
            anyhow::bail!(
                "--paced request {}: model '{model}' is not among --models",
                number + 1
            );
        };
        let rate = match mode {
            "eval" => timed(device, batch, iters, |_| subject.forward(&images))?,
            "train" => timed(device, batch, iters, |_| {
                steps += 1;
                subject.step(&images, &labels, steps)
            })?,
            other => anyhow::bail!(
                "--paced request {}: expected 'eval' or 'train', got '{other}'",
                number + 1
            ),
        };
        writeln!(out, "{model} {mode} {:.2}", rate.wall)?;
        out.flush()?;
    }
    ops::set_tf32(false);
    Ok(())
}
