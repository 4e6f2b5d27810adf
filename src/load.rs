//! From the texts of a cluster folder to a validated model and lock.
//!
//! Pure: the CLI reads the files and hands their texts here, so tests and
//! benchmarks run the same path without touching the disk.

use crate::diag::{self, Diagnostic, FileKind};
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

/// The text of an input file, or why it cannot be read as one: bytes that
/// are not UTF-8 (pointed at the first bad one) or a leading byte order
/// mark. On failure the diagnostic comes with the text to show it in, bad
/// bytes replaced by U+FFFD, so the renderer can print the line.
pub fn decode(
    kind: FileKind,
    name: &str,
    bytes: Vec<u8>,
) -> Result<String, Box<(Diagnostic, String)>> {
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Err(Box::new(not_utf8(kind, name, e.as_bytes()))),
    };
    if text.starts_with('\u{feff}') {
        let d = Diagnostic::error(format!("{name} starts with a byte order mark (U+FEFF)"))
            .at(kind, 0..3)
            .label("byte order mark")
            .hint("save the file as UTF-8 without a byte order mark (\"UTF-8\", not \"UTF-8 with BOM\")");
        return Err(Box::new((d, text)));
    }
    Ok(text)
}

/// The diagnostic for bytes that are not UTF-8, at the first bad byte, and
/// the text to show it in (bad bytes replaced by U+FFFD, which leaves the
/// offset of the first one unchanged).
pub fn not_utf8(kind: FileKind, name: &str, bytes: &[u8]) -> (Diagnostic, String) {
    let (offset, bad) = match std::str::from_utf8(bytes) {
        Ok(_) => (bytes.len(), None),
        Err(e) => (e.valid_up_to(), bytes.get(e.valid_up_to()).copied()),
    };
    let shown = String::from_utf8_lossy(bytes).into_owned();
    let byte = bad.map_or(String::new(), |b| format!(" 0x{b:02x}"));
    let d = Diagnostic::error(format!("{name} is not UTF-8 text: invalid byte{byte}"))
        .at(kind, offset..(offset + 3).min(shown.len()))
        .label("not UTF-8")
        .hint("save the file as UTF-8 (a Latin-1 or UTF-16 editor setting, or binary data pasted in, causes this)");
    (d, shown)
}
