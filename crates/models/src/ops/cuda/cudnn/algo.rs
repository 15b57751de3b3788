//! Algorithm choice, once per plan and direction: cuDNN's timing (`cudnnFind*AlgorithmEx`) on
//! the first call's buffers, the heuristics when timing is impossible, and the rules a result
//! must pass (workspace, math type, determinism); see the `cudnn` module documentation.

use std::ffi::{c_int, c_void};
use std::fmt;
use std::sync::Arc;

use candle_core::Result;
use cudarc::cudnn::sys;
use cudarc::driver::CudaStream;

use super::desc::ConvDesc;
use super::state::raw_mut;
use super::{check, cudnn_error, Key};

/// Largest workspace an algorithm may ask for: a cap (not a measurement) that keeps the FFT
/// variants from claiming gigabytes next to other training processes on the same card.
pub(super) const WORKSPACE_LIMIT: usize = 512 << 20;

/// A deterministic algorithm is preferred if it is at most this factor slower than the fastest.
const DETERMINISTIC_SLACK: f32 = 1.10;

/// The fields shared by cuDNN's three `*AlgoPerf_t` result structs.
pub(super) trait Perf: Copy {
    type Algo: Copy + fmt::Debug;
    fn algo(&self) -> Self::Algo;
    fn ok(&self) -> bool;
    fn time(&self) -> f32;
    fn memory(&self) -> usize;
    fn deterministic(&self) -> bool;
    fn math(&self) -> sys::cudnnMathType_t;
}

macro_rules! perf {
    ($perf:ty, $algo:ty) => {
        impl Perf for $perf {
            type Algo = $algo;
            fn algo(&self) -> $algo {
                self.algo
            }
            fn ok(&self) -> bool {
                self.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
            }
            fn time(&self) -> f32 {
                self.time
            }
            fn memory(&self) -> usize {
                self.memory
            }
            fn deterministic(&self) -> bool {
                self.determinism == sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC
            }
            fn math(&self) -> sys::cudnnMathType_t {
                self.mathType
            }
        }
    };
}

perf!(
    sys::cudnnConvolutionFwdAlgoPerf_t,
    sys::cudnnConvolutionFwdAlgo_t
);
perf!(
    sys::cudnnConvolutionBwdDataAlgoPerf_t,
    sys::cudnnConvolutionBwdDataAlgo_t
);
perf!(
    sys::cudnnConvolutionBwdFilterAlgoPerf_t,
    sys::cudnnConvolutionBwdFilterAlgo_t
);

/// Whether a result's math type is allowed: without TF32 only plain FMA kernels (tensor-core
/// results are skipped); never the fp16 down-conversion of TENSOR_OP_MATH_ALLOW_CONVERSION.
fn math_allowed(math: sys::cudnnMathType_t, tf32: bool) -> bool {
    use sys::cudnnMathType_t as M;
    match math {
        M::CUDNN_FMA_MATH | M::CUDNN_DEFAULT_MATH => true,
        M::CUDNN_TENSOR_OP_MATH => tf32,
        M::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION => false,
    }
}

/// The math type a convolution descriptor starts with (see the module documentation).
pub(super) fn requested_math(tf32: bool) -> sys::cudnnMathType_t {
    if tf32 {
        sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
    } else {
        sys::cudnnMathType_t::CUDNN_FMA_MATH
    }
}

/// Whether a result may be chosen for `key`'s plan: it ran, its workspace fits `workspace`,
/// its math type is allowed, and it is deterministic if [`crate::ops::set_deterministic`] asked
/// for that when the plan was made.
fn usable<P: Perf>(p: &P, key: &Key, workspace: usize) -> bool {
    p.ok()
        && p.memory() <= workspace
        && math_allowed(p.math(), key.tf32)
        && (p.deterministic() || !key.deterministic)
}

