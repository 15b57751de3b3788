//! Writing a smaller copy of a data folder without ever overwriting a folder this crate did not
//! write as a subset: the target must be absent, empty, or an earlier subset (recognised by
//! its marker file), and is never the source folder or a copy of the protected data set.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::format::{load_dir_files, verify_checksums, write_split_dir, RawDataset, OFFICIAL_MD5};
use crate::{CifarError, Result};

/// The marker file a subset folder carries; its presence (with [`SUBSET_WRITER`] inside) is what
/// allows a later subset to replace the folder.
pub const SUBSET_MARKER: &str = "allconv-subset.json";
/// The `written_by` value of [`SUBSET_MARKER`].
pub const SUBSET_WRITER: &str = "allconv data subset";

/// What a subset holds and which folders it may never be written over.
#[derive(Clone, Debug)]
pub struct SubsetOptions {
    /// Images taken from the start of each of the five training files.
    pub per_train_file: usize,
    /// Images taken from the start of the test file.
    pub test: usize,
    /// `(file name, md5)` of a data set that is never overwritten, whatever marker its folder
    /// holds; [`SubsetOptions::new`] sets the official CIFAR-10 sums ([`OFFICIAL_MD5`]).
    pub protected_md5: Vec<(String, String)>,
}

impl SubsetOptions {
    /// The first `per_train_file` images of every training file and the first `test` test
    /// images, never written over the official data.
    pub fn new(per_train_file: usize, test: usize) -> Self {
        SubsetOptions {
            per_train_file,
            test,
            protected_md5: OFFICIAL_MD5
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
        }
    }
}

/// The content of [`SUBSET_MARKER`].
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    written_by: String,
    source: PathBuf,
    per_train_file: usize,
    test: usize,
    /// False while the files are being written: an interrupted subset stays recognisable as
    /// ours (and replaceable) but says it is incomplete.
    complete: bool,
}

/// Writes the subset of `source` described by `opts` into `target` (the official layout, plus
/// [`SUBSET_MARKER`]) and returns it. Refused, before anything is written, when `target` is
/// `source`, holds the protected data set, or is a non-empty folder without the marker.
pub fn write_subset_dir(source: &Path, target: &Path, opts: &SubsetOptions) -> Result<RawDataset> {
    check_target(source, target, opts)?;
    let subset = load_dir_files(source)?.subset(opts.per_train_file, opts.test)?;
    std::fs::create_dir_all(target).map_err(|e| CifarError::io(target, e))?;
    let source_shown = source
        .canonicalize()
        .unwrap_or_else(|_| source.to_path_buf());
    let mut marker = Marker {
        written_by: SUBSET_WRITER.to_string(),
        source: source_shown,
        per_train_file: opts.per_train_file,
        test: opts.test,
        complete: false,
    };
    // The marker goes first, so a subset interrupted half-way can still be replaced.
    write_marker(target, &marker)?;
    write_split_dir(target, &subset)?;
    marker.complete = true;
    write_marker(target, &marker)?;
    Ok(subset)
}

fn refused(target: &Path, reason: impl Into<String>) -> CifarError {
    CifarError::SubsetTargetRefused {
        dir: target.to_path_buf(),
        reason: reason.into(),
    }
}

fn check_target(source: &Path, target: &Path, opts: &SubsetOptions) -> Result<()> {
    let entries = match std::fs::read_dir(target) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if target.exists() => return Err(refused(target, "it is not a folder")),
        Err(e) => return Err(CifarError::io(target, e)),
    };
    if let (Ok(s), Ok(t)) = (source.canonicalize(), target.canonicalize()) {
        if s == t {
            return Err(refused(target, "it is the source folder"));
        }
    }
    if entries.into_iter().next().is_none() {
        return Ok(());
    }
    if !opts.protected_md5.is_empty()
        && verify_checksums(target, opts.protected_md5.iter().map(|(f, m)| (f, m))).is_ok()
    {
        return Err(refused(
            target,
            "it holds the official data set (all six md5 sums match)",
        ));
    }
    match read_marker(target) {
        Some(_) => Ok(()),
        None => Err(refused(
            target,
            format!(
                "it is not empty and holds no {SUBSET_MARKER} from an earlier subset; \
                 move it away or pick another --to"
            ),
        )),
    }
}

fn read_marker(dir: &Path) -> Option<Marker> {
    let text = std::fs::read(dir.join(SUBSET_MARKER)).ok()?;
    serde_json::from_slice::<Marker>(&text)
        .ok()
        .filter(|m| m.written_by == SUBSET_WRITER)
}

fn write_marker(dir: &Path, marker: &Marker) -> Result<()> {
    let path = dir.join(SUBSET_MARKER);
    let mut text = serde_json::to_vec_pretty(marker)
        .map_err(|e| CifarError::other(&path, format!("encoding: {e}")))?;
    text.push(b'\n');
    std::fs::write(&path, text).map_err(|e| CifarError::io(&path, e))
}
