//! YAML for JSON values: the emitter the compiler writes with, and a reader
//! (serde_yaml, deprecated upstream but the standard serde YAML parser, kept
//! behind `parse` so it can be replaced alone) for outputs read back.
//!
//! The compiler emits only JSON-shaped data (maps, lists, strings, numbers,
//! booleans), so a small emitter suffices and is an order of magnitude
//! faster than a general serializer, which matters at thousands of objects.
//! Style: block maps and lists (list items at their key's indentation, as
//! `kubectl` writes them), plain scalars where YAML reads them back as the
//! same string, single quotes otherwise, and literal blocks (`|`) for
//! multi-line text such as scripts and config files, so they read well in
//! a pull-request diff. Key order is the insertion order of the value's
//! maps. The tests parse the output back with a full YAML parser and
//! compare it with the input.

use std::fmt::Write as _;

use serde_json::Value;

/// Every document of a YAML stream (`---`-separated), as JSON values.
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).map_err(|e| e.to_string()))
        .filter(|v| !matches!(v, Ok(Value::Null)))
        .collect()
}

/// One YAML document, without a leading `---`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(1024);
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(list) if !list.is_empty() => write_list(&mut out, list, 0),
        scalar => {
            write_scalar(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > SPACES.len() {
        out.push_str(SPACES);
        n -= SPACES.len();
    }
    out.push_str(&SPACES[..n]);
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, level: usize) {
    for (key, value) in map {
        indent(out, level);
        write_string(out, key, level, true);
        out.push(':');
        write_value(out, value, level);
    }
}

fn write_list(out: &mut String, list: &[Value], level: usize) {
    for item in list {
        indent(out, level);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key goes on the dash's line; the rest line up
                // under it.
                out.push(' ');
                let mut first = true;
                for (key, value) in map {
                    if !first {
                        indent(out, level + 2);
                    }
                    first = false;
                    write_string(out, key, level + 2, true);
                    out.push(':');
                    write_value(out, value, level + 2);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, level + 2);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, level + 2);
                out.push('\n');
            }
        }
    }
}

/// The value after `key:` at `level`.
fn write_value(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, level + 2);
        }
        Value::Array(list) if !list.is_empty() => {
            out.push('\n');
            // Lists under a key are not indented further.
            write_list(out, list, level);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, level + 2);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, level, false),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn write_string(out: &mut String, s: &str, level: usize, is_key: bool) {
    if is_plain(s) {
        out.push_str(s);
    } else if !is_key && s.contains('\n') && block_safe(s) {
        write_block(out, s, level);
    } else if s.chars().all(|c| !special(c)) {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        write_double_quoted(out, s);
    }
}

/// Characters that only a double-quoted scalar keeps: control characters,
/// the Unicode line and paragraph separators (line breaks to a YAML 1.1
/// reader) and the byte order mark.
fn special(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Whether `s` reads back as the same string when written bare.
fn is_plain(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if first == b' ' || last == b' ' || last == b':' {
        return false;
    }
    // Indicators that start something other than a plain scalar.
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) {
        // `-x`, `?x` and `:x` would be plain in block context, but stay
        // quoted to keep the rule simple ("--pd=..." is still plain below).
        if !(first == b'-' && bytes.len() > 1 && bytes[1] != b' ') {
            return false;
        }
    }
    // One pass: only plain bytes, and no `: ` (`#` is not plain at all,
    // so neither is ` #`).
    let mut previous = 0;
    for &b in bytes {
        if !PLAIN[b as usize] || (previous == b':' && b == b' ') {
            return false;
        }
        previous = b;
    }
    !looks_like_other_type(s)
}

