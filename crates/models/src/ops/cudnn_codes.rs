//! cuDNN's enumerations as cuDNN writes them: plain integers, decoded here into what the CUDA
//! convolutions use, with an error naming the number for a value this build does not know.
//!
//! Why integers: a Rust `#[repr(u32)]` enum that receives a value outside its variants is
//! undefined behaviour, and a newer cuDNN may return a status, algorithm or math type that
//! the bindings (written for 9.x) lack. So every value cuDNN writes (statuses, the fields of
//! its algorithm-performance structs) is read as a `u32` and decoded by these functions,
//! which know nothing of CUDA and are tested without a GPU.

// Used only by the `cuda` feature's cuDNN code (and the tests below).
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use std::fmt;

/// A cuDNN enumeration value as cuDNN writes it.
pub(crate) type Code = u32;

/// `CUDNN_STATUS_SUCCESS`; every other status is a failure.
pub(crate) const STATUS_SUCCESS: Code = 0;

/// A value cuDNN wrote that this build has no name for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnknownCode {
    /// What the value is, e.g. `forward algorithm`.
    pub(crate) what: &'static str,
    /// The value.
    pub(crate) code: Code,
}

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cuDNN wrote {} {}, a value this build does not know (it was written for cuDNN 9.x)",
            self.what, self.code
        )
    }
}

/// The three directions of a convolution, each with its own algorithm enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `cudnnConvolutionFwdAlgo_t`.
    Forward,
    /// `cudnnConvolutionBwdDataAlgo_t`.
    BackwardData,
    /// `cudnnConvolutionBwdFilterAlgo_t`.
    BackwardFilter,
}

impl Direction {
    fn algorithms(self) -> &'static [&'static str] {
        // In code order (cudnn_cnn.h); the enumerations' COUNT values are not algorithms.
        match self {
            Self::Forward => &[
                "IMPLICIT_GEMM",
                "IMPLICIT_PRECOMP_GEMM",
                "GEMM",
                "DIRECT",
                "FFT",
                "FFT_TILING",
                "WINOGRAD",
                "WINOGRAD_NONFUSED",
            ],
            Self::BackwardData => &[
                "ALGO_0",
                "ALGO_1",
                "FFT",
                "FFT_TILING",
                "WINOGRAD",
                "WINOGRAD_NONFUSED",
            ],
            Self::BackwardFilter => &[
                "ALGO_0",
                "ALGO_1",
                "FFT",
                "ALGO_3",
                "WINOGRAD",
                "WINOGRAD_NONFUSED",
                "FFT_TILING",
            ],
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Forward => "forward algorithm",
            Self::BackwardData => "backward-data algorithm",
            Self::BackwardFilter => "backward-filter algorithm",
        }
    }
}

/// The name of algorithm `code` of `direction` (without the `CUDNN_CONVOLUTION_..._ALGO_`
/// prefix).
pub(crate) fn algorithm_name(
    direction: Direction,
    code: Code,
) -> Result<&'static str, UnknownCode> {
    direction
        .algorithms()
        .get(code as usize)
        .copied()
        .ok_or(UnknownCode {
            what: direction.what(),
            code,
        })
}

/// `cudnnMathType_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MathType {
    /// `CUDNN_DEFAULT_MATH` (0): tensor cores allowed for fp32 data as TF32 on Ampere and newer.
    Default,
    /// `CUDNN_TENSOR_OP_MATH` (1).
    TensorOp,
    /// `CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION` (2): may convert fp32 down to fp16.
    TensorOpAllowConversion,
    /// `CUDNN_FMA_MATH` (3): plain FMA kernels, exact fp32.
    Fma,
}

impl MathType {
    /// Decodes a math type cuDNN wrote.
    pub(crate) fn from_code(code: Code) -> Result<Self, UnknownCode> {
        match code {
            0 => Ok(Self::Default),
            1 => Ok(Self::TensorOp),
            2 => Ok(Self::TensorOpAllowConversion),
            3 => Ok(Self::Fma),
            _ => Err(UnknownCode {
                what: "math type",
                code,
            }),
        }
    }

    /// The value cuDNN takes.
    pub(crate) fn code(self) -> Code {
        match self {
            Self::Default => 0,
            Self::TensorOp => 1,
            Self::TensorOpAllowConversion => 2,
            Self::Fma => 3,
        }
    }

    /// Without the `CUDNN_` prefix, e.g. `FMA_MATH`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT_MATH",
            Self::TensorOp => "TENSOR_OP_MATH",
            Self::TensorOpAllowConversion => "TENSOR_OP_MATH_ALLOW_CONVERSION",
            Self::Fma => "FMA_MATH",
        }
    }
}

/// Decodes a `cudnnDeterminism_t`: whether the algorithm gives the same bits on every run.
pub(crate) fn deterministic(code: Code) -> Result<bool, UnknownCode> {
    match code {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(UnknownCode {
            what: "determinism",
            code,
        }),
    }
}

