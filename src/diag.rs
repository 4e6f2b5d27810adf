//! Diagnostics: every problem the compiler finds, with where it is and how to fix it.
//!
//! Stages never stop at the first problem: they push `Diagnostic`s into a list
//! and carry on where they can, so one run reports everything. A diagnostic
//! names its file and byte span; `render` turns that into `file:line:column`,
//! the offending source line with a caret, and a `help:` line. Messages are
//! lowercase phrases without a trailing full stop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// The files of a cluster folder that diagnostics can point into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    Cluster,
    Inventory,
    Lock,
}

impl FileKind {
    pub fn file_name(self) -> &'static str {
        match self {
            FileKind::Cluster => "cluster.toml",
            FileKind::Inventory => "inventory.toml",
            FileKind::Lock => "placement.lock",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub file: Option<FileKind>,
    pub span: Option<Range<usize>>,
    /// A short text shown under the caret.
    pub label: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// Supporting facts, one line each (for example why directories are not eligible).
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            file: None,
            span: None,
            label: None,
            hint: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    /// Points the diagnostic at a span of a file. An empty span (a value that
    /// was not written in the file) points at the file only.
    pub fn at(mut self, file: FileKind, span: Range<usize>) -> Diagnostic {
        self.file = Some(file);
        self.span = (!span.is_empty()).then_some(span);
        self
    }

    pub fn in_file(mut self, file: FileKind) -> Diagnostic {
        self.file = Some(file);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True when any diagnostic in the list is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// The text of the files diagnostics point into, and the names to show for them.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    files: BTreeMap<FileKind, (String, String)>,
}

impl Sources {
    pub fn add(
        &mut self,
        kind: FileKind,
        display_name: impl Into<String>,
        text: impl Into<String>,
    ) {
        self.files.insert(kind, (display_name.into(), text.into()));
    }

    pub fn text(&self, kind: FileKind) -> Option<&str> {
        self.files.get(&kind).map(|(_, text)| text.as_str())
    }

    pub fn display_name(&self, kind: FileKind) -> String {
        match self.files.get(&kind) {
            Some((name, _)) => name.clone(),
            None => kind.file_name().to_string(),
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, kind: FileKind, offset: usize) -> Option<(usize, usize)> {
        let text = self.text(kind)?;
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some((line, before[line_start..].chars().count() + 1))
    }
}

/// Sorts diagnostics into the order they are shown: by file and position, so
/// output is the same however the stages happened to find them.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| (d.file, d.span.as_ref().map(|s| (s.start, s.end)));
        key(a)
            .cmp(&key(b))
            .then_with(|| a.severity.cmp(&b.severity))
            .then_with(|| a.message.cmp(&b.message))
    });
}

/// Renders diagnostics the way compilers do: title, `--> file:line:col`, the
/// source line with a caret, and the hint.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&render_one(diagnostic, sources, &renderer));
        out.push_str("\n\n");
    }
    out
}

fn render_one(d: &Diagnostic, sources: &Sources, renderer: &Renderer) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    // A message quotes values from the file, which can be megabytes long.
    let message = clip_middle(&d.message);
    let label = d.label.as_deref().map(clip_middle);
    let notes: Vec<String> = d.notes.iter().map(|n| clip_middle(n)).collect();
    let hint = d.hint.as_deref().map(clip_middle);
    let title = level.primary_title(message.as_str());
    let mut group = Group::with_title(title);
    let snippet_text;
    match (d.file, &d.span) {
        (Some(file), Some(span)) if sources.text(file).is_some() => {
            let text = sources.text(file).unwrap_or_default();
            // Only the lines the span touches go to the renderer: an inventory
            // can be megabytes long and may have many problems.
            let (excerpt, first_line, local) = excerpt(text, span.clone());
            snippet_text = excerpt;
            let mut annotation = AnnotationKind::Primary.span(local);
            if let Some(label) = &label {
                annotation = annotation.label(label.as_str());
            }
            group = group.element(
                Snippet::source(snippet_text.as_str())
                    .line_start(first_line)
                    .path(sources.display_name(file))
                    .annotation(annotation),
            );
        }
        (Some(file), _) => {
            group = group.element(annotate_snippets::Origin::path(sources.display_name(file)));
        }
        (None, _) => {}
    }
    for note in &notes {
        group = group.element(Level::NOTE.message(note.as_str()));
    }
    if let Some(hint) = &hint {
        group = group.element(Level::HELP.message(hint.as_str()));
    }
    renderer.render(&[group])
}

/// A message as shown: values quoted in backticks cut to their beginning
/// and end around `...` when long (values from the files are not bounded),
/// then the whole text likewise when it is still longer than a few lines.
fn clip_middle(text: &str) -> String {
    fn cut(text: &str, head: usize, tail: usize) -> String {
        let count = text.chars().count();
        if count <= head + tail + 3 {
            return text.to_string();
        }
        let mut out: String = text.chars().take(head).collect();
        out.push_str("...");
        out.extend(text.chars().skip(count - tail));
        out
    }
    let quoted = text
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                cut(part, SHOWN_LINE / 2, SHOWN_LINE / 4)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("`");
    cut(&quoted, 4 * SHOWN_LINE, SHOWN_LINE)
}

