//! Which data set, which of its label sets, and the two together (the classes a network is
//! trained to tell apart).

use std::fmt;
use std::str::FromStr;

use crate::word::{parse_among, serde_as_word, VocabError, Word};

/// `data.dataset`: the data set, in its official binary layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// CIFAR-10 (`cifar-10-batches-bin`), 10 classes.
    #[default]
    Cifar10,
    /// CIFAR-100 (`cifar-100-binary`), 100 fine or 20 coarse classes ([`LabelSet`]).
    Cifar100,
}

impl Dataset {
    /// Every data set.
    pub const ALL: [Dataset; 2] = [Dataset::Cifar10, Dataset::Cifar100];

    /// The spelling: `cifar10`, `cifar100`.
    pub const fn name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
        }
    }

    /// The name the paper and its authors use: `CIFAR-10`, `CIFAR-100`.
    pub const fn title(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "CIFAR-10",
            Dataset::Cifar100 => "CIFAR-100",
        }
    }
}

impl Word for Dataset {
    const WHAT: &'static str = "data set";
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("cifar10", "CIFAR-10, 10 classes"),
        (
            "cifar100",
            "CIFAR-100, 100 fine or 20 coarse classes (data.labels)",
        ),
    ];
}

/// `data.labels`: which CIFAR-100 labels are the classes (CIFAR-10 has one label set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelSet {
    /// The 100 fine classes (the paper's CIFAR-100 result).
    #[default]
    Fine,
    /// The 20 superclasses.
    Coarse,
}

impl LabelSet {
    /// Every label set.
    pub const ALL: [LabelSet; 2] = [LabelSet::Fine, LabelSet::Coarse];

    /// The spelling: `fine`, `coarse`.
    pub const fn name(self) -> &'static str {
        match self {
            LabelSet::Fine => "fine",
            LabelSet::Coarse => "coarse",
        }
    }
}

impl Word for LabelSet {
    const WHAT: &'static str = "label set";
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("fine", "CIFAR-100's 100 fine classes"),
        ("coarse", "CIFAR-100's 20 superclasses"),
    ];
}

/// The data set with the label set that gives the classes: what decides the network's number of
/// outputs, the chance level and which of the paper's results a run compares with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetKind {
    /// CIFAR-10, 10 classes.
    #[default]
    Cifar10,
    /// CIFAR-100 with its 100 fine labels (the paper's).
    Cifar100Fine,
    /// CIFAR-100 with its 20 coarse labels.
    Cifar100Coarse,
}

impl DatasetKind {
    /// Every combination.
    pub const ALL: [DatasetKind; 3] = [
        DatasetKind::Cifar10,
        DatasetKind::Cifar100Fine,
        DatasetKind::Cifar100Coarse,
    ];

    /// The data set with its label set (CIFAR-10 has only one: `labels` is not looked at).
    pub const fn new(dataset: Dataset, labels: LabelSet) -> Self {
        match (dataset, labels) {
            (Dataset::Cifar10, _) => DatasetKind::Cifar10,
            (Dataset::Cifar100, LabelSet::Fine) => DatasetKind::Cifar100Fine,
            (Dataset::Cifar100, LabelSet::Coarse) => DatasetKind::Cifar100Coarse,
        }
    }

    /// The data set (the files read).
    pub const fn dataset(self) -> Dataset {
        match self {
            DatasetKind::Cifar10 => Dataset::Cifar10,
            DatasetKind::Cifar100Fine | DatasetKind::Cifar100Coarse => Dataset::Cifar100,
        }
    }

    /// The label set; `None` for CIFAR-10, which has one.
    pub const fn labels(self) -> Option<LabelSet> {
        match self {
            DatasetKind::Cifar10 => None,
            DatasetKind::Cifar100Fine => Some(LabelSet::Fine),
            DatasetKind::Cifar100Coarse => Some(LabelSet::Coarse),
        }
    }

    /// Number of classes (outputs of the network).
    pub const fn num_classes(self) -> usize {
        match self {
            DatasetKind::Cifar10 => 10,
            DatasetKind::Cifar100Fine => 100,
            DatasetKind::Cifar100Coarse => 20,
        }
    }

    /// A stable spelling (`cifar10`, `cifar100-fine`, `cifar100-coarse`), part of the ZCA
    /// cache key and of a run's provenance.
    pub const fn name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100Fine => "cifar100-fine",
            DatasetKind::Cifar100Coarse => "cifar100-coarse",
        }
    }
}

impl Word for DatasetKind {
    const WHAT: &'static str = "data set and label set";
    const CHOICES: &'static [(&'static str, &'static str)] = &[
        ("cifar10", "CIFAR-10, 10 classes"),
        ("cifar100-fine", "CIFAR-100, 100 fine classes"),
        ("cifar100-coarse", "CIFAR-100, 20 coarse classes"),
    ];
}

macro_rules! display_and_parse {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $t {
            type Err = VocabError;
            fn from_str(s: &str) -> Result<Self, VocabError> {
                parse_among(s, &<$t>::ALL, <$t>::name)
            }
        }

        serde_as_word!($t);
    };
}

display_and_parse!(Dataset);
display_and_parse!(LabelSet);
display_and_parse!(DatasetKind);
