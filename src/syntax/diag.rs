//! Diagnostics for workflow files.
//!
//! Every problem found while reading or checking a workflow is a [`WorkflowError`] carrying the
//! byte span it refers to. Checks push errors into a list instead of returning early, so a file
//! with three mistakes reports three diagnostics. [`Diagnostics`] pairs the list with the named
//! source so it renders as miette snippets or as JSON records (file, line, column, code, ...).

use super::snippet::{Snippet, one_line};
use super::yaml::Span;
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use std::sync::Arc;
use thiserror::Error;

/// One problem in a workflow (or policy) file.
#[derive(Debug, Error, Diagnostic)]
pub enum WorkflowError {
    #[error("invalid YAML: {message}")]
    #[diagnostic(code(kairos::yaml_syntax))]
    Syntax {
        message: String,
        #[label("here")]
        span: SourceSpan,
    },

    #[error("duplicate key `{key}`")]
    #[diagnostic(
        code(kairos::duplicate_key),
        help("each key may appear once in a mapping; remove or merge one of them")
    )]
    DuplicateKey {
        key: String,
        #[label("first defined here")]
        first: SourceSpan,
        #[label(primary, "defined again here")]
        second: SourceSpan,
    },

    #[error("unknown key `{key}` in {context}")]
    #[diagnostic(code(kairos::unknown_key))]
    UnknownKey {
        key: String,
        context: String,
        #[label("not a key of {context}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("missing required key `{key}` in {context}")]
    #[diagnostic(code(kairos::missing_key))]
    MissingKey {
        key: String,
        context: String,
        #[label("this {context} has no `{key}`")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("expected {expected}, found {found}")]
    #[diagnostic(code(kairos::wrong_type))]
    WrongType {
        expected: String,
        found: &'static str,
        #[label("expected {expected}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unsupported workflow format version {found}")]
    #[diagnostic(
        code(kairos::unsupported_version),
        help("this kairos reads workflow format version 1; write `version: 1`")
    )]
    UnsupportedVersion {
        found: String,
        #[label("unsupported version")]
        span: SourceSpan,
    },

    #[error("invalid workflow name `{name}`")]
    #[diagnostic(
        code(kairos::invalid_name),
        help(
            "a name starts with a lowercase letter or digit and continues with lowercase letters, digits, `_` or `-`"
        )
    )]
    InvalidName {
        name: String,
        #[label("not a valid name")]
        span: SourceSpan,
    },

    #[error("invalid node id `{id}`")]
    #[diagnostic(
        code(kairos::invalid_id),
        help(
            "an id starts with a letter or `_` and continues with letters, digits, `_` or `-` (at most 64 characters)"
        )
    )]
    InvalidId {
        id: String,
        #[label("not a valid id")]
        span: SourceSpan,
    },

    #[error("duplicate node id `{id}`")]
    #[diagnostic(
        code(kairos::duplicate_id),
        help("node ids must be unique within a workflow")
    )]
    DuplicateId {
        id: String,
        #[label("first defined here")]
        first: SourceSpan,
        #[label(primary, "defined again here")]
        second: SourceSpan,
    },

    #[error("node `{id}` has no kind")]
    #[diagnostic(
        code(kairos::no_node_kind),
        help("give the node exactly one of `run`, `tool`, `branch`, `fork`, `join` or `approval`")
    )]
    NoKind {
        id: String,
        #[label("this node does nothing")]
        span: SourceSpan,
    },

    #[error("node `{id}` has two kinds: `{first_kind}` and `{second_kind}`")]
    #[diagnostic(
        code(kairos::two_node_kinds),
        help(
            "a node is exactly one of a task (`run` or `tool`), `branch`, `fork`, `join` or `approval`; split it into two nodes"
        )
    )]
    TwoKinds {
        id: String,
        first_kind: &'static str,
        second_kind: &'static str,
        #[label("`{first_kind}` here")]
        first: SourceSpan,
        #[label("`{second_kind}` here")]
        second: SourceSpan,
    },

    #[error("`{role}` names unknown node `{id}`")]
    #[diagnostic(code(kairos::unknown_node))]
    UnknownNode {
        id: String,
        role: &'static str,
        #[label("no node has this id")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("dependency cycle: {path}")]
    #[diagnostic(
        code(kairos::cycle),
        help("a workflow is a directed acyclic graph; remove one of these dependencies")
    )]
    Cycle {
        path: String,
        #[label(collection)]
        labels: Vec<LabeledSpan>,
    },

    #[error("node `{id}` is in both arms of branch `{branch}`")]
    #[diagnostic(
        code(kairos::node_in_both_arms),
        help(
            "a branch arm is skipped when the other is taken; a node shared by both arms would always be skipped. Put it after the arms, behind a `join`"
        )
    )]
    BothArms {
        id: String,
        branch: String,
        #[label("in `then`")]
        then_span: SourceSpan,
        #[label("and in `else`")]
        else_span: SourceSpan,
    },

    #[error("invalid {what}: {message}")]
    #[diagnostic(code(kairos::expression_syntax))]
    ExpressionSyntax {
        what: &'static str,
        message: String,
        #[label("{message}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown {what} `{name}` referenced")]
    #[diagnostic(code(kairos::unknown_reference))]
    UnknownReference {
        what: &'static str,
        name: String,
        #[label("no {what} named `{name}`")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown tool `{name}`")]
    #[diagnostic(code(kairos::unknown_tool))]
    UnknownTool {
        name: String,
        #[label("not a built-in tool")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("invalid duration `{text}`")]
    #[diagnostic(
        code(kairos::invalid_duration),
        help(
            "a duration is a number with a unit, `ms`, `s`, `m` or `h`, and units may be combined: `500ms`, `60s`, `2m`, `1h30m`"
        )
    )]
    InvalidDuration {
        text: String,
        #[label("not a duration")]
        span: SourceSpan,
    },

    #[error("unknown capability `{name}`")]
    #[diagnostic(code(kairos::unknown_capability))]
    UnknownCapability {
        name: String,
        #[label("not a capability")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown policy preset `{name}`")]
    #[diagnostic(code(kairos::unknown_preset))]
    UnknownPreset {
        name: String,
        #[label("not a preset")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("invalid regex: {message}")]
    #[diagnostic(code(kairos::invalid_regex))]
    InvalidRegex {
        message: String,
        #[label("does not compile")]
        span: SourceSpan,
    },

    #[error("invalid glob `{glob}`: {message}")]
    #[diagnostic(code(kairos::invalid_glob))]
    InvalidGlob {
        glob: String,
        message: String,
        #[label("does not compile")]
        span: SourceSpan,
    },

    #[error("node `{id}` needs `{capability}`, which the policy does not grant")]
    #[diagnostic(code(kairos::capability_not_granted))]
    CapabilityNotGranted {
        id: String,
        capability: String,
        #[label("`{tool}` needs `{capability}`")]
        span: SourceSpan,
        tool: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(kairos::invalid_value))]
    InvalidValue {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },
}

/// A "did you mean" help line for `name` among `candidates`, when one is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let length = name.chars().count();
    let limit = (length / 3).max(1);
    candidates
        .into_iter()
        // The distance is at least the difference in length: most candidates need no table.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| (edit_distance(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, c)| (d, c.len()))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Edit distance counting an insertion, a deletion, a substitution or a swap of two
/// neighbouring characters as one edit (optimal string alignment), so `frist` is one edit
/// from `first`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_swaps_as_one_edit() {
        assert_eq!(edit_distance("frist", "first"), 1);
        assert_eq!(edit_distance("neds", "needs"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(
            did_you_mean("shel", ["shell", "sleep"]).as_deref(),
            Some("did you mean `shell`?")
        );
        assert_eq!(did_you_mean("zzz", ["shell", "sleep"]), None);
    }
}

/// The errors of one file together with its source.
#[derive(Debug)]
pub struct Diagnostics {
    pub source: Arc<NamedSource<String>>,
    pub errors: Vec<WorkflowError>,
}

/// A diagnostic flattened to data, for `--format json`. `line`, `column` and `label` are
/// those of the primary label (where the problem is); `labels` has every label, the primary
/// one first, then the others in the order the diagnostic gives them (for a duplicate: the
/// repeat, then "first defined here").
#[derive(Debug, serde::Serialize)]
pub struct DiagnosticRecord {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: String,
    pub message: String,
    pub label: Option<String>,
    pub labels: Vec<LabelRecord>,
    pub help: Option<String>,
}

/// One labelled place of a diagnostic.
#[derive(Debug, serde::Serialize)]
pub struct LabelRecord {
    pub line: usize,
    pub column: usize,
    pub message: Option<String>,
    pub primary: bool,
}

/// A diagnostic's labels, the primary one (marked so, or else the first) first.
pub fn labels_primary_first(error: &dyn Diagnostic) -> Vec<LabeledSpan> {
    let mut labels: Vec<LabeledSpan> = error.labels().map(Iterator::collect).unwrap_or_default();
    if let Some(i) = labels.iter().position(LabeledSpan::primary) {
        let primary = labels.remove(i);
        labels.insert(0, primary);
    }
    labels
}

/// The most diagnostics of one file printed for people; a last line counts the others.
pub const MAX_PRINTED: usize = 20;
/// The most diagnostics of one file listed by `--format json`.
pub const MAX_RECORDS: usize = 1000;
/// The most labels of one diagnostic shown (a long cycle labels every node on it).
pub const MAX_LABELS: usize = 16;

impl Diagnostics {
    pub fn file_name(&self) -> &str {
        self.source.name()
    }

    /// Renders the first [`MAX_PRINTED`] errors as miette reports with the part of the file
    /// each points at (a [`Snippet`]: windowed, escaped), then says how many more there are.
    pub fn render(&self, out: &mut String) {
        let text = self.source.inner();
        let index = LineIndex::new(text);
        for error in self.errors.iter().take(MAX_PRINTED) {
            render_report(out, error, self.file_name(), text, &index);
            out.push('\n');
        }
        out.push_str(&Self::more_line(self.errors.len()));
    }

    /// The line that counts the diagnostics past the first [`MAX_PRINTED`] of `count`, or
    /// nothing.
    pub fn more_line(count: usize) -> String {
        match count.saturating_sub(MAX_PRINTED) {
            0 => String::new(),
            1 => "... and 1 more error\n".into(),
            more => format!("... and {} more errors\n", thousands(more)),
        }
    }

    /// The first [`MAX_RECORDS`] errors as records ([`omitted`](Self::omitted) counts the
    /// others).
    pub fn records(&self) -> Vec<DiagnosticRecord> {
        let text = self.source.inner();
        let index = LineIndex::new(text);
        let mut columns = index.columns(text);
        self.errors
            .iter()
            .take(MAX_RECORDS)
            .map(|error| {
                let labels: Vec<LabelRecord> = labels_primary_first(error)
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let (line, column) = columns.line_column(l.offset());
                        LabelRecord {
                            line,
                            column,
                            message: l.label().map(str::to_string),
                            primary: i == 0,
                        }
                    })
                    .collect();
                let (line, column) = labels.first().map_or((1, 1), |l| (l.line, l.column));
                DiagnosticRecord {
                    file: self.file_name().to_string(),
                    line,
                    column,
                    code: error.code().map(|c| c.to_string()).unwrap_or_default(),
                    message: error.to_string(),
                    label: labels.first().and_then(|l| l.message.clone()),
                    labels,
                    help: error.help().map(|h| h.to_string()),
                }
            })
            .collect()
    }

    /// How many errors [`records`](Self::records) leaves out.
    pub fn omitted(&self) -> usize {
        self.errors.len().saturating_sub(MAX_RECORDS)
    }
}