/// The whole lines around `span`, the number of the first one, and the span
/// relative to the excerpt.
fn excerpt(text: &str, span: Range<usize>) -> (String, usize, Range<usize>) {
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let end = floor_char_boundary(text, span.end.min(text.len())).max(start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    // A span that runs over many lines (a whole table) is cut to its first
    // line: the caret on the opening line says enough.
    let first_line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let (end, line_end) = if end > first_line_end {
        (
            first_line_end.max(start + 1).min(text.len()),
            first_line_end,
        )
    } else {
        (end, line_end)
    };
    let line_number = text[..line_start].matches('\n').count() + 1;
    let excerpt = text[line_start..line_end].to_string();
    let local = (start - line_start)..(end - line_start).min(excerpt.len().max(start - line_start));
    (excerpt, line_number, local)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// How many characters of a line a message shows at most; a longer line
/// is cut around the column it is about.
pub const SHOWN_LINE: usize = 160;

/// The 1-based line and column (in characters) of a byte offset of `text`,
/// and that line without its line break.
pub fn line_col(text: &str, offset: usize) -> (usize, usize, &str) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[..line_start].matches('\n').count() + 1;
    let column = text[line_start..offset].chars().count() + 1;
    let shown = &text[line_start..line_end];
    (line, column, shown.strip_suffix('\r').unwrap_or(shown))
}

/// `line` as a message shows it: whole when short, else at most
/// [`SHOWN_LINE`] characters around `column` (1-based, in characters) with
/// `...` where it was cut.
pub fn clip_line(line: &str, column: usize) -> String {
    let count = line.chars().count();
    if count <= SHOWN_LINE {
        return line.to_string();
    }
    let start = column
        .saturating_sub(1 + SHOWN_LINE / 2)
        .min(count - SHOWN_LINE);
    let mut out = String::new();
    if start > 0 {
        out.push_str("...");
    }
    out.extend(line.chars().skip(start).take(SHOWN_LINE));
    if start + SHOWN_LINE < count {
        out.push_str("...");
    }
    out
}

/// A one-line count of errors and warnings, for the end of a failed run.
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let mut out = String::new();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let _ = write!(out, "{errors} error{}", plural(errors));
    if warnings > 0 {
        let _ = write!(out, ", {warnings} warning{}", plural(warnings));
    }
    out
}

/// The known name nearest to `unknown`, when it is close enough to be a typo.
pub fn nearest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let unknown_lower = unknown.to_ascii_lowercase();
    let unknown_chars = unknown.chars().count();
    let allowed = |k: &str| (k.len().max(unknown.len()) / 3).max(1);
    known
        .into_iter()
        // The difference in length is a lower bound of the distance: a name
        // far longer or shorter is no typo, and is not compared (the
        // comparison takes time and memory in the product of the lengths,
        // and an unknown key can be megabytes long).
        .filter(|k| k.chars().count().abs_diff(unknown_chars) <= allowed(k))
        .map(|k| {
            (
                strsim::damerau_levenshtein(&unknown_lower, &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(distance, k)| {
            // Allow about one edit per three characters, and never zero-length matches.
            *distance <= allowed(k) && !k.is_empty()
        })
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let mut sources = Sources::default();
        sources.add(FileKind::Cluster, "c.toml", "a = 1\nbé = 2\n");
        assert_eq!(sources.line_col(FileKind::Cluster, 0), Some((1, 1)));
        assert_eq!(sources.line_col(FileKind::Cluster, 9), Some((2, 3)));
    }

    #[test]
    fn renders_file_line_column_source_and_hint() {
        let mut sources = Sources::default();
        sources.add(FileKind::Cluster, "dir/cluster.toml", "[pd]\nreplics = 3\n");
        let d = Diagnostic::error("unknown key `replics` in [pd]")
            .at(FileKind::Cluster, 5..12)
            .label("unknown key")
            .hint("did you mean `replicas`?");
        let text = render(&[d], &sources, false);
        assert!(
            text.contains("error: unknown key `replics` in [pd]"),
            "{text}"
        );
        assert!(text.contains("dir/cluster.toml:2:1"), "{text}");
        assert!(text.contains("replics = 3"), "{text}");
        assert!(text.contains("^^^^^^^ unknown key"), "{text}");
        assert!(text.contains("help: did you mean `replicas`?"), "{text}");
    }

    #[test]
    fn multi_line_spans_are_cut_to_their_first_line() {
        let mut sources = Sources::default();
        sources.add(
            FileKind::Inventory,
            "inventory.toml",
            "x = 1\n[[node]]\nname = \"a\"\n",
        );
        let d = Diagnostic::error("bad node").at(FileKind::Inventory, 6..27);
        let text = render(&[d], &sources, false);
        assert!(text.contains("inventory.toml:2:1"), "{text}");
        assert!(!text.contains("name = \"a\""), "{text}");
    }

    #[test]
    fn nearest_finds_typos_only() {
        let known = ["replicas", "storage", "media", "max_per_node"];
        assert_eq!(nearest("replics", known), Some("replicas"));
        assert_eq!(nearest("max-per-node", known), Some("max_per_node"));
        assert_eq!(nearest("colour", known), None);
    }
}
