//! The paper's published numbers, the reference every report compares against.
//!
//! Source: Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for Simplicity: The All
//! Convolutional Net", arXiv:1412.6806, Table 3 (CIFAR-10, no data augmentation, test error in %).
//! The exact parameter counts are not printed in the paper (it rounds them, and its "1.3M" for
//! Model C does not fit its own architecture table); they are computed from the architecture
//! tables (weights + biases, 10 classes), as listed in docs/protocol.md, "Parameter counts".
//!
//! The training protocol itself is `configs/paper.yaml`; [`PROTOCOL`] restates the numbers the
//! report prints about it, and a test of allconv-train compares the two.

use allconv_vocab::{Dataset, DatasetKind};

/// Where the reference numbers come from, printed under the comparison table.
pub const SOURCE: &str = "Springenberg et al. 2014, arXiv:1412.6806, Table 3 (CIFAR-10, no data \
augmentation); exact parameter counts computed from the paper's architecture tables \
(docs/protocol.md)";

/// The numbers of the paper's training protocol that the report states (docs/protocol.md,
/// "Training" and "Preprocessing"); `configs/paper.yaml` must run exactly these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Protocol {
    /// Epochs of every run.
    pub epochs: usize,
    /// Epochs after which the learning rate is multiplied by `gamma`.
    pub milestones: [usize; 3],
    /// The factor at each milestone.
    pub gamma: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Images per step (the paper leaves it open; this is the value used).
    pub batch_size: usize,
    /// GCN scale.
    pub gcn_scale: f64,
    /// ZCA regulariser added to the eigenvalues.
    pub zca_epsilon: f64,
    /// Dropout on the input.
    pub input_dropout: f64,
    /// Dropout after each pooling layer (or its replacement).
    pub pool_dropout: f64,
    /// The learning rates searched ("the best of"), largest first.
    pub learning_rates: [f64; 4],
}

/// The paper's protocol.
pub const PROTOCOL: Protocol = Protocol {
    epochs: 350,
    milestones: [200, 250, 300],
    gamma: 0.1,
    momentum: 0.9,
    weight_decay: 0.001,
    batch_size: 128,
    gcn_scale: 55.0,
    zca_epsilon: 0.1,
    input_dropout: 0.2,
    pool_dropout: 0.5,
    learning_rates: [0.25, 0.1, 0.05, 0.01],
};

/// The learning rates the paper searched ("the best of"), largest first.
pub const LEARNING_RATES: [f64; 4] = PROTOCOL.learning_rates;

/// One row of the paper's Table 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperModel {
    /// The model's name as the paper writes it.
    pub name: &'static str,
    /// Published test error in percent (CIFAR-10 without augmentation for [`TABLE3`]; the
    /// experiment's data set otherwise, see [`Experiment`]).
    pub test_error: f64,
    /// Exact number of weights and biases (for the experiment's number of classes).
    pub parameters: u64,
    /// The parameter count as the paper prints it (rounded).
    pub paper_parameters: &'static str,
}

const fn row(
    name: &'static str,
    test_error: f64,
    parameters: u64,
    paper_parameters: &'static str,
) -> PaperModel {
    PaperModel {
        name,
        test_error,
        parameters,
        paper_parameters,
    }
}

/// The twelve networks of Table 3, in the paper's order (rows A, B, C; columns Model, Strided,
/// ConvPool, All-CNN).
pub const TABLE3: [PaperModel; 12] = [
    row("Model A", 12.47, 839_242, "0.9M"),
    row("Strided-CNN-A", 13.46, 839_242, "0.9M"),
    row("ConvPool-CNN-A", 10.21, 1_254_250, "1.28M"),
    row("All-CNN-A", 10.30, 1_254_250, "1.28M"),
    row("Model B", 10.20, 885_610, "1M"),
    row("Strided-CNN-B", 10.98, 885_610, "1M"),
    row("ConvPool-CNN-B", 9.33, 1_300_618, "1.35M"),
    row("All-CNN-B", 9.10, 1_300_618, "1.35M"),
    row("Model C", 9.74, 954_730, "1.3M"),
    row("Strided-CNN-C", 10.19, 954_730, "1.3M"),
    row("ConvPool-CNN-C", 9.31, 1_369_738, "1.4M"),
    row("All-CNN-C", 9.08, 1_369_738, "1.4M"),
];

