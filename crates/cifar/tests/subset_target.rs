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
