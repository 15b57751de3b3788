//! The checks of an experiment's values that parse but make no sense: each refusal names the key
//! and the value, before anything is trained or written.

use super::{ConfigError, Dataset, ExperimentConfig, LabelSet};

/// The most epochs a schedule may ask for: far more than any protocol here trains (the paper's
/// is 350), and small enough that epochs x steps never overflow a count.
pub const MAX_EPOCHS: usize = 1_000_000;

impl ExperimentConfig {
    /// Checks values that parse but make no sense; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The model section first: a bad option is the model option's fault, not that of the
        // grid's models that are built with it.
        self.model
            .validate()
            .map_err(|refused| ConfigError::Model {
                key: "model",
                refused,
            })?;
        self.validate_data()?;
        self.validate_training()?;
        self.validate_schedule()?;
        self.validate_grid()?;
        self.slurm.validate()
    }

    fn validate_data(&self) -> Result<(), ConfigError> {
        let classes = self.data.kind().num_classes();
        if self.data.dataset == Dataset::Cifar10 && self.data.labels == LabelSet::Coarse {
            return Err(ConfigError::inconsistent(
                "data.labels",
                "data.labels: coarse: CIFAR-10 has one label set; coarse labels (20 \
                 superclasses) exist only with data.dataset: cifar100",
            ));
        }
        if self.model.num_classes != classes {
            return Err(ConfigError::inconsistent(
                "model.num_classes",
                format!(
                    "model.num_classes is {} but data.dataset {} has {classes} classes{}: set \
                 model.num_classes: {classes}",
                    self.model.num_classes,
                    self.data.kind().name(),
                    match self.data.kind().labels() {
                        None => "",
                        Some(_) => " (data.labels)",
                    }
                ),
            ));
        }
        // Checked here, not only where the statistics are fitted: a NaN that reached `--set`
        // or a grid file would turn into `null` on the way and blame the wrong key.
        for (key, value) in [
            ("data.gcn_scale", self.data.gcn_scale),
            ("data.zca_epsilon", self.data.zca_epsilon),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                return Err(ConfigError::out_of_range(key, "a finite number > 0", value));
            }
        }
        for (key, subset) in [
            ("data.train_subset", self.data.train_subset),
            ("data.test_subset", self.data.test_subset),
        ] {
            if subset == Some(0) {
                return Err(ConfigError::out_of_range(
                    key,
                    "at least 1 (leave it out for all images)",
                    0,
                ));
            }
        }
        if let Some(subset) = &self.data.derive_subset {
            self.data.validate_derived_subset(subset)?;
        }
        Ok(())
    }

    fn validate_training(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("training.batch_size", self.training.batch_size),
            ("training.eval_every", self.training.eval_every),
            ("training.loss_read_every", self.training.loss_read_every),
        ] {
            if value == 0 {
                return Err(ConfigError::out_of_range(key, "at least 1", 0));
            }
        }
        let optim = &self.optim;
        if !(optim.momentum >= 0.0 && optim.momentum < 1.0) {
            return Err(ConfigError::out_of_range(
                "optim.momentum",
                "in [0, 1)",
                optim.momentum,
            ));
        }
        if !(optim.weight_decay >= 0.0 && optim.weight_decay.is_finite()) {
            return Err(ConfigError::out_of_range(
                "optim.weight_decay",
                "a finite number >= 0",
                optim.weight_decay,
            ));
        }
        Ok(())
    }

    fn validate_schedule(&self) -> Result<(), ConfigError> {
        if !(self.schedule.gamma > 0.0 && self.schedule.gamma.is_finite()) {
            return Err(ConfigError::out_of_range(
                "schedule.gamma",
                "a finite number > 0",
                self.schedule.gamma,
            ));
        }
        if !(1..=MAX_EPOCHS).contains(&self.schedule.epochs) {
            return Err(ConfigError::out_of_range(
                "schedule.epochs",
                format!("in 1..={MAX_EPOCHS}"),
                self.schedule.epochs,
            ));
        }
        // A milestone m lowers the rate from the (m+1)-th epoch on: 0 would lower it from the
        // start (that is a smaller base rate), a repeat would apply gamma twice at once.
        if self.schedule.milestones.contains(&0)
            || self.schedule.milestones.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(ConfigError::out_of_range(
                "schedule.milestones",
                "strictly increasing epochs of at least 1",
                format!("{:?}", self.schedule.milestones),
            ));
        }
        Ok(())
    }

    /// Every model known and every grid value listed once: two equal points would share one
    /// run folder, and one would report the other's result as its own.
    fn validate_grid(&self) -> Result<(), ConfigError> {
        if let Some(lr) = self.grid.lrs.iter().find(|lr| !is_learning_rate(**lr)) {
            return Err(ConfigError::out_of_range(
                "grid.lrs",
                "learning rates: finite numbers > 0",
                lr,
            ));
        }
        let repeated =
            |key, value: String, listed: String| ConfigError::Repeated { key, value, listed };
        if let Some(lr) = first_repeat(&self.grid.lrs) {
            return Err(repeated(
                "grid.lrs",
                lr.to_string(),
                format!("{:?}", self.grid.lrs),
            ));
        }
        if let Some(seed) = first_repeat(&self.grid.seeds) {
            return Err(repeated(
                "grid.seeds",
                seed.to_string(),
                format!("{:?}", self.grid.seeds),
            ));
        }
        let mut canonical = Vec::new();
        for name in &self.grid.models {
            let spec =
                allconv_models::spec(name, &self.model).map_err(|refused| ConfigError::Model {
                    key: "grid.models",
                    refused,
                })?;
            canonical.push(spec.name);
        }
        if let Some(model) = first_repeat(&canonical) {
            return Err(repeated(
                "grid.models",
                model.clone(),
                format!("{:?}; names are case-insensitive", self.grid.models),
            ));
        }
        Ok(())
    }

    /// Settings that are valid but probably not what was meant, one sentence each (the trainer
    /// prints them when a run starts): milestones at or after the last epoch never change the rate.
    pub fn warnings(&self) -> Vec<String> {
        let epochs = self.schedule.epochs;
        let late: Vec<usize> = (self.schedule.milestones.iter())
            .copied()
            .filter(|&m| m >= epochs)
            .collect();
        if late.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "schedule.milestones {late:?} lie at or after the last of the {epochs} epochs: the \
             learning rate is never lowered there"
        )]
    }
}

/// The first value that occurs again later in `values`.
fn first_repeat<T: PartialEq + std::fmt::Display>(values: &[T]) -> Option<&T> {
    values
        .iter()
        .enumerate()
        .find(|(i, v)| values[i + 1..].contains(v))
        .map(|(_, v)| v)
}

/// Whether `lr` can be a learning rate: a finite number > 0.
pub(super) fn is_learning_rate(lr: f64) -> bool {
    lr > 0.0 && lr.is_finite()
}
