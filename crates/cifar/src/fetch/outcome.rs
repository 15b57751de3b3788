//! What a fetch did, whichever data set and route.

/// What `fetch` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The folder already held files with the expected md5s; nothing was done.
    AlreadyPresent,
    /// The data set was acquired through this route (a human-readable name).
    Fetched {
        /// The route that succeeded.
        route: String,
    },
}
