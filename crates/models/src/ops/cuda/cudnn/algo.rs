//! Algorithm choice, once per plan and direction: cuDNN's timing (`cudnnFind*AlgorithmEx`) on
//! the first call's buffers, the heuristics when timing is impossible, and the rules a result
//! must pass (workspace, math type, determinism); see the `cudnn` module documentation.

use std::ffi::{c_int, c_void};
use std::fmt;
use std::sync::Arc;

use candle_core::Result;
use cudarc::driver::CudaStream;

use super::desc::ConvDesc;
use super::ffi::{Code, RawPerf};
use super::workspace::raw_mut;
use super::{check, cudnn_error, Key};
use crate::ops::cudnn_codes::{Direction, MathType, Perf, UnknownCode};

/// Largest workspace an algorithm may ask for: a cap (not a measurement) that keeps the FFT
/// variants from claiming gigabytes next to other training processes on the same card.
pub(super) const WORKSPACE_LIMIT: usize = 512 << 20;

/// A deterministic algorithm is preferred if it is at most this factor slower than the fastest.
const DETERMINISTIC_SLACK: f32 = 1.10;

/// Whether a result's math type is allowed: without TF32 only plain FMA kernels (tensor-core
/// results are skipped); never the fp16 down-conversion of TENSOR_OP_MATH_ALLOW_CONVERSION.
fn math_allowed(math: MathType, tf32: bool) -> bool {
    match math {
        MathType::Fma | MathType::Default => true,
        MathType::TensorOp => tf32,
        MathType::TensorOpAllowConversion => false,
    }
}

/// The math type a convolution descriptor starts with (see the module documentation).
pub(super) fn requested_math(tf32: bool) -> MathType {
    if tf32 {
        MathType::Default
    } else {
        MathType::Fma
    }
}

/// Whether a result may be chosen for `key`'s plan: it ran, its workspace fits `workspace`,
/// its math type is allowed, and it is deterministic if [`crate::ops::set_deterministic`] asked
/// for that when the plan was made.
fn usable(p: &Perf, key: &Key, workspace: usize) -> bool {
    p.ok && p.memory <= workspace
        && math_allowed(p.math, key.tf32)
        && (p.deterministic || !key.deterministic)
}

/// Picks from timed results (sorted fastest first by cuDNN): the fastest usable one, or a
/// deterministic one within [`DETERMINISTIC_SLACK`] of it (in deterministic mode every usable
/// one is deterministic, so the fastest of those).
fn pick_timed(results: &[Perf], key: &Key, workspace: usize) -> Option<Perf> {
    let usable: Vec<Perf> = results
        .iter()
        .copied()
        .filter(|p| usable(p, key, workspace))
        .collect();
    let fastest = *usable.first()?;
    let deterministic = usable
        .iter()
        .find(|p| p.deterministic && p.time <= fastest.time * DETERMINISTIC_SLACK);
    Some(*deterministic.unwrap_or(&fastest))
}

/// The first `returned` results decoded; a result with a value this build does not know is
/// left out (it cannot be chosen) and its error kept, for the message should nothing be left.
fn decode(
    raw: &[RawPerf],
    returned: c_int,
    direction: Direction,
    unknown: &mut Vec<UnknownCode>,
) -> Vec<Perf> {
    let n = (returned.max(0) as usize).min(raw.len());
    raw[..n]
        .iter()
        .filter_map(|r| match r.decode(direction) {
            Ok(p) => Some(p),
            Err(e) => {
                unknown.push(e);
                None
            }
        })
        .collect()
}

/// How an algorithm was chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Source {
    /// Timed by `cudnnFind*AlgorithmEx` (milliseconds of the timing run).
    Timed(f32),
    /// First fitting algorithm of the `cudnnGet*_v7` heuristics (timing failed).
    Heuristic,
}

