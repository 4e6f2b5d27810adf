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

/// `parse`, fast for the YAML this module writes: block maps and lists,
/// plain, quoted and literal-block scalars, `{}` and `[]`. Reading back
/// thousands of files of an output (a plan of an upgrade) with a general
/// parser takes seconds; this takes a tenth of that. Text in any other
/// style, such as a file edited by hand, goes to the general parser.
pub fn parse_fast(text: &str) -> Result<Vec<Value>, String> {
    match Reader::documents(text) {
        Some(docs) => Ok(docs),
        None => parse(text),
    }
}

/// A reader of this module's own output; every method returns `None` at
/// the first thing the emitter would not have written.
struct Reader<'a> {
    lines: Vec<&'a str>,
    i: usize,
}

impl<'a> Reader<'a> {
    fn documents(text: &'a str) -> Option<Vec<Value>> {
        let body = text.strip_suffix('\n')?;
        let mut docs = Vec::new();
        let mut lines: Vec<&str> = Vec::new();
        for line in body.split('\n') {
            if line == "---" {
                docs.push(Self::document(std::mem::take(&mut lines))?);
            } else {
                lines.push(line);
            }
        }
        docs.push(Self::document(lines)?);
        Some(docs.into_iter().flatten().collect())
    }

    fn document(lines: Vec<&'a str>) -> Option<Option<Value>> {
        let skip = lines.iter().take_while(|l| l.starts_with('#')).count();
        let lines = lines[skip..].to_vec();
        if lines.is_empty() {
            return Some(None);
        }
        let mut reader = Reader { lines, i: 0 };
        let value = reader.node(0)?;
        (reader.i == reader.lines.len()).then_some(Some(value))
    }

    fn line(&self) -> Option<&'a str> {
        self.lines.get(self.i).copied()
    }

    /// The map or list starting at line `i`, column `indent`.
    fn node(&mut self, indent: usize) -> Option<Value> {
        let rest = self.line()?.get(indent..)?;
        if is_item(rest) {
            self.list(indent)
        } else {
            self.map(indent, false)
        }
    }

    /// Whether line `i` holds exactly `indent` spaces, then `rest`.
    fn at(&self, indent: usize) -> Option<&'a str> {
        let line = self.line()?;
        let rest = line.get(indent..)?;
        (line.as_bytes()[..indent].iter().all(|b| *b == b' ') && !rest.starts_with(' '))
            .then_some(rest)
    }

    /// A block map at `indent`; with `first`, its first key is on the
    /// current line after a list item's `- `.
    fn map(&mut self, indent: usize, first: bool) -> Option<Value> {
        let mut map = serde_json::Map::new();
        let mut first = first;
        loop {
            let rest = if first {
                self.line()?.get(indent..)?
            } else {
                match self.at(indent) {
                    Some(rest) if !rest.is_empty() && !is_item(rest) => rest,
                    _ => break,
                }
            };
            first = false;
            let (key, after) = scalar_token(rest)?;
            let key = match key {
                Token::Plain(s) if is_plain(s) => s.to_string(),
                Token::Plain(_) => return None,
                Token::Quoted(s) => s,
            };
            let after = after.strip_prefix(':')?;
            let value = self.value(after, indent)?;
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }

    /// A block list at `indent`.
    fn list(&mut self, indent: usize) -> Option<Value> {
        let mut list = Vec::new();
        while let Some(rest) = self.at(indent) {
            if rest == "-" {
                self.i += 1;
                list.push(self.list(indent + 2)?);
            } else if let Some(item) = rest.strip_prefix("- ") {
                let is_map = scalar_token(item)
                    .is_some_and(|(_, after)| after == ":" || after.starts_with(": "));
                if is_map {
                    list.push(self.map(indent + 2, true)?);
                } else {
                    list.push(self.value(&format!(" {item}"), indent)?);
                }
            } else {
                break;
            }
        }
        (!list.is_empty()).then_some(Value::Array(list))
    }

    /// The value after a key's `:` (or a list item's `-`), whose map or
    /// list is at `indent`: advances past every line it takes.
    fn value(&mut self, after: &str, indent: usize) -> Option<Value> {
        if after.is_empty() {
            // A map below, indented, or a list at the key's indentation.
            self.i += 1;
            let rest = self.line()?;
            let list_here = rest.get(indent..).is_some_and(is_item);
            return if list_here {
                self.list(indent)
            } else {
                self.map(indent + 2, false)
            };
        }
        let text = after.strip_prefix(' ')?;
        self.i += 1;
        match text {
            "{}" => return Some(Value::Object(serde_json::Map::new())),
            "[]" => return Some(Value::Array(Vec::new())),
            "|" | "|-" | "|+" => return self.block(text, indent + 2),
            _ => {}
        }
        let (token, rest) = scalar_token(text)?;
        if !rest.is_empty() {
            return None;
        }
        match token {
            Token::Quoted(s) => Some(Value::String(s)),
            Token::Plain(s) => plain_value(s),
        }
    }

    /// A literal block's lines at `indent`, after its `|`, `|-` or `|+`.
    fn block(&mut self, style: &str, indent: usize) -> Option<Value> {
        let start = self.i;
        while let Some(line) = self.line() {
            if line.is_empty()
                || line
                    .get(..indent)
                    .is_some_and(|p| p.bytes().all(|b| b == b' '))
            {
                self.i += 1;
            } else {
                break;
            }
        }
        let mut taken = &self.lines[start..self.i];
        let trailing_empty = taken.iter().rev().take_while(|l| l.is_empty()).count();
        taken = &taken[..taken.len() - trailing_empty];
        if taken.is_empty() || (style != "|+" && trailing_empty > 0) {
            return None;
        }
        let mut s = String::new();
        for (n, line) in taken.iter().enumerate() {
            if n > 0 {
                s.push('\n');
            }
            s.push_str(line.get(indent..).unwrap_or(""));
        }
        let newlines = match style {
            "|-" => 0,
            "|" => 1,
            _ => trailing_empty + 1,
        };
        s.extend(std::iter::repeat_n('\n', newlines));
        Some(Value::String(s))
    }
}

