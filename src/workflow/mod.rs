//! Workflow files (`docs/workflow.md`): YAML in, validated [`Workflow`] out.
//!
//! Data flows one way: [`crate::syntax::yaml`] parses text into a spanned tree, [`validate`]
//! reads the tree with the helpers of [`crate::syntax::read`] and checks it (keys, kinds, references, expressions, cycles),
//! producing either a [`Workflow`] or [`Diagnostics`] that point into the file.

pub mod expr;
pub mod limits;
pub mod model;
pub mod schema;
pub mod servers;
pub mod validate;

pub use crate::syntax::{Diagnostics, LoadError, WorkflowError};
pub use model::{ForEach, Node, NodeIdx, NodeKind, Workflow};

use std::path::Path;

/// Reads and validates a workflow file.
pub fn load_file(path: &Path) -> Result<Workflow, LoadError> {
    let source = crate::syntax::read_text(path)?;
    let name = path.display().to_string();
    validate::load(&name, source).map_err(LoadError::Invalid)
}

/// Validates workflow text held in memory (benchmarks, tests).
pub fn load_str(name: &str, source: &str) -> Result<Workflow, Diagnostics> {
    validate::load(name, source.to_string())
}
