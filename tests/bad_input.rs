//! Hostile input: huge numbers, deep nesting, very long strings, bytes that
//! are not UTF-8, empty files, NUL bytes and byte order marks, in each
//! input file (`cluster.toml`, `inventory.toml`, `placement.lock`, an
//! `--observed` JSON file). Each case breaks one file of a copy of
//! `examples/minimal` and runs the real binary: it must exit with 2, name
//! the file (with line and column where there is a line), print a bounded
//! amount, and write nothing: the folder, the lock and the output folder
//! are byte for byte what they were, with no previous output and with a
//! previous good one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CLUSTER: &str = "cluster.toml";
const INVENTORY: &str = "inventory.toml";
const LOCK: &str = "placement.lock";
const OBSERVED: &str = "observed.json";

/// A good evidence file for the minimal example.
const GOOD_OBSERVED: &str = r#"{"count":1,"stores":[{"store":{"id":1,"address":"mini-tikv-0-0.mini-tikv-peer.mini.svc:20160","state_name":"Up"},"status":{}}]}
"#;

fn example(name: &str) -> String {
    if name == OBSERVED {
        return GOOD_OBSERVED.to_string();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/minimal")
        .join(name);
    std::fs::read_to_string(path).expect("read example")
}

/// The example file with line `n` (1-based) replaced.
fn with_line(name: &str, n: usize, line: &str) -> Vec<u8> {
    let text = example(name);
    let mut lines: Vec<&str> = text.lines().collect();
    lines[n - 1] = line;
    (lines.join("\n") + "\n").into_bytes()
}

/// The example file with bytes appended after its last line.
fn with_tail(name: &str, tail: &[u8]) -> Vec<u8> {
    let mut bytes = example(name).into_bytes();
    bytes.extend_from_slice(tail);
    bytes
}

fn run(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidb-gitops"))
        .args(["compile", ".", "--observed", OBSERVED])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tidb-gitops")
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// A copy of the minimal example with a good evidence file; compiled
/// first when `previous` is set.
fn folder(previous: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [CLUSTER, INVENTORY, LOCK, OBSERVED] {
        std::fs::write(dir.path().join(name), example(name)).expect("write input");
    }
    if previous {
        let out = run(dir.path());
        assert_eq!(
            out.status.code(),
            Some(0),
            "the example does not compile: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dir.path().join("deploy").is_dir());
    }
    dir
}

/// Writes `bytes` as `name` and checks the run fails cleanly: exit 2, the
/// file named (at `line`, with a column, when given), the `expect`ed
/// phrases, a bounded message, nothing written. With and without a
/// previous output.
fn rejects(name: &str, bytes: &[u8], line: Option<usize>, expect: &[&str]) {
    for previous in [false, true] {
        let dir = folder(previous);
        std::fs::write(dir.path().join(name), bytes).expect("write broken file");
        let before = snapshot(dir.path());
        let out = run(dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context = format!("{name} (previous output: {previous}):\n{stderr}");
        assert_eq!(out.status.code(), Some(2), "{context}");
        assert!(stderr.contains(name), "the file is not named: {context}");
        if let Some(line) = line {
            let at = format!("{name}:{line}:");
            let column = stderr
                .split(&at)
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .unwrap_or("");
            assert!(
                !column.is_empty(),
                "no {name}:{line}:COLUMN in the message: {context}"
            );
        }
        for phrase in expect {
            assert!(stderr.contains(phrase), "no `{phrase}` in: {context}");
        }
        assert!(
            stderr.len() < 8_000,
            "{} bytes of messages for {name}: {}",
            stderr.len(),
            &stderr[..stderr.len().min(2_000)]
        );
        assert!(
            out.stdout.len() < 8_000,
            "{} bytes on stdout",
            out.stdout.len()
        );
        assert_eq!(
            snapshot(dir.path()),
            before,
            "something was written: {context}"
        );
    }
}

fn nested(open: &str, close: &str, depth: usize) -> String {
    open.repeat(depth) + &close.repeat(depth)
}

const DEEP: usize = 100_000;

// ---------------------------------------------------------------------------
// Huge numbers

#[test]
fn replicas_beyond_any_integer() {
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 17, "replicas = 99999999999999999999999"),
        Some(17),
        &[],
    );
}

#[test]
fn replicas_as_a_float_beyond_range() {
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 17, "replicas = 1e400"),
        Some(17),
        &[],
    );
}