/// An algorithm chosen for one direction of one plan.
#[derive(Debug, Clone, Copy)]
pub(super) struct Choice {
    /// The algorithm's code, as cuDNN wrote it.
    pub(super) algo: Code,
    pub(super) algo_name: &'static str,
    pub(super) math: MathType,
    pub(super) workspace: usize,
    pub(super) deterministic: bool,
    pub(super) source: Source,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}, workspace {} B, ",
            self.algo_name,
            self.math.name(),
            if self.deterministic {
                "deterministic"
            } else {
                "non-deterministic"
            },
            self.workspace
        )?;
        match self.source {
            Source::Timed(ms) => write!(f, "timed {ms:.3} ms)"),
            Source::Heuristic => write!(f, "heuristic)"),
        }
    }
}

/// Chooses an algorithm for one direction: the largest heuristic workspace that fits the limit
/// sizes a temporary buffer, `find` times the algorithms on it, [`pick_timed`] chooses; where
/// timing is impossible, the heuristics' first usable algorithm.
pub(super) fn choose(
    stream: &Arc<CudaStream>,
    direction: Direction,
    max_count: impl FnOnce(&mut c_int) -> Code,
    heuristic: impl FnOnce(c_int, &mut c_int, *mut RawPerf) -> Code,
    find: impl FnOnce(c_int, &mut c_int, *mut RawPerf, *mut c_void, usize) -> Code,
    (op, step, key): (&str, &str, &Key),
) -> Result<(Perf, Source)> {
    let mut count: c_int = 0;
    check(
        op,
        &format!("{step}: algorithm count"),
        key,
        max_count(&mut count),
    )?;
    let capacity = count.max(1) as usize;
    let mut unknown = Vec::new();
    let heuristics = ranked(
        heuristic,
        capacity,
        direction,
        &mut unknown,
        (op, step, key),
    )?;
    if let Some(p) = timed(
        stream,
        find,
        capacity,
        &heuristics,
        direction,
        &mut unknown,
        key,
    ) {
        return Ok((p, Source::Timed(p.time)));
    }
    first_usable(&heuristics, &unknown, (op, step, key))
}

/// The `cudnnGet*_v7` heuristics' results (at most `capacity`), decoded, in cuDNN's order.
fn ranked(
    heuristic: impl FnOnce(c_int, &mut c_int, *mut RawPerf) -> Code,
    capacity: usize,
    direction: Direction,
    unknown: &mut Vec<UnknownCode>,
    (op, step, key): (&str, &str, &Key),
) -> Result<Vec<Perf>> {
    let mut raw = vec![RawPerf::default(); capacity];
    let mut returned: c_int = 0;
    check(
        op,
        &format!("{step}: heuristics"),
        key,
        heuristic(capacity as c_int, &mut returned, raw.as_mut_ptr()),
    )?;
    Ok(decode(&raw, returned, direction, unknown))
}

/// The timed choice: `find` times the algorithms in a temporary workspace as large as the
/// largest usable heuristic result needs, and [`pick_timed`] chooses. `None` where that is
/// impossible: no memory for the workspace, cuDNN refused, or no result is usable.
fn timed(
    stream: &Arc<CudaStream>,
    find: impl FnOnce(c_int, &mut c_int, *mut RawPerf, *mut c_void, usize) -> Code,
    capacity: usize,
    heuristics: &[Perf],
    direction: Direction,
    unknown: &mut Vec<UnknownCode>,
    key: &Key,
) -> Option<Perf> {
    let find_bytes = heuristics
        .iter()
        .filter(|p| usable(p, key, WORKSPACE_LIMIT))
        .map(|p| p.memory)
        .max()
        .unwrap_or(0);
    let mut workspace = if find_bytes == 0 {
        None
    } else {
        // SAFETY: scratch memory, only written by cuDNN.
        unsafe { stream.alloc::<u8>(find_bytes) }.ok()
    };
    if find_bytes != 0 && workspace.is_none() {
        return None;
    }
    let (ws, ws_len, guard) = raw_mut(&mut workspace, stream);
    let mut raw = vec![RawPerf::default(); capacity];
    let mut returned: c_int = 0;
    let found = find(
        capacity as c_int,
        &mut returned,
        raw.as_mut_ptr(),
        ws,
        ws_len,
    );
    drop(guard);
    if found != super::ffi::STATUS_SUCCESS {
        return None;
    }
    let results = decode(&raw, returned, direction, unknown);
    pick_timed(&results, key, ws_len)
}

