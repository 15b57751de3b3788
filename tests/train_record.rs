//! A run's record (`config.yaml`) is written once and trusted: a resume on changed data is
//! refused naming the file and both checksums, unless `--allow-changed-data`, which appends the
//! change (never rewriting the original) and the report shows it; a resume on another CPU kernel
//! path and thread count goes on with a warning and the record lists each segment; the source
//! revision is the one the binary was built from (docs/training.md, "Provenance").

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use allconv_train::config::SavedRunConfig;
use common::{allconv, text, tiny_grid};

/// The tiny grid's run trained to the end of epoch 1 of 2 and killed there (SIGKILL, as by the
/// OOM killer or `scancel --signal=KILL`, right after its first checkpoint): (temp dir, config,
/// runs root, run folder). The first process runs on `threads` threads.
#[cfg(unix)]
fn stopped_after_epoch_1(threads: &str) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 2);
    let run = runs.join("strided-cnn-a/lr-0.01/seed-0");
    let mut child = allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .env("RAYON_NUM_THREADS", threads)
        .env_remove("ALLCONV_CPU_KERNELS")
        .spawn()
        .unwrap();
    let held = common::freeze_trainer_after_first_checkpoint(&run, Duration::from_secs(300));
    child.kill().unwrap();
    child.wait().unwrap();
    held.killed();
    (tmp, config, runs, run)
}

fn resume(config: &Path, extra: &[&str]) -> Command {
    let mut command = allconv();
    command
        .args(["train", "--quiet", "--config"])
        .arg(config)
        .args(extra);
    command
}

/// The report of the runs root `runs` (`allconv report`), as markdown.
fn report_of(runs: &Path) -> String {
    let report = allconv()
        .args(["report", "--runs"])
        .arg(runs)
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", text(&report));
    std::fs::read_to_string(runs.join("report/report.md")).unwrap()
}

fn record(run: &Path) -> SavedRunConfig {
    allconv_train::config::load_yaml(&run.join("config.yaml")).unwrap()
}

fn md5(path: &Path) -> String {
    allconv_cifar::checksums(path.parent().unwrap()).unwrap()
        [path.file_name().unwrap().to_str().unwrap()]
    .clone()
}

#[test]
#[cfg(unix)]
fn a_resume_on_changed_data_is_refused_unless_allowed_and_then_recorded_and_reported() {
    let (tmp, config, runs, run) = stopped_after_epoch_1("2");
    let original = std::fs::read_to_string(run.join("config.yaml")).unwrap();
    // One pixel byte of one training file (byte 0 of a record is its label).
    let file = tmp.path().join("data/data_batch_1.bin");
    let before = md5(&file);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] = bytes[100].wrapping_add(1);
    std::fs::write(&file, &bytes).unwrap();
    let after = md5(&file);

    let refused: Output = resume(&config, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    for needle in [
        "data_batch_1.bin",
        &format!("md5 recorded {before}, now {after}"),
        "--allow-changed-data",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    // Nothing of the record was rewritten, nothing was trained.
    assert_eq!(
        std::fs::read_to_string(run.join("config.yaml")).unwrap(),
        original
    );
    assert!(!run.join("result.json").exists());

    let allowed = resume(&config, &["--allow-changed-data"]).output().unwrap();
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(run.join("result.json").exists());
    let saved = record(&run);
    // The original record stands; the change is appended with both checksums.
    assert_eq!(saved.provenance.data_md5["data_batch_1.bin"], before);
    assert_eq!(saved.provenance.data_changes.len(), 1, "{saved:?}");
    let change = &saved.provenance.data_changes[0];
    assert_eq!((change.epoch, change.step), (1, 0));
    assert_eq!(change.files.len(), 1);
    assert_eq!(
        change.files["data_batch_1.bin"],
        [before.clone(), after.clone()]
    );
    // The scale preprocessing has no fitted statistics: nothing else changed.
    assert_eq!(change.preprocessing_md5, None);
    assert_eq!(saved.provenance.segments.len(), 2);

    let md = report_of(&runs);
    assert!(
        md.contains("data changed during a run (--allow-changed-data)")
            && md.contains(&format!("data_batch_1.bin md5 {before} -> {after}")),
        "{md}"
    );
}

#[test]
#[cfg(unix)]
fn a_resume_on_another_kernel_path_and_thread_count_warns_and_records_each_segment() {
    let (_tmp, config, runs, run) = stopped_after_epoch_1("2");
    let first = record(&run);
    let out = resume(&config, &[])
        .env("ALLCONV_CPU_KERNELS", "portable")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr.contains("resuming after epoch 1 step 0 on portable kernels, 1 threads")
            && stderr.contains("no longer those of an uninterrupted run"),
        "{stderr}"
    );
    let saved = record(&run);
    let segments = &saved.provenance.segments;
    assert_eq!(segments.len(), 2, "{saved:?}");
    assert_eq!((segments[0].epoch, segments[0].threads), (0, 2));
    assert_eq!(segments[0].cpu_kernels, first.provenance.cpu_kernels);
    assert_eq!((segments[1].epoch, segments[1].step), (1, 0));
    assert_eq!(
        (segments[1].cpu_kernels.as_str(), segments[1].threads),
        ("portable", 1)
    );
    // The record of the start is what it was.
    assert_eq!(saved.provenance.threads, 2);
    assert_eq!(saved.provenance.cpu_kernels, first.provenance.cpu_kernels);
    let md = report_of(&runs);
    assert!(md.contains("resumed on other hardware"), "{md}");
    assert!(
        md.contains("from epoch 1 step 0 on portable kernels, 1 threads"),
        "{md}"
    );
}

