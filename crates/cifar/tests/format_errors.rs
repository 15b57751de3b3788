//! Every way a data folder can be wrong gives an error naming the file (and record), never a
//! panic and never a partial data set.

use allconv_cifar::{
    load_dir, read_split, write_split, write_synthetic_dir, CifarError, RawSplit, IMAGE_BYTES,
    TEST_FILE,
};

#[test]
fn a_missing_file_is_named_with_the_expected_layout() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dir(dir.path(), 2, 2, 1).unwrap();
    std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, CifarError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("data_batch_4.bin"), "{msg}");
    assert!(
        msg.contains("data_batch_1.bin .. data_batch_5.bin, test_batch.bin"),
        "{msg}"
    );
}

#[test]
fn an_empty_folder_reports_the_first_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_dir(&dir.path().join("nowhere")).unwrap_err();
    assert!(err.to_string().contains("data_batch_1.bin"), "{err}");
}

#[test]
fn a_size_that_is_not_whole_records_reports_the_byte_count() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dir(dir.path(), 2, 2, 1).unwrap();
    // Two records (6,146 bytes) minus one byte: a truncated file.
    let path = dir.path().join(TEST_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    match &err {
        CifarError::BadSize { path: p, bytes } => {
            assert_eq!(p, &path);
            assert_eq!(*bytes, 6145);
        }
        other => panic!("expected BadSize, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("6145 bytes") && msg.contains("test_batch.bin"),
        "{msg}"
    );
    assert!(msg.contains("30,730,000"), "{msg}");
}

#[test]
fn an_empty_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_1.bin");
    std::fs::write(&path, b"").unwrap();
    let err = read_split(&path).unwrap_err();
    assert!(
        matches!(err, CifarError::BadSize { bytes: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn a_label_above_nine_names_the_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dir(dir.path(), 3, 2, 1).unwrap();
    let path = dir.path().join("data_batch_2.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * 3073] = 10; // label byte of record 2
    std::fs::write(&path, &bytes).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    match &err {
        CifarError::BadLabel {
            path: p,
            record,
            label,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*record, 2);
            assert_eq!(*label, 10);
        }
        other => panic!("expected BadLabel, got {other:?}"),
    }
    assert!(
        err.to_string().contains("data_batch_2.bin: record 2"),
        "{err}"
    );
}

#[test]
fn a_bad_test_file_fails_the_whole_load() {
    // The training files are fine; the error in the last file read must still fail the call.
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_dir(dir.path(), 2, 2, 1).unwrap();
    let path = dir.path().join(TEST_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3073] = 255;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        load_dir(dir.path()),
        Err(CifarError::BadLabel {
            record: 1,
            label: 255,
            ..
        })
    ));
}

#[test]
fn writing_an_inconsistent_or_invalid_split_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.bin");
    let short = RawSplit {
        images: vec![0; IMAGE_BYTES - 1],
        labels: vec![0],
    };
    assert!(matches!(
        write_split(&path, &short),
        Err(CifarError::Inconsistent {
            images: 3071,
            labels: 1,
            ..
        })
    ));
    let bad_label = RawSplit {
        images: vec![0; 2 * IMAGE_BYTES],
        labels: vec![3, 11],
    };
    assert!(matches!(
        write_split(&path, &bad_label),
        Err(CifarError::BadLabel {
            record: 1,
            label: 11,
            ..
        })
    ));
    assert!(write_split(&path, &RawSplit::default()).is_err());
    assert!(!path.exists(), "nothing is written for a refused split");
}
