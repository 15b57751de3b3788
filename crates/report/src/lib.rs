#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod out_folder;
pub mod paper;
pub mod plot;
pub mod render;
pub mod summary;

use std::fs;
use std::path::{Path, PathBuf};

pub use out_folder::MARKER;
pub use render::thousands;
pub use summary::{DataCheck, GridPoint, RunState, Summary, UnreadableRun};

/// Everything that can go wrong while reading run folders or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run folders could not be listed (a run whose metrics.csv or result.json is not what
    /// the trainer writes is reported as unreadable instead).
    #[error(transparent)]
    Runs(#[from] allconv_runs::RunsError),
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output folder holds files the report did not write (it would replace them).
    #[error(
        "{path} {reason}: choose another output folder (an empty or new one, or one an \
         earlier report was written into)"
    )]
    NotOurs {
        /// The file that is not ours.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A figure could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// The plotting error.
        message: String,
    },
}

/// What to report on and where to write it.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Root of the run folders.
    pub runs_root: PathBuf,
    /// Folder receiving report.md, report.csv, table3.csv and figures/ (created if needed).
    pub out_dir: PathBuf,
    /// Grid points that should exist (shown as missing when they do not); may be empty.
    pub expected: Vec<GridPoint>,
    /// Configuration values the runs used, `section.key` -> value as text (a key whose value
    /// differs between runs lists every value). Read from the runs' `config.yaml` by the caller,
    /// since this crate parses no YAML; when empty, the first `config.yaml` is shown verbatim.
    pub settings: Vec<(String, String)>,
    /// Provenance lines (git revision, data checksums, device...), shown as given.
    pub provenance: Vec<(String, String)>,
    /// Whether each run folder read the official data, from its `config.yaml` (read by the
    /// caller); a folder not listed is [`DataCheck::Unknown`]. Runs not on the official data
    /// are marked in Table 3, never mixed in silently.
    pub data: Vec<(PathBuf, DataCheck)>,
    /// The paper's experiment the runs belong to (data set and augmentation, read from their
    /// `config.yaml` by the caller): chooses the published numbers they are compared with.
    pub experiment: paper::Experiment,
}

/// The files written by [`write_report`] and the numbers in them.
#[derive(Debug, Clone)]
pub struct WrittenReport {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.csv` (one row per grid point).
    pub runs_csv: PathBuf,
    /// `table3.csv` (one row per model).
    pub table3_csv: PathBuf,
    /// One SVG per model with at least one finished epoch.
    pub figures: Vec<PathBuf>,
    /// The numbers.
    pub summary: Summary,
    /// The run folders that could not be read, listed in report.md (the caller may warn).
    pub unreadable: Vec<UnreadableRun>,
}

fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A file name for a model's figure: lower case, non-alphanumerics as `-`.
fn figure_name(model: &str) -> String {
    let slug: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{slug}.svg")
}

/// Reads the run folders under `options.runs_root` and writes the report into
/// `options.out_dir`, which must be new, empty, or hold an earlier report
/// ([`ReportError::NotOurs`] otherwise, before anything is written).
pub fn write_report(options: &ReportOptions) -> Result<WrittenReport, ReportError> {
    if let Some((path, reason)) = out_folder::refusal(&options.out_dir) {
        return Err(ReportError::NotOurs { path, reason });
    }
    let (folders, unreadable) = read_runs(&options.runs_root)?;
    let mut summary = summary::summarize_all(&folders, &unreadable, &options.expected);
    attach_paper_and_data(&mut summary, options);
    let figures = draw_figures(&summary, &options.out_dir)?;
    let runs_root = options.runs_root.display().to_string();
    let context = render::RenderContext {
        runs_root: &runs_root,
        settings: &options.settings,
        provenance: &options.provenance,
        figures: &figures.links,
        experiment: &options.experiment,
    };
    let markdown = options.out_dir.join("report.md");
    write_file(&markdown, &render::markdown(&summary, &context))?;
    let runs_csv = options.out_dir.join("report.csv");
    write_file(&runs_csv, &render::runs_csv(&summary))?;
    let table3_csv = options.out_dir.join("table3.csv");
    write_file(&table3_csv, &render::table3_csv(&summary))?;
    Ok(WrittenReport {
        markdown,
        runs_csv,
        table3_csv,
        figures: figures.files,
        summary,
        unreadable,
    })
}

/// The run folders under `runs_root` that could be read, and those that could not.
fn read_runs(
    runs_root: &Path,
) -> Result<(Vec<allconv_runs::RunRecord>, Vec<UnreadableRun>), ReportError> {
    let mut folders = Vec::new();
    let mut unreadable = Vec::new();
    for found in allconv_runs::scan(runs_root)? {
        match found.read {
            Ok(record) => folders.push(record),
            Err(error) => unreadable.push(UnreadableRun {
                model: found.model,
                lr: found.lr,
                seed: found.seed,
                dir: found.dir.path().to_path_buf(),
                reason: error.to_string(),
            }),
        }
    }
    Ok((folders, unreadable))
}

/// Gives each model row the paper's numbers of the experiment, and each run whether it read
/// the official data (as the caller found in its `config.yaml`).
fn attach_paper_and_data(summary: &mut Summary, options: &ReportOptions) {
    for row in &mut summary.rows {
        row.paper = options.experiment.find(&row.model);
    }
    for run in summary
        .runs
        .iter_mut()
        .chain(summary.outside_grid.iter_mut())
    {
        if let Some((_, check)) = options
            .data
            .iter()
            .find(|(dir, _)| run.dir.as_deref() == Some(dir.as_path()))
        {
            run.data = check.clone();
        }
    }
}

/// The figures drawn: the files, and per model the link report.md uses (`(model, path)`).
struct Figures {
    files: Vec<PathBuf>,
    links: Vec<(String, String)>,
}

/// Draws one figure per model with a finished epoch into `<out_dir>/figures/`.
fn draw_figures(summary: &Summary, out_dir: &Path) -> Result<Figures, ReportError> {
    let figures_dir = out_dir.join("figures");
    fs::create_dir_all(&figures_dir).map_err(|source| ReportError::Write {
        path: figures_dir.clone(),
        source,
    })?;
    let mut figures = Vec::new();
    let mut figure_links = Vec::new();
    for model in &summary.models {
        let key = paper::model_key(model);
        let runs: Vec<&summary::RunSummary> = summary
            .runs
            .iter()
            .filter(|r| paper::model_key(&r.model) == key && !r.metrics.is_empty())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let name = figure_name(model);
        let path = figures_dir.join(&name);
        plot::model_figure(&path, model, &runs)?;
        figures.push(path);
        figure_links.push((model.clone(), format!("figures/{name}")));
    }
    Ok(Figures {
        files: figures,
        links: figure_links,
    })
}
