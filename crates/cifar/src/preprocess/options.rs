//! What `prepare` applies: the normalisation and how the data set is split.

use serde::{Deserialize, Serialize};

use crate::{CifarError, Result};
use allconv_vocab::DatasetKind;

/// Which preprocessing `prepare` applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocessing {
    /// `x / 255`.
    Scale,
    /// `(x - mean_c) / std_c` with the per-channel mean and population std of the training part.
    Standardize,
    /// The paper's recipe: global contrast normalisation (per image: subtract its mean, divide
    /// by its L2 norm, times `gcn_scale`), then ZCA whitening fitted on the training part.
    #[default]
    GcnZca,
}

impl Preprocessing {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preprocessing::Scale => "scale",
            Preprocessing::Standardize => "standardize",
            Preprocessing::GcnZca => "gcn_zca",
        }
    }
}

impl std::fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preprocessing {
    type Err = CifarError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "scale" => Ok(Preprocessing::Scale),
            "standardize" => Ok(Preprocessing::Standardize),
            "gcn_zca" => Ok(Preprocessing::GcnZca),
            other => Err(CifarError::InvalidOption {
                option: "preprocessing",
                reason: format!("unknown value {other:?}, expected scale, standardize or gcn_zca"),
            }),
        }
    }
}

/// How `prepare` splits and normalises the data.
///
/// Order of operations: `train_subset` keeps the first N of the 50,000 training images; then
/// the last `validation` images of what is left become the validation split; statistics are
/// fitted on the remaining training part only. `test_subset` keeps the first N test images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareOptions {
    /// Which normalisation.
    pub preprocessing: Preprocessing,
    /// Number of images taken from the end of the training set as a validation split
    /// (0: the paper's protocol, train on everything).
    pub validation: usize,
    /// GCN scale (pylearn2 `scale`, 55 in the paper's recipe).
    pub gcn_scale: f64,
    /// Added to every eigenvalue of the covariance before the inverse square root.
    pub zca_epsilon: f64,
    /// Keep only the first N training images (before the validation split).
    pub train_subset: Option<usize>,
    /// Keep only the first N test images.
    pub test_subset: Option<usize>,
    /// The data set the images come from: sets the valid label range and is part of the ZCA
    /// cache key (two data sets never share a fit, even with equal images).
    pub dataset: DatasetKind,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            preprocessing: Preprocessing::GcnZca,
            validation: 0,
            gcn_scale: 55.0,
            zca_epsilon: 0.1,
            train_subset: None,
            test_subset: None,
            dataset: DatasetKind::Cifar10,
        }
    }
}
