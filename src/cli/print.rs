//! Everything a command prints goes through here: text for people with its control
//! characters escaped ([`crate::printable::printable`]), machine formats (JSON, `replay
//! --node`) as they are; and no write ever panics.
//!
//! The first error writing stdout is kept, later output is dropped, and [`finish`] decides
//! the exit code: a reader that went away (`kairos ... | head`) ends the command quietly with
//! the code it had; any other failure (`> /dev/full`, a full disk) is reported in one line and
//! exits 2 (`docs/cli.md`). Stderr is best effort: a failure there has nowhere to be told.

use crate::printable::printable;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first error writing stdout, if any.
static STDOUT_FAILED: Mutex<Option<io::ErrorKind>> = Mutex::new(None);
static STDOUT_MESSAGE: Mutex<String> = Mutex::new(String::new());

fn failed() -> bool {
    STDOUT_FAILED.lock().map(|f| f.is_some()).unwrap_or(true)
}

fn note(e: &io::Error) {
    if let Ok(mut f) = STDOUT_FAILED.lock()
        && f.is_none()
    {
        *f = Some(e.kind());
        if let Ok(mut m) = STDOUT_MESSAGE.lock() {
            *m = e.to_string();
        }
    }
}

/// Writes `text` to stdout as it is (JSON, or a node's raw output).
pub fn raw(text: &str) {
    if failed() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()) {
        note(&e);
    }
}

/// Writes `text` for people to stdout, control characters escaped.
pub fn people(text: &str) {
    raw(&printable(text));
}

/// Writes `text` for people to stderr, control characters escaped; errors are ignored.
pub fn err_people(text: &str) {
    err_raw(&printable(text));
}

/// Writes `text` to stderr as it is (a rendered diagnostic); errors are ignored.
pub fn err_raw(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Flushes stdout and gives the command's exit code: `code`, or 2 when stdout could not be
/// written for another reason than its reader going away.
pub fn finish(code: i32) -> i32 {
    if !failed()
        && let Err(e) = io::stdout().lock().flush()
    {
        note(&e);
    }
    let kind = STDOUT_FAILED.lock().ok().and_then(|f| *f);
    match kind {
        None | Some(io::ErrorKind::BrokenPipe) => code,
        Some(_) => {
            let message = STDOUT_MESSAGE.lock().map(|m| m.clone()).unwrap_or_default();
            err_people(&format!("error: cannot write the output: {message}\n"));
            crate::exit::BAD_INPUT
        }
    }
}

/// A diagnostic whose texts (message, help, labels, related ones) are shown with their control
/// characters escaped, rendered as any other (colours and all): an error message may quote
/// what a workflow, a tool or a ledger holds.
#[derive(Debug)]
pub struct Escaped<E>(pub E);

impl<E: std::fmt::Display> std::fmt::Display for Escaped<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&printable(&self.0.to_string()))
    }
}

impl<E: std::error::Error> std::error::Error for Escaped<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn boxed<'b>(text: String) -> Box<dyn std::fmt::Display + 'b> {
    Box::new(printable(&text).into_owned())
}

impl<E: miette::Diagnostic> miette::Diagnostic for Escaped<E> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.0.code().map(|c| boxed(c.to_string()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.0.severity()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.0.help().map(|h| boxed(h.to_string()))
    }
    fn url<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.0.url().map(|u| boxed(u.to_string()))
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        self.0.related()
    }
    fn diagnostic_source(&self) -> Option<&dyn miette::Diagnostic> {
        self.0.diagnostic_source()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels().map(|labels| {
            Box::new(labels.map(|l| {
                let label = l.label().map(|t| printable(t).into_owned());
                if l.primary() {
                    miette::LabeledSpan::new_primary_with_span(label, *l.inner())
                } else {
                    miette::LabeledSpan::new_with_span(label, *l.inner())
                }
            })) as Box<dyn Iterator<Item = miette::LabeledSpan>>
        })
    }
}
