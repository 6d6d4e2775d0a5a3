//! Run-time template and expression failures as diagnostics: the file, line and column of the
//! part that failed, what it was, and what was in scope, like a validation error.

use crate::engine::render::TemplateFailure;
use crate::syntax::diag::LineIndex;
use miette::{Diagnostic, LabeledSpan};

/// One failure; its labels point into the workflow source.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}: {}", where_(.failure), .failure.field, .failure.message)]
struct Failed<'a> {
    failure: &'a TemplateFailure,
}

fn where_(failure: &TemplateFailure) -> String {
    match &failure.node {
        Some(node) => format!("node `{node}`"),
        None => "workflow".into(),
    }
}

impl Diagnostic for Failed<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new("kairos::template_failed"))
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(format!("in scope: {}", self.failure.scope)))
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = match &self.failure.expression {
            Some(part) => format!("`{part}` failed here"),
            None => "this failed".into(),
        };
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some(label),
            self.failure.offset,
            self.failure.len,
        ))))
    }
}

/// The file a failure is in: its own (a called workflow's), or the run's `file`.
fn located<'a>(failure: &'a TemplateFailure, file: &'a str, source: &'a str) -> (&'a str, &'a str) {
    match &failure.file {
        Some((file, source)) => (file, source),
        None => (file, source),
    }
}

/// The line index of each file failures are in, built once per file (many failures, such as
/// every instance of a fan-out, can be in one).
#[derive(Default)]
struct Indexes(Vec<((*const u8, usize), LineIndex)>);

impl Indexes {
    fn of(&mut self, source: &str) -> &LineIndex {
        // A file's text is one allocation: where it starts and its length name it.
        let key = (source.as_ptr(), source.len());
        match self.0.iter().position(|(k, _)| *k == key) {
            Some(at) => &self.0[at].1,
            None => {
                self.0.push((key, LineIndex::new(source)));
                &self.0[self.0.len() - 1].1
            }
        }
    }
}

/// The failures as text for people, as validation errors are printed (`docs/cli.md`): the
/// first 20, each with its part of the file windowed and escaped, then how many more.
pub fn render(file: &str, source: &str, failures: &[TemplateFailure]) -> String {
    use crate::syntax::diag::{Diagnostics, MAX_PRINTED, render_report};
    let mut out = String::new();
    let mut indexes = Indexes::default();
    for failure in failures.iter().take(MAX_PRINTED) {
        let (file, source) = located(failure, file, source);
        render_report(
            &mut out,
            &Failed { failure },
            file,
            source,
            indexes.of(source),
        );
    }
    out.push_str(&Diagnostics::more_line(failures.len()));
    out
}

/// The failures for `--format json`: where (file, line, column), what failed and what was in
/// scope.
pub fn to_json(file: &str, source: &str, failures: &[TemplateFailure]) -> serde_json::Value {
    let mut indexes = Indexes::default();
    failures
        .iter()
        .map(|f| {
            let (file, source) = located(f, file, source);
            let (line, column) = indexes.of(source).line_column(source, f.offset);
            serde_json::json!({
                "code": "kairos::template_failed",
                "file": file,
                "line": line,
                "column": column,
                "node": f.node,
                "field": f.field,
                "expression": f.expression,
                "message": f.message,
                "in_scope": f.scope,
            })
        })
        .collect()
}
