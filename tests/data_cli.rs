//! `allconv data stats`, `fetch` and `subset` as a user runs them, on synthetic CIFAR-10 and CIFAR-100 folders.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_allconv");

/// `allconv data stats [extra] --data-dir dir`.
fn stats(extra: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(["data", "stats"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

/// `allconv data subset [extra] --per-file per_file --test test --data-dir dir --out to`.
fn subset_of(extra: &[&str], dir: &Path, to: &Path, per_file: &str, test: &str) -> Output {
    Command::new(BIN)
        .args(["data", "subset"])
        .args(extra)
        .args(["--per-file", per_file, "--test", test, "--data-dir"])
        .arg(dir)
        .arg("--out")
        .arg(to)
        .output()
        .unwrap()
}

/// A CIFAR-10 subset of `per_file` training images per file and 2 test images.
fn subset(dir: &Path, to: &Path, per_file: &str) -> Output {
    subset_of(&[], dir, to, per_file, "2")
}

/// The standard output of a command that must have succeeded (else its standard error).
fn succeeded(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn stats_prints_training_channel_means_of_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar");
    allconv_cifar::write_synthetic_dir(&dir, 10, 10, 5).unwrap();
    let text = succeeded(stats(&[], &dir));
    // Red mean by hand from the raw files: byte 1..1025 of every 3,073-byte record.
    let mut sum = 0u64;
    let mut count = 0u64;
    for name in allconv_cifar::TRAIN_FILES {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        for record in bytes.chunks_exact(3073) {
            sum += record[1..1025].iter().map(|&b| u64::from(b)).sum::<u64>();
            count += 1024;
        }
    }
    let red = sum as f64 / count as f64;
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("train mean:"))
        .unwrap_or_else(|| panic!("no train mean line in:\n{text}"));
    let printed: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!((printed - red).abs() < 1e-9, "{printed} vs {red}");
    assert!(text.contains("images: 50 training, 10 test"), "{text}");
    assert!(text.contains("differs from the official file"), "{text}");
}

#[test]
fn stats_on_a_missing_folder_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stats(&[], &tmp.path().join("absent"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data_batch_1.bin"), "{err}");
}

#[test]
fn fetch_refuses_to_touch_a_folder_that_is_not_the_official_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar");
    allconv_cifar::write_synthetic_dir(&dir, 2, 2, 1).unwrap();
    let before = allconv_cifar::checksums(&dir).unwrap();
    let out = Command::new(BIN)
        .args(["data", "fetch", "--no-progress", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data_batch_1.bin") && err.contains("5dd7e06a14cb22eb9f671a540d1b7c25"),
        "{err}"
    );
    assert_eq!(allconv_cifar::checksums(&dir).unwrap(), before);
}

#[test]
fn subset_keeps_the_first_records_of_every_file_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, to) = (tmp.path().join("cifar"), tmp.path().join("small"));
    allconv_cifar::write_synthetic_dir(&dir, 10, 10, 5).unwrap();
    succeeded(subset_of(&[], &dir, &to, "3", "4"));
    // Each output file is the first records (3,073 bytes each) of its source file.
    for name in allconv_cifar::TRAIN_FILES {
        let source = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            std::fs::read(to.join(name)).unwrap(),
            source[..3 * 3073],
            "{name}"
        );
    }
    let test = std::fs::read(dir.join(allconv_cifar::TEST_FILE)).unwrap();
    assert_eq!(
        std::fs::read(to.join(allconv_cifar::TEST_FILE)).unwrap(),
        test[..4 * 3073]
    );

    // More than a file holds: refused, naming the limit.
    let out = subset_of(&[], &dir, &tmp.path().join("too-big"), "11", "4");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected 1..=10 images"), "{err}");
}

/// Replaces `name` in `dir` by its first `records` records, as a truncated copy would be.
fn truncate_file(dir: &std::path::Path, name: &str, records: usize) {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..records * 3073]).unwrap();
}

/// Label counts of a file read straight from its bytes: the first byte of every 3,073-byte
/// record is the label (the official record layout, docs/protocol.md, Data).
fn label_counts_by_hand(path: &std::path::Path) -> [usize; 10] {
    let mut counts = [0usize; 10];
    for record in std::fs::read(path).unwrap().chunks_exact(3073) {
        counts[record[0] as usize] += 1;
    }
    counts
}

#[test]
fn stats_counts_the_labels_of_each_file_itself_when_files_differ_in_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar");
    allconv_cifar::write_synthetic_dir(&dir, 10, 10, 5).unwrap();
    truncate_file(&dir, "data_batch_3.bin", 4);
    let text = succeeded(stats(&[], &dir));
    assert!(text.contains("images: 44 training, 10 test"), "{text}");
    for name in allconv_cifar::TRAIN_FILES {
        let expected = label_counts_by_hand(&dir.join(name));
        let line = format!("  label counts {name}: {expected:?}");
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }
    // 4 images in the truncated file, 10 in every other.
    let sums: Vec<usize> = allconv_cifar::TRAIN_FILES
        .iter()
        .map(|name| label_counts_by_hand(&dir.join(name)).iter().sum())
        .collect();
    assert_eq!(sums, [10, 10, 4, 10, 10]);
}

