//! `grid.json`: the points of a grid for `allconv train --grid grid.json --index I`.
//!
//! ```json
//! {
//!   "config": "configs/paper.yaml",
//!   "points": [ {"index": 0, "model": "all-cnn-c", "lr": 0.05, "seed": 0} ]
//! }
//! ```
//!
//! `config` is either a path to an experiment YAML file (relative paths are taken from the current
//! directory) or the experiment configuration embedded as a JSON object (same keys as the YAML).
//! This crate keeps the embedded object as JSON; the trainer's config module gives it its type.
//! `index` identifies a point; it need not equal the point's position in the list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunsError};

/// Where a grid's experiment configuration comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GridConfig {
    /// A YAML experiment file.
    Path(PathBuf),
    /// The configuration itself, as a JSON object.
    Embedded(serde_json::Map<String, serde_json::Value>),
}

/// One grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridPoint {
    /// Identifier passed as `--index`.
    pub index: usize,
    /// Model name.
    pub model: String,
    /// Base learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
}

/// The content of a `grid.json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    /// The experiment configuration shared by all points.
    pub config: GridConfig,
    /// The points.
    pub points: Vec<GridPoint>,
}

impl GridFile {
    /// Reads a grid file.
    pub fn load(path: &Path) -> Result<Self> {
        crate::files::read_json(path)
    }

    /// Writes a grid file (pretty JSON), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::files::write_json(path, self)
    }

    /// The point with identifier `index`.
    pub fn point(&self, index: usize) -> Result<&GridPoint> {
        self.points
            .iter()
            .find(|p| p.index == index)
            .ok_or_else(|| RunsError::NoGridPoint {
                index,
                count: self.points.len(),
                indices: match (
                    self.points.iter().map(|p| p.index).min(),
                    self.points.iter().map(|p| p.index).max(),
                ) {
                    (Some(lo), Some(hi)) => format!(", indices {lo}..={hi}"),
                    _ => String::new(),
                },
            })
    }
}