/// Renders one diagnostic about `source` (its labels point into it) as a miette report, from
/// the [`Snippet`] of the file it points at: the way to print any diagnostic with a source,
/// since miette given a whole file panics past column 65,535 and prints every line a label
/// spans.
pub fn render_report(
    out: &mut String,
    error: &dyn Diagnostic,
    name: &str,
    source: &str,
    index: &LineIndex,
) {
    render_themed(out, error, (name, source, index), theme());
}

/// [`render_report`] in the given theme.
pub(crate) fn render_themed(
    out: &mut String,
    error: &dyn Diagnostic,
    (name, source, index): (&str, &str, &LineIndex),
    theme: miette::GraphicalTheme,
) {
    let mut labels = labels_primary_first(error);
    labels.truncate(MAX_LABELS);
    let (snippet, labels) = Snippet::new(&one_line(name), source, index, &labels);
    let shown = Shown {
        error,
        snippet,
        labels,
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme);
    let _ = handler.render_report(out, &shown);
}

/// `5980` as `5,980`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn theme() -> miette::GraphicalTheme {
    let color = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    }
}

/// One error as printed: its texts made printable, its labels moved onto its snippet.
struct Shown<'a> {
    error: &'a dyn Diagnostic,
    snippet: Snippet,
    labels: Vec<LabeledSpan>,
}

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&one_line(&self.error.to_string()))
    }
}

