//! The grid file (`grid.json`, typed in allconv-runs) seen with the experiment configuration:
//! building one from an experiment, reading its embedded experiment back, and the run
//! configuration of one of its points.

use allconv_runs::{GridConfig, GridFile, GridPoint};

use crate::config::{ExperimentConfig, RunConfig};
use crate::error::{Result, TrainError};

/// [`GridFile`] with the trainer's configuration types.
pub trait ExperimentGrid: Sized {
    /// A grid file with the configuration embedded and every point of its grid, indexed 0, 1, ...
    fn from_experiment(config: &ExperimentConfig) -> Result<Self>;
    /// The experiment configuration (loading the YAML file if the grid names one), validated.
    fn experiment(&self) -> Result<ExperimentConfig>;
    /// The run configuration of point `index`, with `experiment` as its configuration (the
    /// caller applies command-line overrides to it first).
    fn run_config(&self, experiment: ExperimentConfig, index: usize) -> Result<RunConfig>;
}

impl ExperimentGrid for GridFile {
    fn from_experiment(config: &ExperimentConfig) -> Result<Self> {
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
        let embedded = match serde_json::to_value(config) {
            Ok(serde_json::Value::Object(map)) => map,
            other => {
                return Err(TrainError::Unrepresentable {
                    what: "the experiment configuration as a JSON object",
                    reason: format!("it came out as {other:?}"),
                })
            }
        };
        Ok(GridFile {
            config: GridConfig::Embedded(embedded),
            points,
        })
    }

    fn experiment(&self) -> Result<ExperimentConfig> {
        match &self.config {
            GridConfig::Path(p) => ExperimentConfig::load(p),
            GridConfig::Embedded(map) => {
                let config: ExperimentConfig =
                    serde_json::from_value(serde_json::Value::Object(map.clone()))
                        .map_err(TrainError::EmbeddedConfig)?;
                config.validate().map_err(TrainError::invalid)?;
                Ok(config)
            }
        }
    }

    fn run_config(&self, experiment: ExperimentConfig, index: usize) -> Result<RunConfig> {
        let p = self.point(index)?;
        RunConfig::new(experiment, &p.model, p.lr, p.seed)
    }
}