#[test]
fn subset_takes_the_first_records_of_each_file_when_files_differ_in_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, to) = (tmp.path().join("cifar"), tmp.path().join("small"));
    allconv_cifar::write_synthetic_dir(&dir, 10, 10, 5).unwrap();
    // 10 + 10 + 5 + 10 + 10 = 45 images: five equal chunks of 9 would cut across the files.
    truncate_file(&dir, "data_batch_3.bin", 5);
    succeeded(subset(&dir, &to, "3"));
    for name in allconv_cifar::TRAIN_FILES {
        let source = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            std::fs::read(to.join(name)).unwrap(),
            source[..3 * 3073],
            "{name}"
        );
    }

    // More than the smallest file holds: refused, naming that file and its size.
    let out = subset(&dir, &tmp.path().join("too-big"), "6");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expected 1..=5 images") && err.contains("data_batch_3.bin"),
        "{err}"
    );
    assert!(!tmp.path().join("too-big").exists());
}

#[test]
fn subset_never_overwrites_its_source_or_a_folder_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar");
    allconv_cifar::write_synthetic_dir(&dir, 10, 10, 5).unwrap();
    let source_sums = allconv_cifar::checksums(&dir).unwrap();

    // Its own source folder: refused, the source is untouched.
    let out = subset(&dir, &dir, "3");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("source"), "{err}");
    assert_eq!(allconv_cifar::checksums(&dir).unwrap(), source_sums);
    // Also when spelled differently.
    let out = subset(&dir, &tmp.path().join(".").join("cifar"), "3");
    assert!(!out.status.success());
    assert_eq!(allconv_cifar::checksums(&dir).unwrap(), source_sums);

    // A folder holding anything else (here another copy of the data): refused, untouched.
    let other = tmp.path().join("other");
    allconv_cifar::write_synthetic_dir(&other, 4, 4, 9).unwrap();
    std::fs::write(other.join("notes.txt"), b"mine").unwrap();
    let other_sums = allconv_cifar::checksums(&other).unwrap();
    let out = subset(&dir, &other, "3");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other") && err.contains("not empty"), "{err}");
    assert_eq!(allconv_cifar::checksums(&other).unwrap(), other_sums);
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"mine");

    // An empty folder is filled; a subset it wrote earlier may be replaced by another.
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    assert!(subset(&dir, &small, "3").status.success());
    succeeded(subset(&dir, &small, "2"));
    let source = std::fs::read(dir.join("data_batch_4.bin")).unwrap();
    assert_eq!(
        std::fs::read(small.join("data_batch_4.bin")).unwrap(),
        source[..2 * 3073]
    );
    // That subset is itself a source whose subsets may not be written over it.
    let out = subset(&small, &small, "1");
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read(small.join("data_batch_4.bin")).unwrap(),
        source[..2 * 3073]
    );
}

#[test]
fn stats_of_cifar100_counts_both_label_sets_of_each_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-100-binary");
    allconv_cifar::write_synthetic_cifar100_dir(&dir, 200, 100, 5).unwrap();
    let text = succeeded(stats(&["--dataset", "cifar100"], &dir));
    assert!(text.contains("images: 200 training, 100 test"), "{text}");
    // From the bytes: a 3,074-byte record is coarse label, fine label, 3,072 pixel bytes
    // (docs/protocol.md, "CIFAR-100").
    for name in ["train.bin", "test.bin"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (mut coarse, mut fine) = (vec![0usize; 20], vec![0usize; 100]);
        for record in bytes.chunks_exact(3074) {
            coarse[record[0] as usize] += 1;
            fine[record[1] as usize] += 1;
        }
        for line in [
            format!("  coarse label counts {name}: {coarse:?}"),
            format!("  fine label counts {name}: {fine:?}"),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
    let bytes = std::fs::read(dir.join("train.bin")).unwrap();
    let red: u64 = bytes
        .chunks_exact(3074)
        .map(|r| r[2..1026].iter().map(|&b| u64::from(b)).sum::<u64>())
        .sum();
    let red = red as f64 / (200.0 * 1024.0);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("train mean:"))
        .unwrap_or_else(|| panic!("no train mean line in:\n{text}"));
    let printed: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!((printed - red).abs() < 1e-9, "{printed} vs {red}");
}

#[test]
fn subset_of_cifar100_keeps_the_first_records_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, to) = (
        tmp.path().join("cifar-100-binary"),
        tmp.path().join("small"),
    );
    allconv_cifar::write_synthetic_cifar100_dir(&dir, 200, 100, 5).unwrap();
    let args =
        |to: &Path, per_file: &str| subset_of(&["--dataset", "cifar100"], &dir, to, per_file, "7");
    let stdout = succeeded(args(&to, "30"));
    assert!(stdout.contains("30 training images"), "{stdout}");
    for (name, records) in [("train.bin", 30), ("test.bin", 7)] {
        let source = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            std::fs::read(to.join(name)).unwrap(),
            source[..records * 3074],
            "{name}"
        );
    }
    // A folder it did not write is refused and left as it was.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let out = args(&mine, "3");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty") && err.contains("--out"), "{err}");
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}
