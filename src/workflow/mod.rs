//! Workflow files (SPEC section 2): YAML in, validated [`Workflow`] out.
//!
//! Data flows one way: [`yaml`] parses text into a spanned tree, [`validate`] reads the tree
//! with the helpers of [`read`] and checks it (keys, kinds, references, expressions, cycles),
//! producing either a [`Workflow`] or [`Diagnostics`] that point into the file.

pub mod diag;
pub mod duration;
pub mod expr;
pub mod model;
pub mod read;
pub mod schema;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostics, WorkflowError};
pub use model::{ForEach, Node, NodeIdx, NodeKind, Workflow};

use std::path::Path;

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(kairos::io))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has {} error{}", .0.file_name(), .0.errors.len(), if .0.errors.len() == 1 { "" } else { "s" })]
    #[diagnostic(code(kairos::invalid_workflow))]
    Invalid(Diagnostics),
}

/// Reads and validates a workflow file.
pub fn load_file(path: &Path) -> Result<Workflow, LoadError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: name.clone(),
        source,
    })?;
    let source = String::from_utf8(bytes).map_err(|e| LoadError::Io {
        path: name.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 ({e})")),
    })?;
    validate::load(&name, source).map_err(LoadError::Invalid)
}

/// Validates workflow text held in memory (benchmarks, tests).
pub fn load_str(name: &str, source: &str) -> Result<Workflow, Diagnostics> {
    validate::load(name, source.to_string())
}
