//! The leaf every file reader stands on: YAML parsed into a tree that keeps source spans
//! ([`yaml`]), helpers that read typed values out of it while collecting every error
//! ([`read`]), the diagnostics those errors become ([`diag`]), and durations ([`duration`]).
//!
//! Workflow files and organisation policy files are both read with these; nothing here knows
//! what a workflow or a policy is, so `workflow`, `policy` and `tools` can all depend on it
//! without depending on each other.

pub mod diag;
pub mod duration;
pub mod read;
pub mod snippet;
pub mod yaml;

pub use diag::{Diagnostics, WorkflowError};

/// Why a file (a workflow or an organisation policy) could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    // The path is the user's and may hold control characters: printed escaped.
    #[error("cannot read {}: {source}", snippet::one_line(.path))]
    #[diagnostic(code(kairos::io))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has {} error{}", snippet::one_line(.0.file_name()), .0.errors.len(), if .0.errors.len() == 1 { "" } else { "s" })]
    #[diagnostic(code(kairos::invalid_workflow))]
    Invalid(Diagnostics),
}

/// Reads a UTF-8 text file, or says why it cannot be read.
pub fn read_text(path: &std::path::Path) -> Result<String, LoadError> {
    let name = path.display().to_string();
    let io = |source| LoadError::Io {
        path: name.clone(),
        source,
    };
    // Read no more than spans can address: `/dev/zero` or an endless pipe stops at the limit
    // instead of taking all memory.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path).map_err(io)?,
            yaml::MAX_SOURCE as u64 + 1,
        ),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() > yaml::MAX_SOURCE {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            "larger than 4 GiB",
        )));
    }
    String::from_utf8(bytes).map_err(|e| LoadError::Io {
        path: name,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 ({e})")),
    })
}