/// A training setting the report lists with the value the runs used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// What the setting is.
    pub name: &'static str,
    /// What the paper says (or that it leaves the setting open, and this project's default).
    pub paper: &'static str,
    /// The keys of the run configuration (`section.key`, as in `config.yaml`) holding the value.
    pub keys: &'static [&'static str],
}

/// The settings the paper leaves open or that a reduced grid changes, in the order shown.
pub const SETTINGS: [Setting; 12] = [
    Setting {
        name: "batch size",
        paper: "open (default 128)",
        keys: &["training.batch_size"],
    },
    Setting {
        name: "initialisation",
        paper: "open (default Caffe xavier: uniform ±sqrt(3/fan_in), bias 0)",
        keys: &["model.init", "model.bias_init"],
    },
    Setting {
        name: "weight decay on biases",
        paper: "open (default yes, as Caffe)",
        keys: &["optim.weight_decay_bias"],
    },
    Setting {
        name: "ReLU after the last 1x1 conv",
        paper: "in the architecture table (default yes)",
        keys: &["model.final_relu"],
    },
    Setting {
        name: "preprocessing",
        paper: "GCN (scale 55) + ZCA (epsilon 0.1), after Goodfellow et al. 2013",
        keys: &["data.preprocessing", "data.gcn_scale", "data.zca_epsilon"],
    },
    Setting {
        name: "validation split",
        paper: "none: the learning rate is picked on the test set",
        keys: &["data.validation"],
    },
    Setting {
        name: "data used",
        paper: "all 50,000 training and 10,000 test images",
        keys: &["data.train_subset", "data.test_subset"],
    },
    Setting {
        name: "epochs and learning-rate drops",
        paper: "350 epochs, x0.1 after 200, 250, 300",
        keys: &["schedule.epochs", "schedule.milestones", "schedule.gamma"],
    },
    Setting {
        name: "momentum, weight decay",
        paper: "0.9, 0.001",
        keys: &["optim.momentum", "optim.weight_decay"],
    },
    Setting {
        name: "dropout",
        paper: "20% on the input, 50% after each pooling layer (or its replacement)",
        keys: &[
            "model.input_dropout",
            "model.pool_dropout",
            "training.dropout",
        ],
    },
    Setting {
        name: "last smaller batch, shuffling",
        paper: "open (default: kept, shuffled every epoch)",
        keys: &["training.keep_last_batch", "training.shuffle"],
    },
    Setting {
        name: "stop a run stuck at chance level",
        paper: "not in the paper (recorded as diverged)",
        keys: &["training.stuck_epochs"],
    },
];

/// A comparison key for model names: lower case, letters and digits only, so `Model A`,
/// `model-a` and `model_a` are the same model.
pub fn model_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The paper's other CIFAR results: All-CNN-C on CIFAR-10 with data augmentation (horizontal
/// flips and translations of up to 5 pixels), test error in percent.
pub const ALL_CNN_C_AUGMENTED: PaperModel = row("All-CNN-C", 7.25, 1_369_738, "1.4M");
/// All-CNN-C on CIFAR-100 (100 fine classes, no augmentation): the last 1x1 convolution has
/// 100 outputs, so 90 x 193 = 17,370 parameters more than for CIFAR-10.
pub const ALL_CNN_C_CIFAR100: PaperModel = row("All-CNN-C", 33.71, 1_387_108, "1.4M");

