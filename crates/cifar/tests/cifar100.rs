//! The CIFAR-100 binary layout (docs/protocol.md, "CIFAR-100"): round trip through the writer and
//! the strict reader, every error naming its file and record, labels chosen fine or coarse, and
//! the dataset in the ZCA cache key.

use std::path::Path;

use allconv_cifar::{
    load_cifar100_dir, load_dataset, prepare, read_cifar100_split, synthetic_cifar100_split,
    write_cifar100_split, write_synthetic_cifar100_dir, zca_cache_file, Cifar100Split, CifarError,
    DatasetKind, PrepareOptions, CIFAR100_RECORD_BYTES, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE,
    FINE_LABEL_NAMES, IMAGE_BYTES,
};

/// Three records by hand: (coarse, fine) = (0, 0), (19, 99), (4, 23); image k is all byte k+1.
fn three() -> Cifar100Split {
    Cifar100Split {
        images: (0..3)
            .flat_map(|k| vec![k as u8 + 1; IMAGE_BYTES])
            .collect(),
        coarse: vec![0, 19, 4],
        fine: vec![0, 99, 23],
    }
}

#[test]
fn round_trip_keeps_both_labels_and_the_record_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train.bin");
    write_cifar100_split(&path, &three()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 3 * 3074);
    // Record 1 starts at byte 3074: coarse 19, fine 99, then its image bytes (2).
    assert_eq!(&bytes[3074..3077], &[19, 99, 2]);
    assert_eq!(read_cifar100_split(&path).unwrap(), three());
    assert_eq!(CIFAR100_RECORD_BYTES, 3074);
}

#[test]
fn a_folder_loads_with_fine_or_coarse_labels() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar100_split(&tmp.path().join(CIFAR100_TRAIN_FILE), &three()).unwrap();
    write_cifar100_split(&tmp.path().join(CIFAR100_TEST_FILE), &three()).unwrap();
    let fine = load_cifar100_dir(tmp.path(), false).unwrap();
    assert_eq!(fine.train.labels, [0, 99, 23]);
    assert_eq!(fine.test.images, three().images);
    let coarse = load_dataset(DatasetKind::Cifar100Coarse, tmp.path()).unwrap();
    assert_eq!(coarse.train.labels, [0, 19, 4]);
    assert_eq!(DatasetKind::Cifar100Fine.num_classes(), 100);
    assert_eq!(DatasetKind::Cifar100Coarse.num_classes(), 20);
}

fn write_raw(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_reader_error_names_the_file_and_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train.bin");

    // Missing file: names the file and the layout.
    let err = load_cifar100_dir(tmp.path(), false).unwrap_err();
    assert!(
        matches!(err, CifarError::MissingCifar100File { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("train.bin"), "{err}");

    // Size not a multiple of 3,074 (one CIFAR-10 record of 3,073 bytes), and an empty file.
    for bytes in [vec![0u8; 3073], Vec::new()] {
        write_raw(&path, &bytes);
        let err = read_cifar100_split(&path).unwrap_err().to_string();
        assert!(err.contains("train.bin") && err.contains("3,074"), "{err}");
    }

    // A fine label of 100 in record 1, a coarse label of 20 in record 2.
    let mut record = vec![0u8; 3074];
    let mut bytes = record.clone();
    record[1] = 100;
    bytes.extend_from_slice(&record);
    write_raw(&path, &bytes);
    let err = read_cifar100_split(&path).unwrap_err().to_string();
    assert!(
        err.contains("train.bin") && err.contains("record 1") && err.contains("fine label 100"),
        "{err}"
    );
    assert!(err.contains("0-99"), "{err}");
    let mut record = vec![0u8; 3074];
    record[0] = 20;
    let bytes = [vec![0u8; 2 * 3074], record].concat();
    write_raw(&path, &bytes);
    let err = read_cifar100_split(&path).unwrap_err().to_string();
    assert!(
        err.contains("record 2") && err.contains("coarse label 20") && err.contains("0-19"),
        "{err}"
    );

    // The writer refuses bad labels and an empty split instead of writing them.
    let mut bad = three();
    bad.fine[2] = 150;
    assert!(write_cifar100_split(&path, &bad).is_err());
    assert!(write_cifar100_split(&path, &Cifar100Split::default()).is_err());
}

#[test]
fn synthetic_folder_has_every_fine_class_and_label_name_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_cifar100_dir(tmp.path(), 200, 100, 3).unwrap();
    let data = load_cifar100_dir(tmp.path(), false).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (200, 100));
    let mut seen = [0usize; 100];
    for &l in &data.train.labels {
        seen[l as usize] += 1;
    }
    // 200 images, 20 of each pattern, the k-th in block k % 10: every fine class exactly twice.
    assert!(seen.iter().all(|&c| c == 2), "{seen:?}");
    let names = std::fs::read_to_string(tmp.path().join(FINE_LABEL_NAMES)).unwrap();
    assert_eq!(names.lines().count(), 100);
    // Coarse = fine / 5: the 5 fine classes 10..14 are superclass 2.
    let split = synthetic_cifar100_split(100, 3, 0);
    for (&c, &f) in split.coarse.iter().zip(&split.fine) {
        assert_eq!(c, f / 5);
    }
}

