#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod dataset;
mod device;
mod precision;
mod word;

#[cfg(feature = "clap")]
mod clap_parser;

pub use dataset::{Dataset, DatasetKind, LabelSet};
pub use device::Device;
pub use precision::Precision;
pub use word::{VocabError, Word};

#[cfg(feature = "clap")]
pub use clap_parser::WordParser;
