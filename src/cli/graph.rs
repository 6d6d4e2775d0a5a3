//! `kairos graph FILE [--format mermaid|dot|json]`
//!
//! The output is itself a format, so `--format` chooses among Mermaid, DOT and JSON (the
//! nodes and edges both renderings draw) rather than between a table and JSON.

use crate::exit;
use crate::report::graph;

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart (renders on GitHub and GitLab).
    #[default]
    Mermaid,
    /// Graphviz DOT (`| dot -Tsvg`).
    Dot,
    /// JSON for programs: `{"workflow", "nodes": [{"id", "kind", "tool"}], "edges": [{"from",
    /// "to", "kind"}]}`.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: GraphFormat,
}

pub fn run(args: &Args) -> i32 {
    match super::load_workflow(&args.file) {
        Ok(w) => {
            let text = match args.format {
                GraphFormat::Mermaid => graph::mermaid(&w),
                GraphFormat::Dot => graph::dot(&w),
                GraphFormat::Json => {
                    serde_json::to_string_pretty(&graph::json(&w)).expect("JSON serializes") + "\n"
                }
            };
            // Machine formats (Mermaid, DOT, JSON), written as they are.
            super::print::raw(&text);
            exit::SUCCESS
        }
        Err(code) => code,
    }
}
