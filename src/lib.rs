//! tidb-gitops: an offline compiler from a TiDB cluster description and a node
//! storage inventory to placement decisions (and, later, Kubernetes manifests).
//!
//! The pipeline is a chain of pure stages; IO happens only in `cli`.
//! See ARCHITECTURE.md for the code map.

pub mod cli;
pub mod compile;
pub mod config;
pub mod cron;
pub mod diag;
pub mod diff;
pub mod evidence;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod graph;
pub mod input;
pub mod layout;
pub mod load;
pub mod lock;
pub mod manifest;
pub mod model;
pub mod names;
pub mod output;
pub mod place;
pub mod plan;
pub mod quantity;
pub mod report;
pub mod schema;
pub mod simulate;
pub mod spanned;
pub mod validate;
pub mod yaml;

/// How many threads the parallel stages (rendering, writing) use: the
/// cores this process may run on, at most 8, or `TIDB_GITOPS_THREADS`.
/// The output never depends on it.
pub fn threads() -> usize {
    std::env::var("TIDB_GITOPS_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        })
}
