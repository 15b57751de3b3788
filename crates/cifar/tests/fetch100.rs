//! CIFAR-100 acquisition (docs/protocol.md, "CIFAR-100"): the tarball route against a loopback
//! HTTP server with md5 check and full validation, a second call that only checks, and offline
//! or corrupt downloads failing with an error that lists what was tried and leaves no folder.

mod common;

use std::path::Path;
use std::time::Duration;

use allconv_cifar::fetch::FetchOutcome;
use allconv_cifar::fetch100::{fetch_cifar100, Cifar100FetchOptions, CIFAR100_TARBALL_URL};
use allconv_cifar::{
    load_cifar100_dir, write_synthetic_cifar100_dir, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE,
    COARSE_LABEL_NAMES, FINE_LABEL_NAMES,
};
use common::{dead_url, md5_hex, serve, targz};

/// The synthetic folder (30 training, 20 test images) packed as the official tarball is:
/// everything under `cifar-100-binary/`.
fn tarball(dir: &Path) -> Vec<u8> {
    write_synthetic_cifar100_dir(dir, 30, 20, 4).unwrap();
    let files: Vec<(String, Vec<u8>)> = [
        CIFAR100_TRAIN_FILE,
        CIFAR100_TEST_FILE,
        FINE_LABEL_NAMES,
        COARSE_LABEL_NAMES,
    ]
    .iter()
    .map(|name| (name.to_string(), std::fs::read(dir.join(name)).unwrap()))
    .collect();
    targz("cifar-100-binary", &files)
}

/// A loopback URL serving `body` as the CIFAR-100 tarball.
fn serve_tarball(body: Vec<u8>) -> String {
    serve(body, "cifar-100-binary.tar.gz").0
}

fn options(url: String, md5: Option<String>) -> Cifar100FetchOptions {
    Cifar100FetchOptions {
        tarball_url: url,
        tarball_md5: md5,
        records: vec![
            (CIFAR100_TRAIN_FILE.to_string(), 30),
            (CIFAR100_TEST_FILE.to_string(), 20),
        ],
        timeout: Duration::from_secs(5),
        progress: false,
        quiet: true,
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_official_url_and_md5_are_the_defaults() {
    let opts = Cifar100FetchOptions::default();
    assert_eq!(
        opts.tarball_url,
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
    );
    assert_eq!(opts.tarball_url, CIFAR100_TARBALL_URL);
    // The md5 the data set's page lists for the binary version.
    assert_eq!(
        opts.tarball_md5.as_deref(),
        Some("03b5dce01913d631647c71ecec9e9cb8")
    );
    assert_eq!(
        opts.records,
        [
            ("train.bin".to_string(), 50_000),
            ("test.bin".to_string(), 10_000)
        ]
    );
}

#[test]
fn tarball_route_fetches_validates_and_a_second_call_only_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let body = tarball(&tmp.path().join("source"));
    let md5 = md5_hex(&body);
    let url = serve_tarball(body);
    let parent = tmp.path().join("data");
    let dir = parent.join("cifar-100-binary");
    let outcome = fetch_cifar100(&dir, &options(url.clone(), Some(md5.clone()))).unwrap();
    assert!(
        matches!(outcome, FetchOutcome::Fetched { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        load_cifar100_dir(&dir, false).unwrap(),
        load_cifar100_dir(&tmp.path().join("source"), false).unwrap()
    );
    // No staging or download folder is left next to it.
    assert_eq!(names(&parent), ["cifar-100-binary"]);
    assert_eq!(
        fetch_cifar100(&dir, &options(url.clone(), Some(md5))).unwrap(),
        FetchOutcome::AlreadyPresent
    );
    // A folder with another record count is refused, not overwritten.
    let mut expect_more = options(url, None);
    expect_more.records[0].1 = 50_000;
    let err = fetch_cifar100(&dir, &expect_more).unwrap_err().to_string();
    assert!(err.contains("30 records, expected 50000"), "{err}");
}

#[test]
fn offline_or_a_wrong_md5_fails_naming_what_was_tried_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("data");
    let dir = parent.join("cifar-100-binary");
    // Nothing listens on this port: offline.
    let dead = dead_url("cifar-100-binary.tar.gz");
    let err = fetch_cifar100(&dir, &options(dead.clone(), None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tried") && err.contains(&dead) && err.contains("download failed"),
        "{err}"
    );
    assert!(!dir.exists());
    let url = serve_tarball(tarball(&tmp.path().join("source")));
    let err = fetch_cifar100(&dir, &options(url, Some("0".repeat(32))))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("md5") && err.contains(&"0".repeat(32)),
        "{err}"
    );
    assert!(!dir.exists());
    assert_eq!(names(&parent), Vec::<String>::new());
}