#[test]
fn replicas_negative() {
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 13, "replicas = -1"),
        Some(13),
        &[],
    );
}

#[test]
fn replicas_i64_max_where_u32_is_expected() {
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 17, "replicas = 9223372036854775807"),
        Some(17),
        &[],
    );
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 10, "max_replicas = -9223372036854775808"),
        Some(10),
        &[],
    );
}

#[test]
fn storage_beyond_any_quantity() {
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 18, "storage = \"99999999999999999999Ti\""),
        Some(18),
        &[],
    );
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 14, "storage = \"1e400\""),
        Some(14),
        &[],
    );
}

#[test]
fn capacity_beyond_any_quantity() {
    rejects(
        INVENTORY,
        &with_line(INVENTORY, 10, "capacity = \"99999999999999999999999999Ti\""),
        Some(10),
        &[],
    );
}

#[test]
fn lock_numbers_beyond_range() {
    rejects(
        LOCK,
        &with_line(LOCK, 3, "version = 99999999999999999999"),
        Some(3),
        &[],
    );
    rejects(LOCK, &with_line(LOCK, 7, "tikv = -1"), Some(7), &[]);
    rejects(
        LOCK,
        &with_line(LOCK, 17, "id = \"tikv-99999999999999999999\""),
        Some(17),
        &[],
    );
}

#[test]
fn observed_store_id_beyond_range() {
    let json = GOOD_OBSERVED.replace("\"id\":1", "\"id\":99999999999999999999999");
    rejects(OBSERVED, json.as_bytes(), None, &[]);
    let json = GOOD_OBSERVED.replace("\"id\":1", "\"id\":1e400");
    rejects(OBSERVED, json.as_bytes(), Some(1), &[]);
}

// ---------------------------------------------------------------------------
// Deep nesting

#[test]
fn deep_arrays_and_tables_in_cluster_toml() {
    let deep = format!("\n[tikv.config]\nx = {}\n", nested("[", "]", DEEP));
    rejects(CLUSTER, &with_tail(CLUSTER, deep.as_bytes()), Some(24), &[]);
    let deep = format!("\n[tikv.config]\nx = {}\n", nested("{a = ", "}", DEEP));
    rejects(CLUSTER, &with_tail(CLUSTER, deep.as_bytes()), Some(24), &[]);
    let keys = vec!["a"; DEEP].join(".");
    let deep = format!("\n[tikv.config]\n{keys} = 1\n");
    rejects(CLUSTER, &with_tail(CLUSTER, deep.as_bytes()), Some(24), &[]);
    let deep = format!("\n[{keys}]\n");
    rejects(CLUSTER, &with_tail(CLUSTER, deep.as_bytes()), Some(23), &[]);
}

#[test]
fn deep_nesting_in_inventory_toml() {
    let deep = format!("labels = {}", nested("{a = ", "}", DEEP));
    rejects(INVENTORY, &with_line(INVENTORY, 7, &deep), Some(7), &[]);
    let deep = format!("x = {}", nested("[", "]", DEEP));
    rejects(INVENTORY, &with_line(INVENTORY, 7, &deep), Some(7), &[]);
}

#[test]
fn deep_nesting_in_placement_lock() {
    let deep = format!("x = {}", nested("[", "]", DEEP));
    rejects(LOCK, &with_line(LOCK, 4, &deep), Some(4), &[]);
}

#[test]
fn deep_nesting_in_observed_json() {
    let deep = format!("{{\"stores\": {}}}", nested("[", "]", DEEP));
    rejects(OBSERVED, deep.as_bytes(), Some(1), &[]);
    let deep = format!("{}{}", "{\"a\":".repeat(DEEP), "}".repeat(DEEP));
    rejects(OBSERVED, deep.as_bytes(), Some(1), &[]);
}

// ---------------------------------------------------------------------------
// Very long strings

