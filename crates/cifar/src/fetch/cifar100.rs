//! Acquiring CIFAR-100: the official binary tarball, md5-verified, unpacked into a temporary
//! folder next to the target and renamed only once every file has passed the strict reader.
//!
//! There is no second route (no mirror of CIFAR-100's binary release is known to reach machines
//! without access to the official site), and no published table of per-file md5 sums, so the
//! tarball's md5 and the full validation of both files (record count, every label) are the
//! checks.

use std::path::Path;
use std::time::Duration;

use super::outcome::FetchOutcome;
use super::staging::{fetch_staged, Fill, Route};
use super::tarball::Tarball;
use crate::cifar100::read_cifar100_split;
use crate::layout::{
    CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, COARSE_LABEL_NAMES, FINE_LABEL_NAMES,
};
use crate::{CifarError, Result};

/// Where CIFAR-100's binary release is published.
pub const CIFAR100_TARBALL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
/// md5 of [`CIFAR100_TARBALL_URL`], as the data set's page (https://www.cs.toronto.edu/~kriz/
/// cifar.html) lists it for "CIFAR-100 binary version"; the same value is used by public
/// loaders, e.g. mindspore-lab/mindcv (`Cifar100Download`).
pub const CIFAR100_TARBALL_MD5: &str = "03b5dce01913d631647c71ecec9e9cb8";
/// Records in the official `train.bin` and `test.bin`.
pub const CIFAR100_RECORDS: [(&str, usize); 2] =
    [(CIFAR100_TRAIN_FILE, 50_000), (CIFAR100_TEST_FILE, 10_000)];

/// What [`fetch_cifar100`] downloads and expects; `Default` is the official release.
#[derive(Clone, Debug)]
pub struct Cifar100FetchOptions {
    /// The tarball to download.
    pub tarball_url: String,
    /// Its expected md5 (`None`: not checked; the files are still validated).
    pub tarball_md5: Option<String>,
    /// `(file, records)` each unpacked file must hold; the official counts by default (tests
    /// pass their small synthetic ones).
    pub records: Vec<(String, usize)>,
    /// Connect/read timeout of the download.
    pub timeout: Duration,
    /// Draw a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Print no messages on stderr.
    pub quiet: bool,
}

impl Default for Cifar100FetchOptions {
    fn default() -> Self {
        Cifar100FetchOptions {
            tarball_url: CIFAR100_TARBALL_URL.to_string(),
            tarball_md5: Some(CIFAR100_TARBALL_MD5.to_string()),
            records: CIFAR100_RECORDS
                .iter()
                .map(|&(f, n)| (f.to_string(), n))
                .collect(),
            timeout: Duration::from_secs(30),
            progress: true,
            quiet: false,
        }
    }
}

/// Checks that `dir` holds `train.bin` and `test.bin` with the expected record counts and only
/// valid labels.
pub fn verify_cifar100_dir(dir: &Path, records: &[(String, usize)]) -> Result<()> {
    for (name, expected) in records {
        let path = dir.join(name);
        let split = read_cifar100_split(&path)?;
        if split.len() != *expected {
            return Err(CifarError::InvalidOption {
                option: "records",
                reason: format!(
                    "{} holds {} records, expected {expected}",
                    path.display(),
                    split.len()
                ),
            });
        }
    }
    Ok(())
}

/// Makes `dir` hold the CIFAR-100 binary layout (see the module docs). A folder that is not
/// empty is only checked, never written into.
pub fn fetch_cifar100(dir: &Path, opts: &Cifar100FetchOptions) -> Result<FetchOutcome> {
    let fill: Fill<'_> = Box::new(|staging: &Path, work: &Path| {
        let tarball = Tarball {
            url: &opts.tarball_url,
            md5: opts.tarball_md5.as_deref(),
            timeout: opts.timeout,
            progress: opts.progress,
        };
        let files = [
            CIFAR100_TRAIN_FILE,
            CIFAR100_TEST_FILE,
            FINE_LABEL_NAMES,
            COARSE_LABEL_NAMES,
        ];
        tarball
            .unpack(work, "cifar-100-binary.tar.gz", &files, &[], staging)
            .map(drop)
    });
    let routes = vec![Route {
        name: format!("official tarball {}", opts.tarball_url),
        fill: Some(fill),
    }];
    let verify = |folder: &Path| verify_cifar100_dir(folder, &opts.records);
    let folder = crate::dataset_folder(allconv_vocab::Dataset::Cifar100);
    fetch_staged(dir, folder, opts.quiet, routes, &verify)
}
