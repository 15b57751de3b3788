//! CIFAR-100 acquisition (docs/protocol.md, "CIFAR-100"): the tarball route against a loopback
//! HTTP server with md5 check and full validation, a second call that only checks, and offline
//! or corrupt downloads failing with an error that lists what was tried and leaves no folder.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use allconv_cifar::fetch::FetchOutcome;
use allconv_cifar::fetch100::{fetch_cifar100, Cifar100FetchOptions, CIFAR100_TARBALL_URL};
use allconv_cifar::{
    load_cifar100_dir, write_synthetic_cifar100_dir, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE,
    COARSE_LABEL_NAMES, FINE_LABEL_NAMES,
};
use md5::{Digest, Md5};

/// Serves `body` to every request on a loopback port.
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => request.extend_from_slice(&buf[..k]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/cifar-100-binary.tar.gz")
}

/// The synthetic folder (30 training, 20 test images) packed as the official tarball is:
/// everything under `cifar-100-binary/`.
fn tarball(dir: &Path) -> Vec<u8> {
    write_synthetic_cifar100_dir(dir, 30, 20, 4).unwrap();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for name in [
        CIFAR100_TRAIN_FILE,
        CIFAR100_TEST_FILE,
        FINE_LABEL_NAMES,
        COARSE_LABEL_NAMES,
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-100-binary/{name}"),
            bytes.as_slice(),
        )
        .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
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
    let md5 = format!("{:x}", Md5::digest(&body));
    let url = serve(body);
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
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        format!("http://127.0.0.1:{port}/cifar-100-binary.tar.gz")
    };
    let err = fetch_cifar100(&dir, &options(dead.clone(), None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tried") && err.contains(&dead) && err.contains("download failed"),
        "{err}"
    );
    assert!(!dir.exists());
    let url = serve(tarball(&tmp.path().join("source")));
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