impl std::error::Error for Shown<'_> {}

impl Diagnostic for Shown<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.error.code()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        let help = self.error.help()?.to_string();
        Some(Box::new(one_line(&help).into_owned()))
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.snippet)
    }
}

/// Maps byte offsets to 1-based line and column (in characters).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr_newlines(text).map(|i| i + 1));
        Self { starts }
    }

    pub fn line_column(&self, text: &str, offset: usize) -> (usize, usize) {
        self.columns(text).line_column(offset)
    }

    /// The 0-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// Where a 0-based line starts, if the text has it.
    pub fn line_start(&self, line: usize) -> Option<usize> {
        self.starts.get(line).copied()
    }

    /// How many lines the text has (an empty last one after a final newline included).
    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// Line and column look-ups that go on counting from the previous one on the same line,
    /// so the diagnostics of one long line cost one pass over it, not one each.
    pub fn columns<'a>(&'a self, text: &'a str) -> Columns<'a> {
        Columns {
            index: self,
            text,
            last: None,
        }
    }
}

/// See [`LineIndex::columns`].
pub struct Columns<'a> {
    index: &'a LineIndex,
    text: &'a str,
    /// The previous look-up: 0-based line, offset, 1-based column.
    last: Option<(usize, usize, usize)>,
}

impl Columns<'_> {
    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&mut self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.index.line_of(offset);
        let (from, column) = match self.last {
            Some((l, o, c)) if l == line && o <= offset => (o, c),
            _ => (self.index.starts[line], 1),
        };
        let column = column + self.text[from..offset].chars().count();
        self.last = Some((line, offset, column));
        (line + 1, column)
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes()
        .enumerate()
        .filter_map(|(i, b)| (b == b'\n').then_some(i))
}

/// Shorthand used by the readers: a span to a miette span.
pub fn ss(span: Span) -> SourceSpan {
    span.into()
}