/// Whether a line (after its indentation) is a list item.
fn is_item(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ")
}

enum Token<'a> {
    Plain(&'a str),
    Quoted(String),
}

/// A key or scalar at the start of `s`: quoted up to its closing quote, or
/// plain up to a `: ` or `:` at the end. Returns it and what follows.
fn scalar_token(s: &str) -> Option<(Token<'_>, &str)> {
    if let Some(rest) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if rest[i + 1..].starts_with('\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    return Some((Token::Quoted(out), &rest[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        None
    } else if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((Token::Quoted(out), &rest[i + 1..])),
                '\\' => match chars.next()?.1 {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String =
                            (0..4).filter_map(|_| chars.next().map(|c| c.1)).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        None
    } else {
        let end = s.find(": ").unwrap_or(s.len());
        let end = if end == s.len() && s.ends_with(':') {
            end - 1
        } else {
            end
        };
        // Checked by the caller: a key must be a plain string, a value
        // may be a number, boolean or null.
        (end > 0).then_some((Token::Plain(&s[..end]), &s[end..]))
    }
}

/// A plain scalar's value: the emitter writes numbers, booleans and null
/// bare and quotes every string that could be read as one, so a plain
/// scalar that looks like another type is that type. Anything else that
/// looks like one (`0x1F`, `yes`) was not written here.
fn plain_value(s: &str) -> Option<Value> {
    if is_plain(s) {
        return Some(Value::String(s.to_string()));
    }
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Value::from(n));
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b"-+.eE".contains(&b)))
    .then(|| serde_json::Number::from_f64(f).map(Value::Number))
    .flatten()
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
        // The fast reader takes the emitter's output whole, to the same
        // value (a scalar or empty document is not a manifest: refused).
        if matches!(value, Value::Object(m) if !m.is_empty())
            || matches!(value, Value::Array(l) if !l.is_empty())
        {
            let fast = Reader::documents(&text)
                .unwrap_or_else(|| panic!("the fast reader refused\n--- yaml\n{text}"));
            assert_eq!(fast, vec![value.clone()], "--- yaml\n{text}");
        }
    }

    /// Every file of every golden output: the fast reader takes it and
    /// reads what the general parser reads.
    #[test]
    fn fast_reader_agrees_with_the_parser_on_every_golden_output() {
        fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, files);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden"),
            &mut files,
        );
        let mut read = 0;
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(expected) = parse(&text) else { continue };
            if !text.starts_with("# @generated") {
                continue;
            }
            let fast = Reader::documents(&text)
                .unwrap_or_else(|| panic!("the fast reader refused {}", path.display()));
            assert_eq!(fast, expected, "{}", path.display());
            read += 1;
        }
        assert!(read > 500, "only {read} golden files read");
    }

    #[test]
    fn fast_reader_hands_other_styles_to_the_parser() {
        for text in [
            "a: {b: 1}\n",
            "a: [1, 2]\n",
            "a: &x 1\nb: *x\n",
            "a: 0x1F\n",
            "a: yes\n",
            "a: 1 # note\n",
            "a:\n    b: 1\n",
            "a: >\n  folded\n",
            "a: 1\na: 2\n",
        ] {
            assert!(Reader::documents(text).is_none(), "{text:?}");
        }
        assert_eq!(
            parse_fast("a: 0x1F\n").unwrap(),
            parse("a: 0x1F\n").unwrap()
        );
        assert_eq!(parse_fast("a: {b: 1}\n").unwrap()[0]["a"]["b"], 1);
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "\\PC{0,10}|[ -~\\n\\t]{0,12}|\\|[-+]?\\n*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map("[a-z:# '-]{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
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

        #[test]
        fn any_value_round_trips(v in any_value()) {
            round_trips(&json!({ "v": v, "l": [v.clone(), {"k": v}] }));
        }
    }
}
