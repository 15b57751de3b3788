//! Preprocessing fitted on the training part only and applied unchanged to validation and test:
//! `scale`, `standardize`, and the paper's `gcn_zca` (pylearn2's global contrast normalisation
//! followed by ZCA whitening), with the fitted ZCA cached in a safetensors file.
//!
//! The parts: `options` (what to apply), `split` (training subset, validation split, test
//! subset), `normalize` (GCN and per-channel standardisation), `zca` (the whitening's linear
//! algebra), `cache` (the checksummed file a ZCA fit is kept in) and `prepare` (the order in
//! which they are applied to the splits).

mod cache;
mod normalize;
mod options;
mod prepare;
mod split;
mod zca;

pub use cache::{default_cache_dir, zca_cache_file};
pub use normalize::gcn;
pub use options::{PrepareOptions, Preprocessing};
pub use prepare::{prepare, prepare_test, Prepared, Split};
pub use zca::{zca_fit, Zca};
