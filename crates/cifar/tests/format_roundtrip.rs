//! The binary layout: what `write_split` writes is what the official format specifies, and
//! reading it back gives the same images and labels.

use allconv_cifar::{
    checksums, load_dir, read_split, verify_checksums, write_split, write_synthetic_dir,
    CifarError, RawSplit, IMAGE_BYTES, RECORD_BYTES, TEST_FILE, TRAIN_FILES,
};

fn pattern_split(n: usize) -> RawSplit {
    RawSplit {
        images: (0..n * IMAGE_BYTES).map(|i| (i * 7 % 251) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

#[test]
fn written_records_follow_the_official_layout_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    let split = pattern_split(3);
    write_split(&path, &split).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Layout from CIFAR10.md: 3 records of 1 label byte + 3,072 image bytes.
    assert_eq!(bytes.len(), 3 * 3073);
    for r in 0..3 {
        let record = &bytes[r * RECORD_BYTES..(r + 1) * RECORD_BYTES];
        assert_eq!(record[0], (r % 10) as u8, "label byte of record {r}");
        // Red plane first (bytes 1..1025), then green, then blue: the split's CHW bytes.
        assert_eq!(&record[1..], split.image(r));
    }
}

#[test]
fn read_split_returns_what_write_split_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test_batch.bin");
    let split = pattern_split(5);
    write_split(&path, &split).unwrap();
    assert_eq!(read_split(&path).unwrap(), split);
}

#[test]
fn load_dir_concatenates_the_five_training_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected_train = RawSplit::default();
    for (k, name) in TRAIN_FILES.iter().enumerate() {
        // File k holds images whose bytes are all k, labels k, so the order is visible.
        let part = RawSplit {
            images: vec![k as u8; 2 * IMAGE_BYTES],
            labels: vec![k as u8; 2],
        };
        write_split(&dir.path().join(name), &part).unwrap();
        expected_train.images.extend_from_slice(&part.images);
        expected_train.labels.extend_from_slice(&part.labels);
    }
    let test = pattern_split(4);
    write_split(&dir.path().join(TEST_FILE), &test).unwrap();
    let data = load_dir(dir.path()).unwrap();
    assert_eq!(data.train, expected_train);
    assert_eq!(data.test, test);
}

#[test]
fn synthetic_dirs_are_deterministic_balanced_and_loadable() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    write_synthetic_dir(a.path(), 20, 30, 7).unwrap();
    write_synthetic_dir(b.path(), 20, 30, 7).unwrap();
    write_synthetic_dir(c.path(), 20, 30, 8).unwrap();
    let (sa, sb, sc) = (
        checksums(a.path()).unwrap(),
        checksums(b.path()).unwrap(),
        checksums(c.path()).unwrap(),
    );
    assert_eq!(sa, sb, "same seed, same bytes");
    assert_ne!(sa, sc, "another seed, other bytes");
    let data = load_dir(a.path()).unwrap();
    assert_eq!(data.train.len(), 100);
    assert_eq!(data.test.len(), 30);
    // Labels are i % 10 before a shuffle: 100 training images give exactly 10 per class.
    assert_eq!(allconv_cifar::label_counts(&data.train.labels), [10; 10]);
    assert_eq!(allconv_cifar::label_counts(&data.test.labels), [3; 10]);
    let meta = std::fs::read_to_string(a.path().join("batches.meta.txt")).unwrap();
    assert_eq!(meta.lines().next(), Some("airplane"));
    assert_eq!(meta.lines().count(), 10);
}

#[test]
fn checksums_are_md5_of_the_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
        std::fs::write(dir.path().join(name), b"abc").unwrap();
    }
    let sums = checksums(dir.path()).unwrap();
    assert_eq!(sums.len(), 6);
    // RFC 1321 test vector: MD5("abc").
    for md5 in sums.values() {
        assert_eq!(md5, "900150983cd24fb0d6963f7d28e17f72");
    }
    verify_checksums(
        dir.path(),
        [("test_batch.bin", "900150983cd24fb0d6963f7d28e17f72")],
    )
    .unwrap();
    let err = verify_checksums(
        dir.path(),
        [("data_batch_3.bin", "00000000000000000000000000000000")],
    )
    .unwrap_err();
    assert!(matches!(err, CifarError::ChecksumMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("data_batch_3.bin") && msg.contains("900150983cd24fb0d6963f7d28e17f72"),
        "{msg}"
    );
}

#[test]
fn the_official_md5_table_matches_the_published_one() {
    // The published table, as listed in docs/protocol.md, Data.
    let table = std::collections::BTreeMap::from(allconv_cifar::OFFICIAL_MD5);
    assert_eq!(
        table["data_batch_1.bin"],
        "5dd7e06a14cb22eb9f671a540d1b7c25"
    );
    assert_eq!(table["test_batch.bin"], "803d5f7f4d78ea53de84dbe85f74fb6d");
    assert_eq!(table.len(), 6);
}

#[test]
fn load_dir_files_keeps_training_files_of_different_sizes_apart() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dir(dir.path(), 6, 4, 2).unwrap();
    // A truncated third file: its first 2 of 6 records (3,073 bytes each).
    let third = dir.path().join(TRAIN_FILES[2]);
    let bytes = std::fs::read(&third).unwrap();
    std::fs::write(&third, &bytes[..2 * RECORD_BYTES]).unwrap();
    let files = allconv_cifar::load_dir_files(dir.path()).unwrap();
    let lens: Vec<usize> = files.train.iter().map(RawSplit::len).collect();
    assert_eq!(lens, [6, 6, 2, 6, 6]);
    for (name, part) in TRAIN_FILES.iter().zip(&files.train) {
        assert_eq!(part, &read_split(&dir.path().join(name)).unwrap(), "{name}");
    }
    assert_eq!(files.clone().into_cifar10(), load_dir(dir.path()).unwrap());
    // First 2 of every file; 3 is more than the third file holds.
    let subset = files.subset(2, 1).unwrap();
    for (k, part) in files.train.iter().enumerate() {
        assert_eq!(subset.train.slice(2 * k..2 * k + 2), part.slice(0..2));
    }
    let err = files.subset(3, 1).unwrap_err().to_string();
    assert!(err.contains("data_batch_3.bin, holds 2"), "{err}");
}
