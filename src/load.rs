//! From the texts of a cluster folder to a validated model and lock.
//!
//! Pure: the CLI reads the files and hands their texts here, so tests and
//! benchmarks run the same path without touching the disk.

use crate::diag::{self, Diagnostic};
use crate::input;
use crate::lock::{self, Lock};
use crate::model::Model;
use crate::validate;

/// The texts of a cluster folder. `lock` is `None` when there is no lock yet.
#[derive(Clone, Copy, Debug)]
pub struct Texts<'a> {
    pub cluster: &'a str,
    pub inventory: &'a str,
    pub lock: Option<&'a str>,
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub model: Model,
    pub lock: Lock,
}

/// Parses and validates all three files, collecting every problem.
/// Warnings are returned alongside a successful load.
pub fn load(texts: Texts<'_>) -> (Option<Loaded>, Vec<Diagnostic>) {
    let (cluster, mut diagnostics) = input::read_cluster(texts.cluster);
    let (inventory, more) = input::read_inventory(texts.inventory);
    diagnostics.extend(more);
    let lock = match texts.lock {
        Some(text) => match lock::parse(text) {
            Ok(lock) => Some(lock),
            Err(more) => {
                diagnostics.extend(more);
                None
            }
        },
        None => Some(Lock::default()),
    };
    let model = validate::validate(
        cluster.as_ref(),
        inventory.as_ref(),
        texts.inventory,
        &mut diagnostics,
    );
    let loaded = match (model, lock) {
        (Some(model), Some(lock)) if !diag::has_errors(&diagnostics) => {
            Some(Loaded { model, lock })
        }
        _ => None,
    };
    diag::sort(&mut diagnostics);
    (loaded, diagnostics)
}
