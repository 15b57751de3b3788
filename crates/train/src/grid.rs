//! `grid.json`: a list of grid points for `allconv train --grid grid.json --index I`.
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
//! `index` identifies a point; it need not equal the point's position in the list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, RunConfig};
use crate::error::{IoContext, Result, TrainError};

/// Where a grid's experiment configuration comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigSource {
    /// A YAML experiment file.
    Path(PathBuf),
    /// The configuration itself.
    Embedded(Box<ExperimentConfig>),
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    /// The experiment configuration shared by all points.
    pub config: ConfigSource,
    /// The points.
    pub points: Vec<GridPoint>,
}

impl GridFile {
    /// A grid file with the configuration embedded and every point of its grid, indexed 0, 1, ...
    pub fn from_experiment(config: &ExperimentConfig) -> Self {
        let points = config
            .grid_points()
            .into_iter()
            .enumerate()
            .map(|(index, p)| GridPoint {
                index,
                model: p.model,
                lr: p.lr,
                seed: p.seed,
            })
            .collect();
        GridFile {
            config: ConfigSource::Embedded(Box::new(config.clone())),
            points,
        }
    }

    /// Reads a grid file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        serde_json::from_str(&text).map_err(|source| TrainError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes a grid file (pretty JSON).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|source| TrainError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        crate::fsutil::write_atomic(path, format!("{json}\n").as_bytes())
    }

    /// The experiment configuration (loading the YAML file if the grid names one).
    pub fn experiment(&self) -> Result<ExperimentConfig> {
        match &self.config {
            ConfigSource::Path(p) => ExperimentConfig::load(p),
            ConfigSource::Embedded(c) => {
                c.validate().map_err(TrainError::Config)?;
                Ok((**c).clone())
            }
        }
    }

    /// The point with identifier `index`.
    pub fn point(&self, index: usize) -> Result<&GridPoint> {
        self.points
            .iter()
            .find(|p| p.index == index)
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "grid has no point with index {index} (it has {} points{})",
                    self.points.len(),
                    match (
                        self.points.iter().map(|p| p.index).min(),
                        self.points.iter().map(|p| p.index).max()
                    ) {
                        (Some(lo), Some(hi)) => format!(", indices {lo}..={hi}"),
                        _ => String::new(),
                    }
                ))
            })
    }

    /// The run configuration of point `index`, with `experiment` as its configuration (the
    /// caller applies command-line overrides to it first).
    pub fn run_config(&self, experiment: ExperimentConfig, index: usize) -> Result<RunConfig> {
        let p = self.point(index)?;
        RunConfig::new(experiment, &p.model, p.lr, p.seed)
    }
}
