//! tidb-gitops: an offline compiler from a TiDB cluster description and a node
//! storage inventory to placement decisions (and, later, Kubernetes manifests).
//!
//! The pipeline is a chain of pure stages; IO happens only in `cli`.
//! See ARCHITECTURE.md for the code map.

pub mod cli;
pub mod compile;
pub mod config;
pub mod diag;
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
pub mod quantity;
pub mod report;
pub mod schema;
pub mod spanned;
pub mod validate;
pub mod yaml;
