//! Component configuration: placeholder until the config module lands.
use crate::diag::Diagnostic;
use crate::model::Model;

/// The rendered `pd.toml`, `tikv.toml` and `tidb.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configs {
    pub pd: String,
    pub tikv: String,
    pub tidb: String,
}

/// Checks the keys of `[pd.config]`, `[tikv.config]` and `[tidb.config]`.
pub fn check(_model: &Model, _cluster_text: &str, _strict: bool) -> Vec<Diagnostic> {
    Vec::new()
}

/// Renders the three config files.
pub fn render(_model: &Model) -> Configs {
    Configs {
        pd: String::new(),
        tikv: String::new(),
        tidb: String::new(),
    }
}
