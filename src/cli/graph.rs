//! `kairos graph FILE`

use crate::exit;
use crate::report::graph;
use crate::workflow::{self, LoadError};
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
    match workflow::load_file(&args.file) {
        Ok(w) => {
            let text = match args.format {
                GraphFormat::Mermaid => graph::mermaid(&w),
                GraphFormat::Dot => graph::dot(&w),
            };
            print!("{text}");
            exit::SUCCESS
        }
        Err(LoadError::Invalid(d)) => {
            let mut out = String::new();
            d.render(&mut out);
            eprint!("{out}");
            exit::BAD_INPUT
        }
        Err(e) => {
            super::report_error(e);
            exit::BAD_INPUT
        }
    }
}