#[test]
fn prepare_accepts_100_classes_only_for_cifar100_and_keys_the_cache_by_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_cifar100_dir(tmp.path(), 200, 100, 3).unwrap();
    let data = load_cifar100_dir(tmp.path(), false).unwrap();
    let fine = PrepareOptions {
        dataset: DatasetKind::Cifar100Fine,
        ..Default::default()
    };
    let prepared = prepare(&data, &fine, None).unwrap();
    assert_eq!(prepared.train.labels, data.train.labels);
    // As CIFAR-10 the labels 10-99 are out of range: named, not trained on.
    let err = prepare(&data, &PrepareOptions::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("label") && err.contains("expected 0-9"),
        "{err}"
    );
    // Same images, other dataset: another cache file.
    let coarse_data = load_cifar100_dir(tmp.path(), true).unwrap();
    let coarse = PrepareOptions {
        dataset: DatasetKind::Cifar100Coarse,
        ..Default::default()
    };
    let cache = tmp.path().join("cache");
    assert_eq!(coarse_data.train.images, data.train.images);
    assert_ne!(
        zca_cache_file(&data, &fine, &cache).unwrap(),
        zca_cache_file(&coarse_data, &coarse, &cache).unwrap()
    );
}

#[test]
fn a_label_outside_the_label_set_is_named_with_its_file_record_and_value() {
    // The synthetic folder's fine labels read as the 20 coarse classes: the first fine label
    // of 20 or more is out of range. The k-th image of pattern p has fine label 10 * (k % 10) + p
    // (synthetic_cifar100_split), so the first label >= 20 is found by hand below from the data.
    let tmp = tempfile::tempdir().unwrap();
    write_synthetic_cifar100_dir(tmp.path(), 200, 100, 3).unwrap();
    let fine_data = load_cifar100_dir(tmp.path(), false).unwrap();
    let (record, &label) = fine_data
        .train
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l >= 20)
        .unwrap();
    let coarse = PrepareOptions {
        dataset: DatasetKind::Cifar100Coarse,
        ..Default::default()
    };
    match prepare(&fine_data, &coarse, None).unwrap_err() {
        CifarError::LabelOutOfRange {
            path,
            record: r,
            label: l,
            classes,
        } => {
            assert_eq!(path, Path::new(CIFAR100_TRAIN_FILE));
            assert_eq!((r, l, classes), (record, label, 20));
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
    let message = prepare(&fine_data, &coarse, None).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "train.bin: record {record} (0-based) has label {label}, expected 0-19 (20 classes)"
        )
    );
}
