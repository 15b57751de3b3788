//! `write_subset_dir` writes only where it may: an absent or empty folder, or a subset it
//! wrote before (marked by `allconv-subset.json`); never a copy of the protected data set.

use allconv_cifar::{
    checksums, load_dir, write_subset_dir, write_synthetic_dir, CifarError, SubsetOptions,
    SUBSET_MARKER,
};

#[test]
fn a_subset_is_marked_and_may_replace_only_an_earlier_subset() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("cifar");
    write_synthetic_dir(&source, 8, 8, 3).unwrap();
    let target = tmp.path().join("small");
    let written = write_subset_dir(&source, &target, &SubsetOptions::new(3, 2)).unwrap();
    assert_eq!(load_dir(&target).unwrap(), written);
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(target.join(SUBSET_MARKER)).unwrap()).unwrap();
    assert_eq!(marker["written_by"], "allconv data subset");
    assert_eq!(marker["per_train_file"], 3);
    assert_eq!(marker["test"], 2);
    assert_eq!(marker["complete"], true);
    assert_eq!(
        marker["source"],
        source.canonicalize().unwrap().to_str().unwrap()
    );

    // Another subset replaces it.
    let again = write_subset_dir(&source, &target, &SubsetOptions::new(1, 1)).unwrap();
    assert_eq!(load_dir(&target).unwrap(), again);
    assert_eq!(again.train.len(), 5);

    // Once its files are the protected data set, even a marked folder is refused untouched.
    // (Here the protected sums are those of the subset just written, standing in for the
    // official ones, which a test cannot hold.)
    let protected = checksums(&target).unwrap().into_iter().collect();
    let opts = SubsetOptions {
        protected_md5: protected,
        ..SubsetOptions::new(2, 1)
    };
    let err = write_subset_dir(&source, &target, &opts).unwrap_err();
    assert!(
        matches!(&err, CifarError::SubsetTargetRefused { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("six md5 sums match"), "{err}");
    assert_eq!(load_dir(&target).unwrap(), again);
}

#[test]
fn a_marker_that_was_not_written_by_a_subset_is_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("cifar");
    write_synthetic_dir(&source, 4, 4, 3).unwrap();
    let target = tmp.path().join("mine");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join(SUBSET_MARKER), b"{\"written_by\": \"someone\"}").unwrap();
    let err = write_subset_dir(&source, &target, &SubsetOptions::new(1, 1)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mine") && msg.contains("not empty"), "{msg}");
    assert_eq!(
        std::fs::read(target.join(SUBSET_MARKER)).unwrap(),
        b"{\"written_by\": \"someone\"}"
    );
    // A file where a folder is expected.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let msg = write_subset_dir(&source, &file, &SubsetOptions::new(1, 1))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a folder"), "{msg}");
}

#[test]
fn a_cifar100_subset_keeps_both_labels_and_the_label_names_and_is_marked() {
    use allconv_cifar::{
        read_cifar100_split, write_cifar100_subset_dir, write_synthetic_cifar100_dir,
        CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, FINE_LABEL_NAMES,
    };
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("cifar-100-binary");
    write_synthetic_cifar100_dir(&source, 200, 100, 3).unwrap();
    let target = tmp.path().join("small");
    let (train, test) =
        write_cifar100_subset_dir(&source, &target, &SubsetOptions::new(30, 10)).unwrap();
    let full = read_cifar100_split(&source.join(CIFAR100_TRAIN_FILE)).unwrap();
    let written = read_cifar100_split(&target.join(CIFAR100_TRAIN_FILE)).unwrap();
    assert_eq!(written, train);
    // The first 30 records as stored: both labels and the pixels.
    assert_eq!(written.fine, full.fine[..30]);
    assert_eq!(written.coarse, full.coarse[..30]);
    assert_eq!(written.images, full.images[..30 * 3072]);
    assert_eq!(
        read_cifar100_split(&target.join(CIFAR100_TEST_FILE))
            .unwrap()
            .len(),
        10
    );
    assert_eq!(test.len(), 10);
    assert_eq!(
        std::fs::read(target.join(FINE_LABEL_NAMES)).unwrap(),
        std::fs::read(source.join(FINE_LABEL_NAMES)).unwrap()
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(target.join(SUBSET_MARKER)).unwrap()).unwrap();
    assert_eq!(marker["dataset"], "cifar100");
    assert_eq!(marker["complete"], true);
    // Another CIFAR-100 subset replaces it; more images than train.bin holds are refused.
    write_cifar100_subset_dir(&source, &target, &SubsetOptions::new(5, 5)).unwrap();
    let err = write_cifar100_subset_dir(&source, &target, &SubsetOptions::new(201, 5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("1..=200") && err.contains("201"), "{err}");
}

#[test]
fn a_subset_never_replaces_one_of_the_other_data_set_nor_a_full_cifar100() {
    use allconv_cifar::{
        write_cifar100_subset_dir, write_synthetic_cifar100_dir, CIFAR100_RECORD_BYTES,
        CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE,
    };
    let tmp = tempfile::tempdir().unwrap();
    let cifar10 = tmp.path().join("cifar10");
    write_synthetic_dir(&cifar10, 8, 8, 3).unwrap();
    let cifar100 = tmp.path().join("cifar100");
    write_synthetic_cifar100_dir(&cifar100, 20, 10, 3).unwrap();

    // A CIFAR-10 subset's folder does not take a CIFAR-100 subset (its six files would stay
    // beside train.bin), nor the other way round.
    let small10 = tmp.path().join("small10");
    write_subset_dir(&cifar10, &small10, &SubsetOptions::new(2, 2)).unwrap();
    let err = write_cifar100_subset_dir(&cifar100, &small10, &SubsetOptions::new(2, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a subset of CIFAR-10, not of CIFAR-100"),
        "{err}"
    );
    let small100 = tmp.path().join("small100");
    write_cifar100_subset_dir(&cifar100, &small100, &SubsetOptions::new(2, 2)).unwrap();
    let err = write_subset_dir(&cifar10, &small100, &SubsetOptions::new(2, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a subset of CIFAR-100, not of CIFAR-10"),
        "{err}"
    );

    // A folder holding files of the full CIFAR-100's sizes (50,000 and 10,000 records; sparse
    // here) is refused, even with a subset's marker in it.
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::copy(small100.join(SUBSET_MARKER), full.join(SUBSET_MARKER)).unwrap();
    for (name, records) in [(CIFAR100_TRAIN_FILE, 50_000), (CIFAR100_TEST_FILE, 10_000)] {
        let file = std::fs::File::create(full.join(name)).unwrap();
        file.set_len(records * CIFAR100_RECORD_BYTES as u64)
            .unwrap();
    }
    let err = write_cifar100_subset_dir(&cifar100, &full, &SubsetOptions::new(2, 2)).unwrap_err();
    assert!(err.to_string().contains("full-size CIFAR-100"), "{err}");
    assert_eq!(
        std::fs::metadata(full.join(CIFAR100_TRAIN_FILE))
            .unwrap()
            .len(),
        50_000 * CIFAR100_RECORD_BYTES as u64
    );
}
