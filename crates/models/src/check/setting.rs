//! The settings a check runs its cases in: precision, cuDNN's algorithm set and the
//! convolution engine, the process-wide switches training sets from its configuration.

use std::fmt;

use super::Precision;
use crate::ops::{self, ConvEngine};

/// One combination of the process-wide switches a case runs under: what a training run sets
/// from `training.tf32`, `training.deterministic` and `training.conv_engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setting {
    /// TF32 allowed or not ([`ops::set_tf32`]).
    pub precision: Precision,
    /// cuDNN restricted to deterministic algorithms ([`ops::set_deterministic`]; no effect on
    /// the CPU, whose ops are deterministic in any case).
    pub deterministic: bool,
    /// The convolution engine ([`ops::set_conv_engine`]).
    pub engine: ConvEngine,
}

impl Setting {
    /// Sets the three process-wide switches to this setting.
    pub fn apply(&self) {
        ops::set_tf32(self.precision == Precision::Tf32);
        ops::set_deterministic(self.deterministic);
        ops::set_conv_engine(self.engine);
    }

    /// The setting the switches hold now.
    pub fn current() -> Self {
        Self {
            precision: if ops::tf32() {
                Precision::Tf32
            } else {
                Precision::Fp32
            },
            deterministic: ops::deterministic(),
            engine: ops::conv_engine(),
        }
    }

    /// `det` or `free`: the short name of the algorithm set in the table.
    pub fn algorithms(&self) -> &'static str {
        if self.deterministic {
            "det"
        } else {
            "free"
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} algorithms, {} engine",
            self.precision,
            if self.deterministic {
                "deterministic"
            } else {
                "free"
            },
            self.engine
        )
    }
}

/// Every combination of `precisions`, `deterministic` and `engines`, precision first, then the
/// algorithm set, then the engine.
pub fn combinations(
    precisions: &[Precision],
    deterministic: &[bool],
    engines: &[ConvEngine],
) -> Vec<Setting> {
    let mut out = Vec::new();
    for &precision in precisions {
        for &deterministic in deterministic {
            for &engine in engines {
                let setting = Setting {
                    precision,
                    deterministic,
                    engine,
                };
                if !out.contains(&setting) {
                    out.push(setting);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_are_precision_major_and_without_repeats() {
        let all = combinations(
            &[Precision::Fp32, Precision::Tf32],
            &[true, false, true],
            &[ConvEngine::Own, ConvEngine::Candle],
        );
        // 2 precisions x 2 distinct algorithm sets x 2 engines.
        assert_eq!(all.len(), 8);
        assert_eq!(
            all[0],
            Setting {
                precision: Precision::Fp32,
                deterministic: true,
                engine: ConvEngine::Own
            }
        );
        assert_eq!(all[1].engine, ConvEngine::Candle);
        assert!(!all[2].deterministic);
        assert_eq!(all[4].precision, Precision::Tf32);
        assert_eq!(all[7].to_string(), "tf32, free algorithms, candle engine");
    }
}