/// Which of the paper's experiments a report's runs belong to: decided by the data set and
/// the augmentation the runs recorded, so runs of different experiments are never compared in
/// one table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Experiment {
    /// CIFAR-10 without augmentation: Table 3, all twelve networks.
    #[default]
    Table3,
    /// CIFAR-10 with data augmentation (All-CNN-C only in the paper).
    Cifar10Augmented,
    /// CIFAR-100 with its fine labels, no augmentation (All-CNN-C only in the paper).
    Cifar100,
    /// A combination the paper does not report (e.g. CIFAR-100 with augmentation, or its
    /// coarse labels), as the runs recorded it; compared with nothing.
    Other {
        /// The data set and label set.
        data: DatasetKind,
        /// Whether the training images were augmented.
        augment: bool,
    },
}

/// How the heading names each experiment's data.
static HEADINGS: [(&str, &str); 3] = [
    ("Table 3", "CIFAR-10, no augmentation"),
    (
        "CIFAR-10 with data augmentation",
        "CIFAR-10, flips + shifts",
    ),
    ("CIFAR-100", "CIFAR-100, fine labels"),
];

impl Experiment {
    /// The experiment of runs on `data` with or without `augment`.
    pub fn of(data: DatasetKind, augment: bool) -> Experiment {
        match (data, augment) {
            (DatasetKind::Cifar10, false) => Experiment::Table3,
            (DatasetKind::Cifar10, true) => Experiment::Cifar10Augmented,
            (DatasetKind::Cifar100Fine, false) => Experiment::Cifar100,
            (data, augment) => Experiment::Other { data, augment },
        }
    }

    /// How an experiment the paper does not report is named: the recorded data set, its
    /// labels, and whether it was augmented (e.g. `cifar100 (coarse labels) with augmentation`).
    fn other_name(data: DatasetKind, augment: bool) -> String {
        let labels = match data.labels() {
            Some(labels) => format!(" ({labels} labels)"),
            None => String::new(),
        };
        let augmented = if augment { " with augmentation" } else { "" };
        format!("{}{labels}{augmented}", data.dataset())
    }

    /// The heading of the comparison table.
    pub fn heading(&self) -> String {
        match self {
            Experiment::Table3 => {
                format!("{}: test error (%), the paper beside ours", HEADINGS[0].0)
            }
            Experiment::Cifar10Augmented => {
                format!("{}: test error (%), the paper beside ours", HEADINGS[1].0)
            }
            Experiment::Cifar100 => {
                format!("{}: test error (%), the paper beside ours", HEADINGS[2].0)
            }
            Experiment::Other { data, augment } => format!(
                "{}: test error (%) (the paper reports no such experiment)",
                Self::other_name(*data, *augment)
            ),
        }
    }

    /// The data set of the experiment (its `title()` is the paper's name for it).
    pub fn dataset(&self) -> Dataset {
        match self {
            Experiment::Table3 | Experiment::Cifar10Augmented => Dataset::Cifar10,
            Experiment::Cifar100 => Dataset::Cifar100,
            Experiment::Other { data, .. } => data.dataset(),
        }
    }

    /// The data the runs trained on, as the report's title names it.
    pub fn data(&self) -> String {
        match self {
            Experiment::Table3 => HEADINGS[0].1.to_string(),
            Experiment::Cifar10Augmented => HEADINGS[1].1.to_string(),
            Experiment::Cifar100 => HEADINGS[2].1.to_string(),
            Experiment::Other { data, augment } => Self::other_name(*data, *augment),
        }
    }

    /// Where the reference numbers come from.
    pub fn source(&self) -> &'static str {
        match self {
            Experiment::Table3 => SOURCE,
            Experiment::Cifar10Augmented => {
                "Springenberg et al. 2014, arXiv:1412.6806, CIFAR-10 with data augmentation \
                 (All-CNN-C 7.25%; the other networks are not reported with augmentation)"
            }
            Experiment::Cifar100 => {
                "Springenberg et al. 2014, arXiv:1412.6806, CIFAR-100 (All-CNN-C 33.71%; the \
                 other networks are not reported on CIFAR-100); parameter count for 100 classes"
            }
            Experiment::Other { .. } => "none: the paper reports no runs of this kind",
        }
    }

    /// The paper's number for a model in this experiment, if it reports one.
    pub fn find(&self, name: &str) -> Option<&'static PaperModel> {
        let all_cnn_c = model_key(name) == model_key("All-CNN-C");
        match self {
            Experiment::Table3 => find(name),
            Experiment::Cifar10Augmented => all_cnn_c.then_some(&ALL_CNN_C_AUGMENTED),
            Experiment::Cifar100 => all_cnn_c.then_some(&ALL_CNN_C_CIFAR100),
            Experiment::Other { .. } => None,
        }
    }
}