/// Where timing was impossible: the first usable result in the heuristics' order, which is
/// cuDNN's own estimate of speed; an error if none is usable, naming the results left out as
/// `unknown`.
fn first_usable(
    heuristics: &[Perf],
    unknown: &[UnknownCode],
    (op, step, key): (&str, &str, &Key),
) -> Result<(Perf, Source)> {
    heuristics
        .iter()
        .copied()
        .find(|p| usable(p, key, WORKSPACE_LIMIT))
        .map(|p| (p, Source::Heuristic))
        .ok_or_else(|| {
            let kind = if key.deterministic {
                "deterministic "
            } else {
                ""
            };
            let skipped = match unknown.first() {
                Some(e) => format!(" ({} result(s) left out; the first: {e})", unknown.len()),
                None => String::new(),
            };
            candle_core::Error::Msg(format!(
                "{op}: cuDNN has no usable {kind}{step} algorithm for {key} within a workspace \
                 of {WORKSPACE_LIMIT} B{skipped}"
            ))
            .bt()
        })
}

/// Turns a picked result into a [`Choice`]: the direction's descriptor gets the result's math
/// type (only with TF32; without it the descriptor stays FMA-only) and the workspace size is
/// asked for that exact configuration.
pub(super) fn settle(
    conv: &ConvDesc,
    (picked, source): (Perf, Source),
    tf32: bool,
    workspace_size: impl FnOnce(Code, &mut usize) -> Code,
    (op, step, key): (&str, &str, &Key),
) -> Result<Choice> {
    let math = if tf32 { picked.math } else { MathType::Fma };
    conv.set_math(math)
        .map_err(|s| cudnn_error(op, &format!("{step}: math type"), key, s))?;
    let mut bytes = 0usize;
    check(
        op,
        &format!("{step}: workspace size"),
        key,
        workspace_size(picked.algo, &mut bytes),
    )?;
    Ok(Choice {
        algo: picked.algo,
        algo_name: picked.algo_name,
        math,
        workspace: bytes.max(picked.memory),
        deterministic: picked.deterministic,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A successful timed result with only the fields that the choice reads.
    fn timed(id: Code, time: f32, deterministic: bool, memory: usize) -> Perf {
        Perf {
            algo: id,
            algo_name: "test",
            ok: true,
            time,
            memory,
            deterministic,
            math: MathType::Fma,
        }
    }

    fn key(deterministic: bool) -> Key {
        Key {
            n: 1,
            c: 1,
            h: 3,
            w: 3,
            o: 1,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
            tf32: false,
            deterministic,
        }
    }

    fn pick(results: &[Perf], deterministic: bool) -> Option<Code> {
        pick_timed(results, &key(deterministic), 1 << 20).map(|p| p.algo)
    }

    #[test]
    fn deterministic_mode_accepts_deterministic_results_only() {
        // Fastest first, as cuDNN sorts them: a non-deterministic one, a deterministic one 50 %
        // slower (beyond the 10 % slack), and a faster deterministic one whose 1 GB workspace
        // does not fit the 1 MB offered.
        let t = timed;
        let results = [
            t(0, 1.0, false, 0),
            t(1, 1.2, true, 1 << 30),
            t(2, 1.5, true, 1 << 10),
        ];
        assert_eq!(pick(&results, false), Some(0), "default: the fastest");
        assert_eq!(
            pick(&results, true),
            Some(2),
            "the fastest deterministic that fits"
        );
        assert_eq!(pick(&results[..2], true), None, "no deterministic one fits");
        // Within the slack the default prefers the deterministic one too.
        let close = [t(0, 1.0, false, 0), t(1, 1.05, true, 0)];
        assert_eq!(pick(&close, false), Some(1));
        assert_eq!(pick(&close, true), Some(1));
    }
}