#[test]
#[cfg(unix)]
fn a_resume_by_the_flag_records_its_path_and_leaves_the_recorded_key_as_it_was() {
    use allconv_models::ops::CpuKernelsChoice;
    let (_tmp, config, _runs, run) = stopped_after_epoch_1("1");
    // The flag decides over the variable, even a misspelt one.
    let out = resume(&config, &["--cpu-kernels", "portable"])
        .env("ALLCONV_CPU_KERNELS", "sse9")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let saved = record(&run);
    let segments = &saved.provenance.segments;
    assert_eq!(segments.len(), 2, "{saved:?}");
    assert_eq!(segments[1].cpu_kernels, "portable");
    // The configuration recorded at the start (no request: `auto`) is not rewritten.
    assert_eq!(saved.config.training.cpu_kernels, CpuKernelsChoice::Auto);
    // A value that names no path is refused, naming the key and what the user wrote.
    let out = resume(&config, &["--set", "training.cpu_kernels=sse9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--set training.cpu_kernels=sse9: unknown variant `sse9`"),
        "{}",
        text(&out)
    );
    // A path named in the configuration is refused on a CPU without it, naming the key (only
    // checkable on such a CPU; src/cli/cpu_kernels.rs checks the refusal with injected features).
    let features = allconv_models::ops::CpuFeatures::detect();
    if !allconv_models::ops::CpuKernels::Avx512.supported_by(features) {
        let out = resume(&config, &["--set", "training.cpu_kernels=avx512"])
            .env_remove("ALLCONV_CPU_KERNELS")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("training.cpu_kernels"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn the_recorded_revision_is_the_binarys_own_wherever_it_runs() {
    let version = allconv().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    // `allconv 0.1.0 (cpu only), git <rev>, uncommitted changes: <true|false|unknown>`.
    let revision = version
        .split(", git ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("{version}"))
        .to_string();
    // The repository this test is built in is a git checkout with git at hand.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    if head.status.success() {
        assert_eq!(revision.len(), 40, "{version}");
        assert!(revision.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
    }

    // Run from a folder that is no git checkout: the record names the binary's revision.
    let tmp = tempfile::tempdir().unwrap();
    let (config, runs) = tiny_grid(tmp.path(), 1);
    let out = allconv()
        .args(["train", "--quiet", "--config"])
        .arg(&config)
        .current_dir(tmp.path())
        .env("RAYON_NUM_THREADS", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let saved = record(&runs.join("strided-cnn-a/lr-0.01/seed-0"));
    assert_eq!(saved.provenance.git_revision, revision);
    let dirty = version.trim().rsplit(": ").next().unwrap();
    assert_eq!(
        saved.provenance.git_dirty.map(|d| d.to_string()),
        (dirty != "unknown").then(|| dirty.to_string()),
        "{version}"
    );
    assert_eq!(saved.provenance.threads, 3);
}

#[test]
#[cfg(unix)]
fn preprocessing_statistics_that_differ_on_the_same_data_and_machine_are_refused() {
    let (_tmp, config, _runs, run) = stopped_after_epoch_1("2");
    // The tiny grid's `scale` preprocessing fits nothing: its statistics md5 is that of no
    // bytes (RFC 1321's test suite: md5("") = d41d8cd98f00b204e9800998ecf8427e). A record
    // that says otherwise stands for statistics that changed under the run.
    let path = run.join("config.yaml");
    let recorded = std::fs::read_to_string(&path).unwrap();
    let empty_md5 = "d41d8cd98f00b204e9800998ecf8427e";
    assert!(recorded.contains(empty_md5), "{recorded}");
    std::fs::write(&path, recorded.replace(empty_md5, &"0".repeat(32))).unwrap();
    let out = resume(&config, &[])
        .env("RAYON_NUM_THREADS", "2")
        .env_remove("ALLCONV_CPU_KERNELS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("the preprocessing statistics differ")
            && stderr.contains(&format!("now {empty_md5}")),
        "{stderr}"
    );
    assert!(!run.join("result.json").exists());
}