/// The paper's row for a model name in any spelling, if it is one of the twelve.
pub fn find(name: &str) -> Option<&'static PaperModel> {
    let key = model_key(name);
    TABLE3.iter().find(|m| model_key(m.name) == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_a_parameter_count_matches_a_hand_count() {
        // 5x5 conv 3->96: 96*75+96 = 7,296; 5x5 conv 96->192: 192*2400+192 = 460,992;
        // 3x3 conv 192->192: 192*1728+192 = 331,968; 1x1 192->192: 37,056; 1x1 192->10: 1,930.
        let hand = 7_296 + 460_992 + 331_968 + 37_056 + 1_930;
        assert_eq!(find("model-a").unwrap().parameters, hand);
    }

    /// The texts the report prints about the protocol state the numbers of [`PROTOCOL`].
    #[test]
    fn setting_texts_state_the_protocol_numbers() {
        let text = |name: &str| SETTINGS.iter().find(|s| s.name == name).unwrap().paper;
        let p = PROTOCOL;
        assert_eq!(
            text("batch size"),
            format!("open (default {})", p.batch_size)
        );
        assert!(text("preprocessing").contains(&format!(
            "GCN (scale {}) + ZCA (epsilon {})",
            p.gcn_scale, p.zca_epsilon
        )));
        let [m1, m2, m3] = p.milestones;
        assert_eq!(
            text("epochs and learning-rate drops"),
            format!("{} epochs, x{} after {m1}, {m2}, {m3}", p.epochs, p.gamma)
        );
        assert_eq!(
            text("momentum, weight decay"),
            format!("{}, {}", p.momentum, p.weight_decay)
        );
        assert!(text("dropout").starts_with(&format!(
            "{}% on the input, {}% after each pooling layer",
            100.0 * p.input_dropout,
            100.0 * p.pool_dropout
        )));
    }

    #[test]
    fn each_experiment_compares_only_with_its_own_published_number() {
        assert_eq!(
            Experiment::of(DatasetKind::Cifar10, false),
            Experiment::Table3
        );
        let aug = Experiment::of(DatasetKind::Cifar10, true);
        assert_eq!(aug, Experiment::Cifar10Augmented);
        // The paper's numbers: 7.25% with augmentation, 33.71% on CIFAR-100 (All-CNN-C only).
        assert_eq!(aug.find("all-cnn-c").unwrap().test_error, 7.25);
        assert!(aug.find("model-c").is_none());
        let c100 = Experiment::of(DatasetKind::Cifar100Fine, false);
        assert_eq!(c100.find("All_CNN_C").unwrap().test_error, 33.71);
        assert_eq!(c100.find("all-cnn-c").unwrap().parameters, 1_387_108);
        let other = Experiment::of(DatasetKind::Cifar100Coarse, true);
        assert!(matches!(other, Experiment::Other { .. }));
        assert_eq!(other.data(), "cifar100 (coarse labels) with augmentation");
        assert_eq!(other.dataset(), Dataset::Cifar100);
        assert_eq!(c100.dataset().title(), "CIFAR-100");
        assert!(other.find("all-cnn-c").is_none());
        assert!(other.heading().contains("no such experiment"));
    }

    #[test]
    fn names_match_in_any_spelling() {
        assert_eq!(find("all_cnn_c").unwrap().test_error, 9.08);
        assert_eq!(find("Strided-CNN-B").unwrap().test_error, 10.98);
        assert!(find("Model D").is_none());
    }
}
