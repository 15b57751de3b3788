//! Where tensors live: the CPU or one CUDA GPU by its number.

use std::fmt;
use std::str::FromStr;

use crate::word::{serde_as_word, VocabError, Word};

/// `training.device`, `--device`: `cpu`, or `cuda:N` for GPU N as this process sees it (after
/// `CUDA_VISIBLE_DEVICES`); `cuda` alone is GPU 0 and is written back as `cuda:0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// The CUDA GPU with this number (needs a build with the `cuda` feature).
    Cuda(usize),
}

impl Device {
    /// Whether this is a CUDA GPU.
    pub const fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// The GPU number; `None` for the CPU.
    pub const fn cuda_index(self) -> Option<usize> {
        match self {
            Device::Cpu => None,
            Device::Cuda(n) => Some(n),
        }
    }
}

impl Word for Device {
    const WHAT: &'static str = "device";
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("cpu", "the CPU"),
        ("cuda", "CUDA GPU 0 (the same as cuda:0)"),
        (
            "cuda:N",
            "CUDA GPU number N, as CUDA_VISIBLE_DEVICES leaves them numbered",
        ),
    ];
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = VocabError;
    fn from_str(s: &str) -> Result<Self, VocabError> {
        let text = s.trim().to_ascii_lowercase();
        // No aliases (`gpu`): what was asked is what the run records.
        match text.split_once(':') {
            None if text == "cpu" => Ok(Device::Cpu),
            None if text == "cuda" => Ok(Device::Cuda(0)),
            Some(("cuda", n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse()
                .map(Device::Cuda)
                .map_err(|_| VocabError::unknown::<Device>(s)),
            _ => Err(VocabError::unknown::<Device>(s)),
        }
    }
}

serde_as_word!(Device);
