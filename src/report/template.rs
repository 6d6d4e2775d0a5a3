//! Run-time template and expression failures as diagnostics: the file, line and column of the
//! part that failed, what it was, and what was in scope, like a validation error.

use crate::engine::render::TemplateFailure;
use crate::report::text::printable;
use crate::syntax::diag::LineIndex;
use miette::{Diagnostic, LabeledSpan, NamedSource};

/// One failure, with the workflow source it points into.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}: {}", where_(.failure), .failure.field, .failure.message)]
struct Failed {
    failure: TemplateFailure,
    text: NamedSource<String>,
}

fn where_(failure: &TemplateFailure) -> String {
    match &failure.node {
        Some(node) => format!("node `{node}`"),
        None => "workflow".into(),
    }
}

impl Diagnostic for Failed {
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
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.text)
    }
}

/// The failures as text for people (miette reports, one after another).
pub fn render(file: &str, source: &str, failures: &[TemplateFailure]) -> String {
    failures
        .iter()
        .map(|failure| {
            // The message and the expression may quote a value: shown, not obeyed.
            let mut failure = failure.clone();
            for text in [
                Some(&mut failure.message),
                failure.expression.as_mut(),
                failure.node.as_mut(),
                Some(&mut failure.field),
                Some(&mut failure.scope),
            ]
            .into_iter()
            .flatten()
            {
                *text = printable(text).into_owned();
            }
            let d = Failed {
                failure,
                text: NamedSource::new(file, source.to_string()),
            };
            format!("{:?}", miette::Report::new(d))
        })
        .collect()
}

/// The failures for `--format json`: where (file, line, column), what failed and what was in
/// scope.
pub fn to_json(file: &str, source: &str, failures: &[TemplateFailure]) -> serde_json::Value {
    let index = LineIndex::new(source);
    failures
        .iter()
        .map(|f| {
            let (line, column) = index.line_column(source, f.offset);
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