/// One `cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t` as cuDNN lays it out (the three
/// share this layout), every enumeration an integer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RawPerf {
    /// The algorithm, in the direction's enumeration.
    pub(crate) algo: Code,
    /// Whether it ran (`STATUS_SUCCESS`) or why not.
    pub(crate) status: Code,
    /// Milliseconds (timed results) or an estimate (heuristics).
    pub(crate) time: f32,
    /// Workspace bytes it needs.
    pub(crate) memory: usize,
    /// `cudnnDeterminism_t`.
    pub(crate) determinism: Code,
    /// `cudnnMathType_t` it ran with.
    pub(crate) math_type: Code,
    /// Reserved by cuDNN.
    pub(crate) reserved: [i32; 3],
}

/// A [`RawPerf`] whose values are all known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Perf {
    /// The algorithm's code, passed back to cuDNN as it was written.
    pub(crate) algo: Code,
    /// Its name, from [`algorithm_name`].
    pub(crate) algo_name: &'static str,
    /// Whether it ran.
    pub(crate) ok: bool,
    /// See [`RawPerf::time`].
    pub(crate) time: f32,
    /// See [`RawPerf::memory`].
    pub(crate) memory: usize,
    /// Whether it is deterministic.
    pub(crate) deterministic: bool,
    /// Its math type.
    pub(crate) math: MathType,
}

impl RawPerf {
    /// Decodes a result of `direction`. A failed status is a result that did not run (any
    /// value is a failure, known or not); an unknown algorithm, determinism or math type is an
    /// error naming the number.
    pub(crate) fn decode(&self, direction: Direction) -> Result<Perf, UnknownCode> {
        let ok = self.status == STATUS_SUCCESS;
        Ok(Perf {
            algo: self.algo,
            algo_name: algorithm_name(direction, self.algo)?,
            ok,
            time: self.time,
            memory: self.memory,
            deterministic: deterministic(self.determinism)?,
            math: MathType::from_code(self.math_type)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values: cuDNN 9's cudnn_cnn.h and cudnn_graph.h (the enumerations' definitions).

    #[test]
    fn algorithms_decode_by_direction_and_their_counts_are_not_algorithms() {
        assert_eq!(
            algorithm_name(Direction::Forward, 1),
            Ok("IMPLICIT_PRECOMP_GEMM")
        );
        assert_eq!(
            algorithm_name(Direction::Forward, 7),
            Ok("WINOGRAD_NONFUSED")
        );
        assert_eq!(algorithm_name(Direction::BackwardData, 3), Ok("FFT_TILING"));
        assert_eq!(algorithm_name(Direction::BackwardFilter, 3), Ok("ALGO_3"));
        assert_eq!(
            algorithm_name(Direction::BackwardFilter, 6),
            Ok("FFT_TILING")
        );
        // CUDNN_CONVOLUTION_FWD_ALGO_COUNT = 8, BWD_DATA 6, BWD_FILTER 7.
        for (direction, count) in [
            (Direction::Forward, 8),
            (Direction::BackwardData, 6),
            (Direction::BackwardFilter, 7),
        ] {
            let err = algorithm_name(direction, count).unwrap_err();
            assert_eq!(err.code, count);
            let text = err.to_string();
            assert!(text.contains(&format!("algorithm {count},")), "{text}");
        }
    }

    #[test]
    fn math_types_round_trip_and_an_unknown_one_is_named() {
        for code in 0..4 {
            assert_eq!(MathType::from_code(code).unwrap().code(), code);
        }
        assert_eq!(MathType::from_code(3), Ok(MathType::Fma));
        let err = MathType::from_code(4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cuDNN wrote math type 4, a value this build does not know (it was written for \
             cuDNN 9.x)"
        );
    }

    #[test]
    fn a_perf_struct_decodes_and_fails_on_any_unknown_field() {
        let raw = RawPerf {
            algo: 6,
            status: STATUS_SUCCESS,
            time: 0.5,
            memory: 1024,
            determinism: 1,
            math_type: 1,
            reserved: [0; 3],
        };
        let perf = raw.decode(Direction::Forward).unwrap();
        assert_eq!(perf.algo_name, "WINOGRAD");
        assert!(perf.ok && perf.deterministic);
        assert_eq!(perf.math, MathType::TensorOp);
        // A failed status is a result that did not run, whatever its number
        // (3000 = CUDNN_STATUS_NOT_SUPPORTED; 7777 is no status cuDNN 9 has).
        for status in [3000, 7777] {
            let failed = RawPerf { status, ..raw };
            assert!(!failed.decode(Direction::Forward).unwrap().ok);
        }
        let determinism = RawPerf {
            determinism: 2,
            ..raw
        };
        let err = determinism.decode(Direction::Forward).unwrap_err();
        assert_eq!((err.what, err.code), ("determinism", 2));
        let algo = RawPerf { algo: 9, ..raw };
        let err = algo.decode(Direction::BackwardFilter).unwrap_err();
        assert_eq!((err.what, err.code), ("backward-filter algorithm", 9));
    }

    #[test]
    fn the_perf_layout_is_cudnns() {
        // cudnnConvolutionFwdAlgoPerf_t: two 4-byte enums, a float, a size_t (8-aligned), two
        // enums and int reserved[3]: 4 + 4 + 4 + 4 (padding) + 8 + 4 + 4 + 12 = 44, padded to 48.
        assert_eq!(std::mem::size_of::<RawPerf>(), 48);
        assert_eq!(std::mem::offset_of!(RawPerf, memory), 16);
        assert_eq!(std::mem::offset_of!(RawPerf, math_type), 28);
    }
}
