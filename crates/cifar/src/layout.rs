//! The files of each data set's folder, named as the official archives name them (the folder
//! itself is named by [`crate::dataset_folder`]).

/// The five training files, in order (training image `i` lives in file `i / 10,000`).
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class-name file (one name a line; it has no published checksum).
pub const BATCHES_META: &str = "batches.meta.txt";

/// The training file (50,000 records in the official release).
pub const CIFAR100_TRAIN_FILE: &str = "train.bin";
/// The test file (10,000 records).
pub const CIFAR100_TEST_FILE: &str = "test.bin";
/// The fine class names, one a line (100).
pub const FINE_LABEL_NAMES: &str = "fine_label_names.txt";
/// The coarse class names, one a line (20).
pub const COARSE_LABEL_NAMES: &str = "coarse_label_names.txt";
