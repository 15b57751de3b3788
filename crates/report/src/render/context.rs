//! What a report is rendered with besides the summary: the runs root, settings, provenance,
//! figures and the experiment compared with.

use crate::paper;

/// What to render besides the summary.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// The runs root, shown in the heading.
    pub runs_root: &'a str,
    /// Configuration values used (`section.key`, value), for the settings section.
    pub settings: &'a [(String, String)],
    /// Key/value lines for the provenance section (git revision, data checksums, device...).
    pub provenance: &'a [(String, String)],
    /// Figure file names relative to report.md, per model (`(model, path)`).
    pub figures: &'a [(String, String)],
    /// The paper's experiment the runs belong to: the comparison table's heading and source.
    pub experiment: &'a paper::Experiment,
}

/// The experiment of a context built with `Default`.
static TABLE3: paper::Experiment = paper::Experiment::Table3;

impl Default for RenderContext<'_> {
    fn default() -> Self {
        RenderContext {
            runs_root: "",
            settings: &[],
            provenance: &[],
            figures: &[],
            experiment: &TABLE3,
        }
    }
}