/// The bytes a plain scalar may hold here: ASCII letters and digits and
/// ` -_./=:,+@()$`. A table, because this runs for every key and string of
/// every object.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b" -_./=:,+@()$";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// Strings a YAML 1.1 or 1.2 reader would take for a number, boolean or
/// null.
fn looks_like_other_type(s: &str) -> bool {
    const WORDS: [&str; 22] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ];
    // Every such word has at most 5 letters; most strings are longer.
    if s.len() <= 5 && (WORDS.contains(&s) || matches!(s, "null" | "Null" | "NULL" | "~")) {
        return true;
    }
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    if t.is_empty() {
        return false;
    }
    if t.eq_ignore_ascii_case(".inf") || t.eq_ignore_ascii_case(".nan") {
        return true;
    }
    // Anything that starts like a number (digits, `.5`, `0x1F`, `1e3`,
    // `1_000`, `12:30` sexagesimal) is quoted.
    let b = t.as_bytes();
    b[0].is_ascii_digit()
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._:+-".contains(&c))
        || (b[0] == b'.' && b.len() > 1 && b[1].is_ascii_digit())
}

/// A literal block keeps every character as written when no line has
/// leading spaces that would confuse the indentation, no tabs or other
/// control characters, and no trailing spaces (which editors and linters
/// strip).
fn block_safe(s: &str) -> bool {
    !s.starts_with(' ')
        && !s.starts_with('\n')
        && s.chars().all(|c| c == '\n' || !special(c))
        && s.lines().all(|l| !l.ends_with(' '))
}

fn write_block(out: &mut String, s: &str, level: usize) {
    // `|` keeps one final newline, `|-` none, `|+` all of them.
    let trailing = s.len() - s.trim_end_matches('\n').len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    let body = s.trim_end_matches('\n');
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(out, level);
            out.push_str(line);
        }
    }
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if special(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn round_trips(value: &Value) {
        let text = to_string(value);
        let back: Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n--- yaml\n{text}"));
        assert_eq!(&back, value, "--- yaml\n{text}");
    }

    #[test]
    fn writes_block_style_with_lists_at_key_indentation() {
        let text = to_string(&json!({
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": { "name": "x", "annotations": { "argocd.argoproj.io/sync-wave": "1" } },
            "spec": { "ports": [ { "name": "client", "port": 2379 } ], "args": ["--pd=http://a:2379"], "empty": {} },
            "script": "#!/bin/bash\necho hi\n",
        }));
        assert_eq!(
            text,
            "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: x\n  annotations:\n    argocd.argoproj.io/sync-wave: '1'\nspec:\n  ports:\n  - name: client\n    port: 2379\n  args:\n  - --pd=http://a:2379\n  empty: {}\nscript: |\n  #!/bin/bash\n  echo hi\n"
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_read_back_as_strings() {
        for s in [
            "",
            " ",
            "true",
            "no",
            "on",
            "null",
            "~",
            "0",
            "0x1F",
            "1e3",
            "1_000",
            "12:30",
            ".5",
            "-1",
            "+1",
            ".inf",
            "-.nan",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "-",
            "?",
            "x:",
            "'q'",
            "\"d\"",
            "tab\there",
            "ctl\u{1}",
            " lead",
            "trail ",
            "@x",
            "`x",
            "%x",
            "a\nb",
            "a\nb\n",
            "a\nb\n\n",
            "\nlead",
            "  indented\nx",
            "x\n  y\n",
            "end \nx",
            "Prune=false,Delete=false",
            "8GiB",
            "v8.5.1",
            "1788Gi",
            "--labels=zone=a,host=b",
        ] {
            round_trips(&json!({ s: s, "list": [s], "nested": [{ "k": s }] }));
        }
    }

    #[test]
    fn nested_lists_and_scalars_round_trip() {
        round_trips(&json!({
            "a": [[1, 2], [], {}, [{"x": [true, null, 1.5]}]],
            "b": { "c": { "d": [] } },
        }));
        round_trips(&json!([1, "two", {"three": 3}]));
    }

    #[test]
    fn line_separators_and_the_byte_order_mark_round_trip() {
        // Found by the property test below: U+2028 is not a control
        // character, but a YAML 1.1 reader breaks a line there.
        for s in ["\u{2028}", "a\u{2029}b", "\u{feff}x", "x\ny\u{2028}\n"] {
            round_trips(&json!({ s: s, "l": [s, {"k": s}] }));
        }
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in "\\PC{0,12}|[ -~\\n\\t]{0,16}") {
            round_trips(&json!({ s.clone(): s.clone(), "l": [s.clone(), {"k": s}] }));
        }
    }
}
