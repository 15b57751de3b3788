//! What network a weights file is for, in its safetensors metadata: the model, its classes and
//! final ReLU, and the preprocessing its inputs had. Weights of All-CNN-C have exactly the
//! tensors of ConvPool-CNN-C, so without this record nothing would stop one being evaluated as
//! the other. Files without it (written by other tools, or before it was recorded) still load.

use std::collections::BTreeMap;

use crate::config::RunConfig;

/// Metadata keys (prefixed, so they cannot collide with a key another tool writes).
const MODEL: &str = "allconv.model";
const NUM_CLASSES: &str = "allconv.num_classes";
const FINAL_RELU: &str = "allconv.final_relu";
const PREPROCESSING: &str = "allconv.preprocessing";
const DATASET: &str = "allconv.dataset";

/// The network and input a weights file was trained for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsInfo {
    /// Canonical model name (`all-cnn-c`).
    pub model: String,
    /// Outputs of the last convolution.
    pub num_classes: usize,
    /// Whether a ReLU follows the class-score convolution.
    pub final_relu: bool,
    /// `data.preprocessing` of the training data (`gcn_zca`, ...).
    pub preprocessing: String,
    /// The data set and labels (`CIFAR-10`, `CIFAR-100 (fine)` ...), as allconv-cifar names it.
    pub dataset: String,
}

impl WeightsInfo {
    /// What the weights of a run of `config` are for.
    pub fn of(config: &RunConfig) -> Self {
        let exp = &config.config;
        WeightsInfo {
            model: config.model.clone(),
            num_classes: exp.model.num_classes,
            final_relu: exp.model.final_relu,
            preprocessing: exp.data.preprocessing.to_string(),
            dataset: exp.data.kind().name().to_string(),
        }
    }

    /// The metadata entries that record it.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MODEL.to_string(), self.model.clone()),
            (NUM_CLASSES.to_string(), self.num_classes.to_string()),
            (FINAL_RELU.to_string(), self.final_relu.to_string()),
            (PREPROCESSING.to_string(), self.preprocessing.clone()),
            (DATASET.to_string(), self.dataset.clone()),
        ])
    }

    /// The record in a file's metadata; `None` when the file has none (or an incomplete one).
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Option<Self> {
        Some(WeightsInfo {
            model: metadata.get(MODEL)?.clone(),
            num_classes: metadata.get(NUM_CLASSES)?.parse().ok()?,
            final_relu: metadata.get(FINAL_RELU)?.parse().ok()?,
            preprocessing: metadata.get(PREPROCESSING)?.clone(),
            dataset: metadata.get(DATASET)?.clone(),
        })
    }

    /// How weights recorded as `self` differ from the network and data `wanted` describes, one
    /// phrase per difference naming the setting to change; empty when they fit.
    pub fn differences(&self, wanted: &WeightsInfo) -> Vec<String> {
        let mut out = Vec::new();
        if !self.model.eq_ignore_ascii_case(&wanted.model) {
            out.push(format!(
                "they are weights of {}, not of {}",
                self.model, wanted.model
            ));
        }
        if self.dataset != wanted.dataset || self.num_classes != wanted.num_classes {
            out.push(format!(
                "they were trained on {} ({} classes), not {} ({} classes)",
                self.dataset, self.num_classes, wanted.dataset, wanted.num_classes
            ));
        }
        if self.final_relu != wanted.final_relu {
            out.push(format!(
                "they were trained with model.final_relu {}, not {}",
                self.final_relu, wanted.final_relu
            ));
        }
        if self.preprocessing != wanted.preprocessing {
            out.push(format!(
                "they were trained on {} inputs, not {} (data.preprocessing)",
                self.preprocessing, wanted.preprocessing
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(model: &str, preprocessing: &str) -> WeightsInfo {
        WeightsInfo {
            model: model.into(),
            num_classes: 10,
            final_relu: true,
            preprocessing: preprocessing.into(),
            dataset: "CIFAR-10".into(),
        }
    }

    #[test]
    fn the_record_round_trips_and_names_each_difference() {
        let a = info("all-cnn-c", "gcn_zca");
        assert_eq!(
            WeightsInfo::from_metadata(&a.to_metadata()),
            Some(a.clone())
        );
        assert_eq!(WeightsInfo::from_metadata(&BTreeMap::new()), None);
        assert!(a.differences(&a).is_empty());
        let other = info("convpool-cnn-c", "scale");
        let found = a.differences(&other);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("all-cnn-c") && found[0].contains("convpool-cnn-c"));
        assert!(found[1].contains("gcn_zca") && found[1].contains("scale"));
    }
}
