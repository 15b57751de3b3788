//! `allconv report`: report.md, report.csv, table3.csv and curves from run folders.
//!
//! The numbers come from `allconv-report` (metrics.csv and result.json only); this module adds
//! what needs the trainer's config module: the grid expected (the runs root's `grid.json`,
//! written by `allconv reproduce`), the settings and the provenance recorded in each run's
//! `config.yaml`.

use allconv_runs::{errln, outln};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use allconv_runs::RunsRoot;
use allconv_train::config::SavedRunConfig;
use allconv_train::{ExperimentGrid, GridFile};
use allconv_vocab::{Device, Precision};
use anyhow::Context;

/// Flags of `allconv report`.
#[derive(clap::Args)]
pub struct Args {
    /// Root of the run folders (`<runs>/<model>/lr-<lr>/seed-<seed>/`). A folder holding
    /// several experiments' roots (`runs/quick`, `runs/paper`, each with a grid.json) gets one
    /// report per experiment.
    #[arg(long, default_value = "runs")]
    pub runs: PathBuf,
    /// Where to write report.md, report.csv, table3.csv and figures/ (default `<runs>/report`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `allconv report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let roots = experiment_roots(&args.runs)?;
    if roots.len() > 1 && args.out.is_some() {
        anyhow::bail!(
            "{} holds {} experiments ({}); pass one of them as --runs to use --out",
            args.runs.display(),
            roots.len(),
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for root in roots {
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| RunsRoot::new(&root).report_dir());
        let written = write(&root, &out)?;
        for bad in &written.unreadable {
            errln!(
                "warning: {}: {}; left out of the report (listed in it)",
                bad.dir.display(),
                bad.reason
            );
        }
        outln!("{}", written.markdown.display());
    }
    Ok(())
}

/// The runs roots to report on: `runs` itself when it holds run folders or a grid.json, else
/// each subfolder that holds a grid.json (the layout `allconv reproduce` leaves for several
/// experiments, e.g. `runs/quick` and `runs/paper`) or run folders of its own (so runs in no
/// grid.json are reported too, never left out).
fn experiment_roots(runs: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if runs.exists() && !runs.is_dir() {
        anyhow::bail!(
            "--runs {}: a file, not a folder; pass the root of the run folders (the `out.runs` \
             of the experiment, e.g. runs/quick)",
            runs.display()
        );
    }
    if !runs.is_dir() {
        anyhow::bail!(
            "runs folder {} does not exist (train something first, or pass --runs)",
            runs.display()
        );
    }
    if RunsRoot::new(runs).grid_path().exists() || !allconv_runs::scan(runs)?.is_empty() {
        return Ok(vec![runs.to_path_buf()]);
    }
    let mut roots: Vec<PathBuf> = std::fs::read_dir(runs)
        .with_context(|| format!("reading {}", runs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            RunsRoot::new(p).grid_path().exists()
                || allconv_runs::scan(p).is_ok_and(|runs| !runs.is_empty())
        })
        .collect();
    roots.sort();
    if roots.is_empty() {
        anyhow::bail!(
            "no run folders (<model>/lr-<lr>/seed-<seed>/) and no experiment with a grid.json under {}",
            runs.display()
        );
    }
    Ok(roots)
}

/// Writes the report of the runs under `runs` into `out` (see [`allconv_report::write_report`]).
pub fn write(runs: &Path, out: &Path) -> anyhow::Result<allconv_report::WrittenReport> {
    let expected = expected_points(runs)?;
    let (settings, provenance, data, experiments) = recorded_settings(runs)?;
    // Runs of different data sets or augmentation never share a table: such a root is refused
    // with what it holds, instead of comparing any of them with the wrong number.
    let experiment = match experiments.len() {
        0 => allconv_report::paper::Experiment::Table3,
        1 => experiments
            .into_iter()
            .next()
            .map(|(e, _)| e)
            .unwrap_or_default(),
        _ => anyhow::bail!(
            "{} holds runs of different experiments ({}); give each its own out.runs and \
             report them separately",
            runs.display(),
            experiments
                .iter()
                .map(|(e, dirs)| format!(
                    "{}: {} run(s), e.g. {}",
                    e.data(),
                    dirs.len(),
                    dirs[0].display()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    allconv_report::write_report(&allconv_report::ReportOptions {
        runs_root: runs.to_path_buf(),
        out_dir: out.to_path_buf(),
        expected,
        settings,
        provenance,
        data,
        experiment,
    })
    .with_context(|| {
        format!(
            "writing the report of {} into {}",
            runs.display(),
            out.display()
        )
    })
}

/// The points of the runs root's grid file, so the report can show grid points that have not
/// started as missing.
fn expected_points(runs: &Path) -> anyhow::Result<Vec<allconv_report::GridPoint>> {
    let path = RunsRoot::new(runs).grid_path();
    if !path.exists() {
        return Ok(Vec::new());
    }
    let grid =
        GridFile::load(&path).with_context(|| format!("reading the grid {}", path.display()))?;
    let epochs = grid.experiment().ok().map(|e| e.schedule.epochs as u32);
    Ok(grid
        .points
        .iter()
        .map(|p| allconv_report::GridPoint {
            model: p.model.clone(),
            lr: p.lr,
            seed: p.seed,
            epochs,
        })
        .collect())
}

/// Flattens a JSON value into `section.key` -> text.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

type Lines = Vec<(String, String)>;

fn merge(values: BTreeMap<String, BTreeSet<String>>) -> Lines {
    values
        .into_iter()
        .map(|(key, set)| {
            let text = if set.len() == 1 {
                set.into_iter().next().unwrap_or_default()
            } else {
                format!(
                    "{} (differs between runs)",
                    set.into_iter().collect::<Vec<_>>().join(" / ")
                )
            };
            (key, text)
        })
        .collect()
}

/// Whether each run folder read the official data, by the folder.
type DataChecks = Vec<(PathBuf, allconv_report::DataCheck)>;

/// The experiments the run folders belong to, each with its folders, in the order first seen.
type Experiments = Vec<(allconv_report::paper::Experiment, Vec<PathBuf>)>;

/// Settings and provenance recorded in the runs' `config.yaml` files, merged over runs, and
/// whether each run read the official data (judged from its recorded md5 sums, so folders
/// written before `provenance.official` existed are judged too).
fn recorded_settings(runs: &Path) -> anyhow::Result<(Lines, Lines, DataChecks, Experiments)> {
    let mut recorded = Recorded::default();
    if !runs.is_dir() {
        return Ok((Vec::new(), Vec::new(), Vec::new(), Vec::new()));
    }
    for found in allconv_runs::scan(runs)? {
        if let Some(saved) = read_record(&found.dir.config_path()) {
            recorded.add(found.dir.path(), &saved)?;
        }
    }
    Ok((
        merge(recorded.settings),
        merge(recorded.provenance),
        recorded.data,
        recorded.experiments,
    ))
}

/// A run folder's record, `None` without one; an unreadable one is left out with a warning.
fn read_record(path: &Path) -> Option<SavedRunConfig> {
    if !path.exists() {
        return None;
    }
    match allconv_train::config::load_yaml(path) {
        Ok(saved) => Some(saved),
        Err(e) => {
            errln!(
                "warning: {}: {e}; its settings are left out of the report",
                path.display()
            );
            None
        }
    }
}

/// What [`recorded_settings`] gathers over the run folders: every value each setting and
/// provenance line takes, and per folder its data check and experiment.
#[derive(Default)]
struct Recorded {
    settings: BTreeMap<String, BTreeSet<String>>,
    provenance: BTreeMap<String, BTreeSet<String>>,
    data: DataChecks,
    experiments: Experiments,
}

impl Recorded {
    /// Adds the record `saved` of the run folder `dir`.
    fn add(&mut self, dir: &Path, saved: &SavedRunConfig) -> anyhow::Result<()> {
        let mut flat = BTreeMap::new();
        flatten("", &serde_json::to_value(&saved.config)?, &mut flat);
        for (key, value) in flat {
            self.settings.entry(key).or_default().insert(value);
        }
        let d = &saved.config.data;
        let experiment = allconv_report::paper::Experiment::of(d.kind(), d.augment);
        match self.experiments.iter_mut().find(|(e, _)| *e == experiment) {
            Some((_, dirs)) => dirs.push(dir.to_path_buf()),
            None => self.experiments.push((experiment, vec![dir.to_path_buf()])),
        }
        let differing = saved.provenance.files_not_official();
        self.data.push((
            dir.to_path_buf(),
            if differing.is_empty() {
                allconv_report::DataCheck::Official
            } else {
                allconv_report::DataCheck::NotOfficial(differing)
            },
        ));
        for (key, value) in provenance_lines(dir, saved) {
            self.provenance.entry(key).or_default().insert(value);
        }
        Ok(())
    }
}

/// The report's provenance lines of one run folder `dir` with the record `saved`: source,
/// machine, precision, device check, data.
fn provenance_lines(dir: &Path, saved: &SavedRunConfig) -> Lines {
    let (p, d) = (&saved.provenance, &saved.config.data);
    let mut lines: Lines = Vec::new();
    let mut add = |key: String, value: String| lines.push((key, value));
    add(
        "git revision".into(),
        match p.git_dirty {
            Some(true) => format!("{} (with uncommitted changes)", p.git_revision),
            _ => p.git_revision.clone(),
        },
    );
    add("allconv version".into(), p.allconv_version.clone());
    add("device".into(), p.device.clone());
    if !p.cpu_kernels.is_empty() && saved.config.training.device == Device::Cpu {
        add("CPU".into(), p.cpu.clone());
        add("CPU kernels".into(), p.cpu_kernels.clone());
        if p.threads > 0 {
            add("threads".into(), p.threads.to_string());
        }
    }
    for line in resumes_and_changes(dir, p) {
        add(line.0, line.1);
    }
    add("precision".into(), precision(&saved.config.training));
    if let Some(line) = device_check(&saved.config.training) {
        add("device check".into(), line);
    }
    add("data folder".into(), p.data_dir.display().to_string());
    add("dataset".into(), d.kind().name().to_string());
    add(
        "augmentation".into(),
        if d.augment {
            "flips (p = 1/2) + shifts of -5..=5 pixels, zero-filled, training images only".into()
        } else {
            "none".into()
        },
    );
    for (file, md5) in &p.data_md5 {
        add(format!("md5 {file}"), md5.clone());
    }
    lines
}

/// What the report says of a run that was resumed on other hardware, or on changed data
/// (`--allow-changed-data`): one line each, naming the run folder.
fn resumes_and_changes(dir: &Path, p: &allconv_train::config::Provenance) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for change in &p.data_changes {
        lines.push((
            "data changed during a run (--allow-changed-data)".to_string(),
            format!("{}: {}", dir.display(), change.describe()),
        ));
    }
    let segments = p.all_segments();
    if segments
        .windows(2)
        .any(|w| w[0].machine() != w[1].machine())
    {
        let parts: Vec<String> = segments
            .iter()
            .map(|s| format!("from epoch {} step {} on {}", s.epoch, s.step, s.machine()))
            .collect();
        lines.push((
            "resumed on other hardware (not bit-identical to one process)".to_string(),
            format!("{}: {}", dir.display(), parts.join("; ")),
        ));
    }
    lines
}

/// The arithmetic a run used, as the report states it.
fn precision(training: &allconv_train::config::TrainingConfig) -> String {
    match (training.device, training.precision) {
        (Device::Cuda(_), Precision::Tf32) => {
            "fp32 weights, TF32 tensor-core math in convolutions and matrix products".into()
        }
        _ => "fp32 (TF32 off)".into(),
    }
}

/// What the report says about the device check of a CUDA run (none for the CPU, which has none).
fn device_check(training: &allconv_train::config::TrainingConfig) -> Option<String> {
    match (training.device, training.skip_device_check) {
        (Device::Cuda(_), true) => {
            Some("SKIPPED (training.skip_device_check): the GPU path was not checked".into())
        }
        (Device::Cuda(_), false) => Some("passed before training (allconv check)".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_states_a_skipped_device_check() {
        let mut training = allconv_train::config::TrainingConfig::default();
        assert_eq!(device_check(&training), None, "the CPU has no device check");
        training.device = Device::Cuda(0);
        assert!(device_check(&training).unwrap().starts_with("passed"));
        training.skip_device_check = true;
        assert!(device_check(&training).unwrap().starts_with("SKIPPED"));
    }

    #[test]
    fn the_report_states_tf32_only_where_it_applied() {
        let mut training = allconv_train::config::TrainingConfig::default();
        assert_eq!(precision(&training), "fp32 (TF32 off)");
        // TF32 asked for on the CPU: there are no tensor cores, the run was plain fp32.
        training.precision = Precision::Tf32;
        assert_eq!(precision(&training), "fp32 (TF32 off)");
        training.device = Device::Cuda(1);
        assert!(precision(&training).contains("TF32 tensor-core math"));
    }

    #[test]
    fn nested_settings_flatten_to_section_keys() {
        let value = serde_json::json!({
            "training": {"batch_size": 128, "device": "cpu"},
            "schedule": {"milestones": [200, 250, 300]},
            "data": {"train_subset": null}
        });
        let mut flat = BTreeMap::new();
        flatten("", &value, &mut flat);
        assert_eq!(flat["training.batch_size"], "128");
        assert_eq!(flat["training.device"], "cpu");
        assert_eq!(flat["schedule.milestones"], "[200,250,300]");
        assert_eq!(flat["data.train_subset"], "null");
    }

    #[test]
    fn values_that_differ_between_runs_are_all_listed() {
        let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        values
            .entry("schedule.epochs".into())
            .or_default()
            .insert("350".into());
        values
            .entry("schedule.epochs".into())
            .or_default()
            .insert("100".into());
        values
            .entry("training.batch_size".into())
            .or_default()
            .insert("128".into());
        let merged = merge(values);
        assert_eq!(
            merged,
            vec![
                (
                    "schedule.epochs".to_string(),
                    "100 / 350 (differs between runs)".to_string()
                ),
                ("training.batch_size".to_string(), "128".to_string()),
            ]
        );
    }
}
