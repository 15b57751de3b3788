//! The arithmetic of convolutions and matrix products.

use std::fmt;
use std::str::FromStr;

use crate::word::{parse_among, serde_as_word, VocabError, Word};

/// `fp32` (exact single precision) or `tf32` (NVIDIA tensor-core math: fp32 storage, products
/// with a 10-bit mantissa; CUDA only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    /// Exact fp32.
    #[default]
    Fp32,
    /// TF32 tensor-core math in CUDA convolutions and matrix products.
    Tf32,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Tf32];

    /// The spelling: `fp32`, `tf32`.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
        }
    }

    /// `Tf32` when `tf32` is set (the configuration key `training.tf32`), else `Fp32`.
    pub const fn from_tf32(tf32: bool) -> Self {
        if tf32 {
            Precision::Tf32
        } else {
            Precision::Fp32
        }
    }

    /// Whether this is TF32.
    pub const fn is_tf32(self) -> bool {
        matches!(self, Precision::Tf32)
    }
}

impl Word for Precision {
    const WHAT: &'static str = "precision";
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("fp32", "exact fp32"),
        (
            "tf32",
            "TF32 tensor-core math in CUDA convolutions and matrix products (CUDA only)",
        ),
    ];
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = VocabError;
    fn from_str(s: &str) -> Result<Self, VocabError> {
        parse_among(s, &Precision::ALL, Precision::name)
    }
}

serde_as_word!(Precision);