#[test]
fn a_ten_megabyte_cluster_name() {
    let name = format!("name = \"{}\"", "a".repeat(10 << 20));
    rejects(CLUSTER, &with_line(CLUSTER, 6, &name), Some(6), &["..."]);
}

#[test]
fn a_one_megabyte_key() {
    let key = format!("{} = 1", "k".repeat(1 << 20));
    rejects(CLUSTER, &with_line(CLUSTER, 15, &key), Some(15), &["..."]);
    let key = format!("\"{}\" = 1", "k.".repeat(1 << 19));
    rejects(
        CLUSTER,
        &with_tail(CLUSTER, format!("\n[tikv.config]\n{key}\n").as_bytes()),
        Some(23),
        &["levels deep"],
    );
    let labels = format!("labels = {{ \"{}\" = \"x\" }}", "l".repeat(1 << 20));
    rejects(
        INVENTORY,
        &with_line(INVENTORY, 7, &labels),
        Some(7),
        &["..."],
    );
}

#[test]
fn long_strings_in_the_lock_and_the_evidence() {
    let node = format!("node = \"{}\"", "n".repeat(10 << 20));
    rejects(
        LOCK,
        &with_line(LOCK, 19, &node),
        Some(19),
        &["invalid node"],
    );
    let json = GOOD_OBSERVED.replace("mini-tikv-0-0", &"x".repeat(10 << 20));
    rejects(OBSERVED, json.as_bytes(), None, &["longer than PD writes"]);
    // A syntax error at the end of a 10 MB line: the line is cut.
    let json = format!("{{\"stores\": \"{}\" x}}", "y".repeat(10 << 20));
    rejects(OBSERVED, json.as_bytes(), Some(1), &["..."]);
}

// ---------------------------------------------------------------------------
// Not UTF-8, empty, NUL, byte order mark

#[test]
fn bytes_that_are_not_utf8() {
    for (name, line, at) in [(CLUSTER, 6, 8), (INVENTORY, 6, 8), (LOCK, 12, 8)] {
        let text = example(name);
        let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
        lines[line - 1].insert(at, 0xff);
        let bytes = lines.join(&b'\n');
        rejects(
            name,
            &bytes,
            Some(line),
            &["not UTF-8", &format!(":{line}:{}", at + 1)],
        );
    }
    let mut json = GOOD_OBSERVED.as_bytes().to_vec();
    json.insert(40, 0xc3);
    rejects(OBSERVED, &json, Some(1), &["not UTF-8", ":1:41"]);
    // Latin-1 text: an `é` as one byte.
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 2, "# caf\u{e9}")
            .into_iter()
            .flat_map(|b| {
                if b == 0xc3 {
                    vec![]
                } else if b == 0xa9 {
                    vec![0xe9]
                } else {
                    vec![b]
                }
            })
            .collect::<Vec<u8>>(),
        Some(2),
        &["not UTF-8", ":2:6"],
    );
}

#[test]
fn empty_files() {
    rejects(CLUSTER, b"", None, &[]);
    rejects(INVENTORY, b"", None, &[]);
    rejects(LOCK, b"", None, &[]);
    rejects(OBSERVED, b"", None, &[]);
}

#[test]
fn nul_bytes() {
    rejects(
        CLUSTER,
        &with_line(CLUSTER, 6, "name = \"mi\0ni\""),
        Some(6),
        &[],
    );
    rejects(CLUSTER, &with_line(CLUSTER, 4, "\0"), Some(4), &[]);
    rejects(
        INVENTORY,
        &with_line(INVENTORY, 6, "name = \"kind\0\""),
        Some(6),
        &[],
    );
    rejects(LOCK, &with_line(LOCK, 4, "\0"), Some(4), &[]);
    rejects(OBSERVED, b"{\"stores\": [\0]}", Some(1), &[]);
}

#[test]
fn byte_order_marks() {
    for name in [CLUSTER, INVENTORY, LOCK, OBSERVED] {
        let mut bytes = "\u{feff}".as_bytes().to_vec();
        bytes.extend_from_slice(example(name).as_bytes());
        rejects(name, &bytes, Some(1), &["byte order mark"]);
    }
}
