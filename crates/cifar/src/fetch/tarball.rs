//! Downloading a `.tar.gz` release with md5 verification and unpacking the files it should
//! hold, by base name only.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::{Digest, Md5};

use crate::layout::missing_files;
use crate::{CifarError, Result};

/// A release tarball and how to download it.
pub(crate) struct Tarball<'a> {
    /// Where it is published.
    pub(crate) url: &'a str,
    /// Its expected md5 (`None`: not checked).
    pub(crate) md5: Option<&'a str>,
    /// Connect/read timeout of the download.
    pub(crate) timeout: Duration,
    /// Draw a progress bar (only when stderr is a terminal).
    pub(crate) progress: bool,
}

impl Tarball<'_> {
    /// Downloads the tarball to `work/<archive_name>`, checks its md5 and unpacks the files named
    /// in `required` and `optional` into `staging`; fails naming the `required` files it lacks.
    /// Returns the names unpacked.
    pub(crate) fn unpack(
        &self,
        work: &Path,
        archive_name: &str,
        required: &[&str],
        optional: &[&str],
        staging: &Path,
    ) -> Result<Vec<String>> {
        let archive = work.join(archive_name);
        download(self.url, &archive, self.md5, self.timeout, self.progress)?;
        let wanted: Vec<&str> = required.iter().chain(optional).copied().collect();
        let found = extract_named(&archive, &wanted, staging)?;
        require(staging, required, Path::new(self.url), "tarball")?;
        Ok(found)
    }
}

/// Fails naming the `required` files that `unpacked` (the fresh folder [`extract_named`]
/// unpacked the archive at `source`, a `what`, into) lacks.
pub(crate) fn require(unpacked: &Path, required: &[&str], source: &Path, what: &str) -> Result<()> {
    let missing = missing_files(unpacked, required);
    if missing.is_empty() {
        return Ok(());
    }
    Err(CifarError::other(
        source,
        format!("the {what} lacks {}", missing.join(", ")),
    ))
}

/// Unpacks the regular files of a `.tar.gz` whose base name is one of `names` (at any depth)
/// into `dest`, by base name only, so no entry can write outside `dest`. Returns the names found.
pub(crate) fn extract_named(archive: &Path, names: &[&str], dest: &Path) -> Result<Vec<String>> {
    let file = File::open(archive).map_err(|e| CifarError::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| CifarError::other(archive, format!("not a tar.gz: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| CifarError::other(archive, format!("bad tar entry: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| CifarError::other(archive, format!("bad tar entry name: {e}")))?
            .into_owned();
        let Some(base) = path.file_name().and_then(|b| b.to_str()) else {
            continue;
        };
        if let Some(name) = names.iter().find(|n| **n == base) {
            let target = dest.join(name);
            let mut out = File::create(&target).map_err(|e| CifarError::io(&target, e))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| {
                CifarError::other(archive, format!("unpacking {}: {e}", path.display()))
            })?;
            found.push(name.to_string());
        }
    }
    Ok(found)
}

/// Downloads `url` to `archive` and checks its md5 against `expected` (if any); `progress`
/// draws a bar when stderr is a terminal.
fn download(
    url: &str,
    archive: &Path,
    expected: Option<&str>,
    timeout: Duration,
    progress: bool,
) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout.max(Duration::from_secs(600))))
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| CifarError::other(Path::new(url), format!("download failed: {e}")))?;
    let len = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = response.into_body().into_reader();
    let mut out = File::create(archive).map_err(|e| CifarError::io(archive, e))?;
    let mut hasher = Md5::new();
    let bar = progress_bar(len, progress);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let read = body
            .read(&mut buf)
            .map_err(|e| CifarError::other(Path::new(url), format!("download interrupted: {e}")))?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
        out.write_all(&buf[..read])
            .map_err(|e| CifarError::io(archive, e))?;
        bar.inc(read as u64);
    }
    bar.finish_and_clear();
    out.sync_all().map_err(|e| CifarError::io(archive, e))?;
    drop(out);
    let actual = format!("{:x}", hasher.finalize());
    if let Some(expected) = expected {
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(CifarError::ChecksumMismatch {
                path: PathBuf::from(url),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(())
}

fn progress_bar(len: Option<u64>, progress: bool) -> ProgressBar {
    if !progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
