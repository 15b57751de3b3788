//! The run's record in `config.yaml`: written once, when the run starts; a later process that
//! resumes the run only appends to it (its [`Segment`](crate::config::Segment), and a
//! [`DataChange`] when the data changed under the run and `--allow-changed-data` let it go on),
//! and never rewrites what was recorded before.
//!
//! A resume whose data files or preprocessing statistics differ from the record is refused,
//! naming what differs: the epochs before and after would have trained on different inputs.
//! A resume on another CPU kernel path, thread count, CPU or device goes on with a warning:
//! the numbers are then no longer those of an uninterrupted run, and the segments say where
//! each part was computed.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{DataChange, Provenance, RunConfig, SavedRunConfig};
use crate::error::{Result, TrainError};

/// The data files whose md5 differs between the record and `now` (file -> [recorded, now];
/// a missing file is "absent").
pub(super) fn changed_files(saved: &Provenance, now: &Provenance) -> BTreeMap<String, [String; 2]> {
    let recorded = saved.current_data_md5();
    let absent = || "absent".to_string();
    let files: std::collections::BTreeSet<&String> =
        recorded.keys().chain(now.data_md5.keys()).collect();
    files
        .into_iter()
        .filter_map(|file| {
            let before = recorded.get(file).cloned().unwrap_or_else(absent);
            let after = now.data_md5.get(file).cloned().unwrap_or_else(absent);
            (before != after).then(|| (file.clone(), [before, after]))
        })
        .collect()
}

fn refused(record: &Path, what: String) -> TrainError {
    TrainError::ChangedInputs {
        record: record.to_path_buf(),
        differences: what,
    }
}

/// Refuses, before the data is prepared, a resume whose data files differ from the record,
/// unless `allow`; returns the changed files.
pub(super) fn check_data_files(
    record: &Path,
    saved: &Provenance,
    now: &Provenance,
    allow: bool,
) -> Result<BTreeMap<String, [String; 2]>> {
    let changed = changed_files(saved, now);
    if !changed.is_empty() && !allow {
        let listed: Vec<String> = changed
            .iter()
            .map(|(file, [before, after])| format!("{file}: md5 recorded {before}, now {after}"))
            .collect();
        return Err(refused(
            record,
            format!(
                "the data in {} changed since the run recorded it ({})",
                now.data_dir.display(),
                listed.join("; ")
            ),
        ));
    }
    Ok(changed)
}

/// The record of a fresh run (or of one whose record was lost): `now`, with its one segment.
pub(super) fn fresh(config: &RunConfig, now: &Provenance, at: (usize, usize)) -> SavedRunConfig {
    let mut provenance = now.clone();
    provenance.segments = vec![now.segment(at.0, at.1)];
    SavedRunConfig {
        model: config.model.clone(),
        lr: config.lr,
        seed: config.seed,
        config: config.config.clone(),
        provenance,
    }
}

/// The record of a resume at `at` (epoch, step): `saved` with this process's segment (and the
/// data change `changed_files`, when there is one) appended, and the warnings to print.
/// Refuses preprocessing statistics that differ from the last segment's on the same machine
/// and data, unless `allow` (another machine may round the fit differently: that is said).
pub(super) fn resumed(
    record: &Path,
    mut saved: SavedRunConfig,
    now: &Provenance,
    at: (usize, usize),
    changed_files: BTreeMap<String, [String; 2]>,
    allow: bool,
) -> Result<(SavedRunConfig, Vec<String>)> {
    let provenance = &mut saved.provenance;
    let segments = provenance.all_segments();
    let last = segments
        .last()
        .cloned()
        .unwrap_or_else(|| now.segment(0, 0));
    let this = now.segment(at.0, at.1);
    let machine_changed = (&last.device, &last.cpu, &last.cpu_kernels, last.threads)
        != (&this.device, &this.cpu, &this.cpu_kernels, this.threads);
    let statistics_changed =
        !last.preprocessing_md5.is_empty() && last.preprocessing_md5 != this.preprocessing_md5;
    let mut warnings = Vec::new();
    if statistics_changed && changed_files.is_empty() && !machine_changed && !allow {
        return Err(refused(
            record,
            format!(
                "the preprocessing statistics differ from those the run trained on (md5 \
                 recorded {}, now {}) although the data files and the machine are the same",
                last.preprocessing_md5, this.preprocessing_md5
            ),
        ));
    }
    if !changed_files.is_empty() || (statistics_changed && !machine_changed) {
        let change = DataChange {
            epoch: at.0,
            step: at.1,
            files: changed_files,
            preprocessing_md5: statistics_changed.then(|| {
                [
                    last.preprocessing_md5.clone(),
                    this.preprocessing_md5.clone(),
                ]
            }),
        };
        warnings.push(format!(
            "the data changed under this run, and --allow-changed-data lets it go on ({}); \
             config.yaml records both checksums and the report shows it",
            change.describe()
        ));
        provenance.data_changes.push(change);
    }
    if machine_changed {
        let statistics = if statistics_changed {
            format!(
                ", and its preprocessing statistics came out differently (md5 {} -> {})",
                last.preprocessing_md5, this.preprocessing_md5
            )
        } else {
            String::new()
        };
        warnings.push(format!(
            "resuming after epoch {} step {} on {}, while the run so far trained on {}{statistics}: \
             its numbers are no longer those of an uninterrupted run (config.yaml lists where \
             each part was computed)",
            at.0,
            at.1,
            this.machine(),
            last.machine()
        ));
    }
    provenance.segments = segments;
    provenance.segments.push(this);
    Ok((saved, warnings))
}