/// Picks from timed results (sorted fastest first by cuDNN): the fastest usable one, or a
/// deterministic one within [`DETERMINISTIC_SLACK`] of it (in deterministic mode every usable
/// one is deterministic, so the fastest of those).
fn pick_timed<P: Perf>(results: &[P], key: &Key, workspace: usize) -> Option<P> {
    let usable: Vec<P> = results
        .iter()
        .copied()
        .filter(|p| usable(p, key, workspace))
        .collect();
    let fastest = *usable.first()?;
    let deterministic = usable
        .iter()
        .find(|p| p.deterministic() && p.time() <= fastest.time() * DETERMINISTIC_SLACK);
    Some(*deterministic.unwrap_or(&fastest))
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
pub(super) struct Choice<A> {
    pub(super) algo: A,
    pub(super) math: sys::cudnnMathType_t,
    pub(super) workspace: usize,
    pub(super) deterministic: bool,
    pub(super) source: Source,
}

impl<A: fmt::Debug> fmt::Display for Choice<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algo = format!("{:?}", self.algo);
        let algo = algo
            .trim_start_matches("CUDNN_CONVOLUTION_FWD_ALGO_")
            .trim_start_matches("CUDNN_CONVOLUTION_BWD_DATA_ALGO_")
            .trim_start_matches("CUDNN_CONVOLUTION_BWD_FILTER_ALGO_");
        let math = format!("{:?}", self.math);
        write!(
            f,
            "{algo} ({}, {}, workspace {} B, ",
            math.trim_start_matches("CUDNN_"),
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
/// sizes a temporary buffer, `find` times the algorithms on it, [`pick_timed`] chooses.
pub(super) fn choose<P: Perf>(
    stream: &Arc<CudaStream>,
    max_count: impl FnOnce(&mut c_int) -> sys::cudnnStatus_t,
    heuristic: impl FnOnce(c_int, &mut c_int, *mut P) -> sys::cudnnStatus_t,
    find: impl FnOnce(c_int, &mut c_int, *mut P, *mut c_void, usize) -> sys::cudnnStatus_t,
    (op, step, key): (&str, &str, &Key),
) -> Result<(P, Source)> {
    let mut count: c_int = 0;
    check(
        op,
        &format!("{step}: algorithm count"),
        key,
        max_count(&mut count),
    )?;
    let capacity = count.max(1) as usize;
    // SAFETY: the perf structs are plain C data (enums whose zero value is valid, floats,
    // integers); cuDNN overwrites the first `returned` entries.
    let zeroed: P = unsafe { std::mem::zeroed() };
    let mut heuristics = vec![zeroed; capacity];
    let mut returned: c_int = 0;
    check(
        op,
        &format!("{step}: heuristics"),
        key,
        heuristic(capacity as c_int, &mut returned, heuristics.as_mut_ptr()),
    )?;
    heuristics.truncate(returned.max(0) as usize);
    let find_bytes = heuristics
        .iter()
        .filter(|p| usable(*p, key, WORKSPACE_LIMIT))
        .map(|p| p.memory())
        .max()
        .unwrap_or(0);

    let mut timed = if find_bytes == 0 {
        None
    } else {
        // SAFETY: scratch memory, only written by cuDNN.
        unsafe { stream.alloc::<u8>(find_bytes) }.ok()
    };
    if find_bytes == 0 || timed.is_some() {
        let (ws, ws_len, guard) = raw_mut(&mut timed, stream);
        let mut results = vec![zeroed; capacity];
        let mut returned: c_int = 0;
        let found = find(
            capacity as c_int,
            &mut returned,
            results.as_mut_ptr(),
            ws,
            ws_len,
        );
        drop(guard);
        if found == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            results.truncate(returned.max(0) as usize);
            if let Some(p) = pick_timed(&results, key, ws_len) {
                return Ok((p, Source::Timed(p.time())));
            }
        }
    }
    // Timing was impossible (no memory for its workspace, or cuDNN refused): fall back to the
    // heuristics' order, which is cuDNN's own estimate of speed.
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
            candle_core::Error::Msg(format!(
                "{op}: cuDNN has no usable {kind}{step} algorithm for {key} within a workspace \
                 of {WORKSPACE_LIMIT} B"
            ))
            .bt()
        })
}

/// Turns a picked result into a [`Choice`]: the direction's descriptor gets the result's math
/// type (only with TF32; without it the descriptor stays FMA-only) and the workspace size is
/// asked for that exact configuration.
pub(super) fn settle<P: Perf>(
    conv: &ConvDesc,
    (picked, source): (P, Source),
    tf32: bool,
    workspace_size: impl FnOnce(P::Algo, &mut usize) -> sys::cudnnStatus_t,
    (op, step, key): (&str, &str, &Key),
) -> Result<Choice<P::Algo>> {
    let math = if tf32 {
        picked.math()
    } else {
        sys::cudnnMathType_t::CUDNN_FMA_MATH
    };
    conv.set_math(math)
        .map_err(|s| cudnn_error(op, &format!("{step}: math type"), key, s))?;
    let mut bytes = 0usize;
    check(
        op,
        &format!("{step}: workspace size"),
        key,
        workspace_size(picked.algo(), &mut bytes),
    )?;
    Ok(Choice {
        algo: picked.algo(),
        math,
        workspace: bytes.max(picked.memory()),
        deterministic: picked.deterministic(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timed result with only the fields that the choice reads.
    #[derive(Debug, Clone, Copy)]
    struct Timed {
        id: u8,
        time: f32,
        deterministic: bool,
        memory: usize,
    }

    impl Perf for Timed {
        type Algo = u8;
        fn algo(&self) -> u8 {
            self.id
        }
        fn ok(&self) -> bool {
            true
        }
        fn time(&self) -> f32 {
            self.time
        }
        fn memory(&self) -> usize {
            self.memory
        }
        fn deterministic(&self) -> bool {
            self.deterministic
        }
        fn math(&self) -> sys::cudnnMathType_t {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
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

    fn pick(results: &[Timed], deterministic: bool) -> Option<u8> {
        pick_timed(results, &key(deterministic), 1 << 20).map(|p| p.id)
    }

    #[test]
    fn deterministic_mode_accepts_deterministic_results_only() {
        // Fastest first, as cuDNN sorts them: a non-deterministic one, a deterministic one 50 %
        // slower (beyond the 10 % slack), and a faster deterministic one whose 1 GB workspace
        // does not fit the 1 MB offered.
        let t = |id, time, deterministic, memory| Timed {
            id,
            time,
            deterministic,
            memory,
        };
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
