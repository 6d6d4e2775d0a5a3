//! `kairos graph FILE`

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
            };
            out!("{text}");
            exit::SUCCESS
        }
        Err(code) => code,
    }
}
