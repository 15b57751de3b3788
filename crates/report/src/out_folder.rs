//! The report's output folder: written again by every report, so it must hold nothing the
//! report did not write. `report.md` starts with [`MARKER`]; a folder whose `report.md` lacks
//! it, or that holds the report's other files without any `report.md`, is someone else's and
//! is refused before anything in it is replaced.

use std::path::{Path, PathBuf};

/// The first line of every `report.md` this crate writes (an HTML comment: not shown when the
/// Markdown is rendered).
pub const MARKER: &str =
    "<!-- written by allconv report: this folder is rewritten by every report -->";

/// The first line of reports written before [`MARKER`] existed: they are ours too.
const EARLIER_HEADING: &str = "# All Convolutional Net on ";

/// Why the report refuses its output folder, or `None` when it may write there (the folder is
/// absent or empty, or holds a report written before).
pub(crate) fn refusal(out_dir: &Path) -> Option<(PathBuf, String)> {
    let markdown = out_dir.join("report.md");
    if markdown.is_file() {
        let text = std::fs::read_to_string(&markdown).unwrap_or_default();
        let first = text.lines().next().unwrap_or_default();
        let ours = first == MARKER
            || (first.starts_with(EARLIER_HEADING) && first.ends_with(": reproduction report"));
        return (!ours).then(|| {
            (
                markdown,
                "was not written by `allconv report`; it would be overwritten".to_string(),
            )
        });
    }
    if markdown.exists() {
        return Some((markdown, "is not a file".to_string()));
    }
    // Without a report.md of ours, the files a report writes are someone else's.
    for name in ["report.csv", "table3.csv", "figures"] {
        let path = out_dir.join(name);
        let taken = if name == "figures" {
            std::fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_some())
                || path.is_file()
        } else {
            path.exists()
        };
        if taken {
            return Some((
                path,
                "is there without a report.md written by `allconv report`; it would be \
                 overwritten"
                    .to_string(),
            ));
        }
    }
    None
}
