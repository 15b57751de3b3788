//! The output folder and its `index.json`, which says what every picture shows and marks the
//! folder as this command's (so it may write there again, and nowhere else).

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::json;

use crate::cli::source::Loaded;

/// Marks an `--out` folder as written by this command (so it may write there again).
const TOOL: &str = "allconv visualize";
const INDEX: &str = "index.json";

/// Writes `index.json` into `out`: what `loaded` is, and `entry` with the pictures written into
/// this folder before (by other targets), which stay listed.
pub(super) fn write_index(
    out: &Path,
    loaded: &Loaded,
    entry: serde_json::Value,
) -> anyhow::Result<()> {
    let earlier = read_index(out)
        .and_then(|v| v["pictures"].as_array().cloned())
        .unwrap_or_default();
    let mut pictures_listed: Vec<serde_json::Value> = earlier
        .into_iter()
        .filter(|e| e["file"] != entry["file"])
        .collect();
    pictures_listed.push(entry);
    let index = json!({
        "tool": TOOL,
        "model": loaded.spec.name,
        "weights": loaded.weights.display().to_string(),
        "preprocessing": loaded.experiment.data.preprocessing.to_string(),
        "scaling": "each reconstruction min-max scaled to 0..255 on its own (all channels together)",
        "pictures": pictures_listed,
    });
    std::fs::write(
        out.join(INDEX),
        serde_json::to_string_pretty(&index)? + "\n",
    )
    .with_context(|| format!("writing {}", out.join(INDEX).display()))
}

/// Accepts `out` if it does not exist yet, is empty, or was written by this command before.
pub(super) fn check_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out)
            .with_context(|| format!("--out {}: not a readable folder", out.display()))?;
        if entries.next().is_some() {
            let ours = read_index(out).is_some();
            if !ours {
                bail!(
                    "--out {}: the folder holds files not written by `{TOOL}`; choose an empty or new folder",
                    out.display()
                );
            }
        }
    }
    Ok(())
}

/// The `index.json` this command wrote into `out`, if there is one.
fn read_index(out: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(out.join(INDEX))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter(|v| v["tool"] == TOOL)
}
