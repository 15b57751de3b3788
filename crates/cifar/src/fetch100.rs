//! Acquiring CIFAR-100: the official binary tarball, md5-verified, unpacked into a temporary
//! folder next to the target and renamed only once every file has passed the strict reader.
//!
//! There is no second route (no mirror of CIFAR-100's binary release is known to reach machines
//! without access to the official site), and no published table of per-file md5 sums, so the
//! tarball's md5 and the full validation of both files (record count, every label) are the
//! checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cifar100::{
    read_cifar100_split, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, COARSE_LABEL_NAMES,
    FINE_LABEL_NAMES,
};
use crate::fetch::{
    download, extract_named, fresh_dir, remove_stale_temporaries, temporary_name, FetchOutcome,
    DOWNLOAD, PARTIAL,
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
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cifar-100-binary".to_string());
    remove_stale_temporaries(&parent, &name, opts.quiet);
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| CifarError::io(dir, e))?
            .next()
            .is_none();
        if !empty {
            return match verify_cifar100_dir(dir, &opts.records) {
                Ok(()) => Ok(FetchOutcome::AlreadyPresent),
                Err(e) => Err(CifarError::ExistingInvalid {
                    dir: dir.to_path_buf(),
                    reason: e.to_string(),
                }),
            };
        }
    }
    std::fs::create_dir_all(&parent).map_err(|e| CifarError::io(&parent, e))?;
    let staging = parent.join(temporary_name(&name, PARTIAL, std::process::id()));
    let work = parent.join(temporary_name(&name, DOWNLOAD, std::process::id()));
    let route = format!("official tarball {}", opts.tarball_url);
    if !opts.quiet {
        eprintln!("trying {route}");
    }
    let result = fresh_dir(&staging)
        .and_then(|()| fresh_dir(&work))
        .and_then(|()| via_tarball(&staging, &work, opts))
        .and_then(|()| verify_cifar100_dir(&staging, &opts.records));
    let _ = std::fs::remove_dir_all(&work);
    match result {
        Ok(()) => {
            if dir.exists() {
                // Only an empty folder gets here (checked above).
                std::fs::remove_dir(dir).map_err(|e| CifarError::io(dir, e))?;
            }
            std::fs::rename(&staging, dir).map_err(|e| CifarError::io(dir, e))?;
            Ok(FetchOutcome::Fetched { route })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(CifarError::FetchFailed {
                dir: dir.to_path_buf(),
                attempts: vec![(route, e.to_string())],
            })
        }
    }
}

fn via_tarball(staging: &Path, work: &Path, opts: &Cifar100FetchOptions) -> Result<()> {
    let archive = work.join("cifar-100-binary.tar.gz");
    download(
        &opts.tarball_url,
        &archive,
        opts.tarball_md5.as_deref(),
        opts.timeout,
        opts.progress,
    )?;
    let wanted = [
        CIFAR100_TRAIN_FILE,
        CIFAR100_TEST_FILE,
        FINE_LABEL_NAMES,
        COARSE_LABEL_NAMES,
    ];
    let found = extract_named(&archive, &wanted, staging)?;
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !found.iter().any(|f| f == w))
        .collect();
    if !missing.is_empty() {
        return Err(CifarError::io(
            Path::new(&opts.tarball_url),
            std::io::Error::other(format!("the tarball lacks {}", missing.join(", "))),
        ));
    }
    Ok(())
}
