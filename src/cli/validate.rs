//! `kairos validate FILE...`

use super::OutputFormat;
use crate::exit;
use crate::workflow::{self, LoadError};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn run(args: &Args) -> i32 {
    let mut code = exit::SUCCESS;
    let mut json_files = Vec::new();
    for path in &args.files {
        let result = workflow::load_file(path);
        if result.is_err() {
            code = exit::BAD_INPUT;
        }
        match (args.format, result) {
            (OutputFormat::Table, Ok(w)) => {
                println!(
                    "ok {}: {} nodes, {} edges, needs {}",
                    path.display(),
                    w.nodes.len(),
                    w.edge_count(),
                    w.capabilities_needed()
                );
            }
            (OutputFormat::Table, Err(LoadError::Invalid(d))) => {
                let mut out = String::new();
                d.render(&mut out);
                eprint!("{out}");
                let n = d.errors.len();
                eprintln!("error: {} is not a valid workflow ({n} error{})", d.file_name(), if n == 1 { "" } else { "s" });
            }
            (OutputFormat::Table, Err(e)) => super::report_error(e),
            (OutputFormat::Json, Ok(w)) => json_files.push(serde_json::json!({
                "file": path.display().to_string(),
                "valid": true,
                "name": w.name,
                "nodes": w.nodes.len(),
                "edges": w.edge_count(),
                "capabilities": w.capabilities_needed().iter().map(|c| c.name()).collect::<Vec<_>>(),
                "diagnostics": [],
            })),
            (OutputFormat::Json, Err(LoadError::Invalid(d))) => json_files.push(serde_json::json!({
                "file": path.display().to_string(),
                "valid": false,
                "diagnostics": d.records(),
            })),
            (OutputFormat::Json, Err(e)) => json_files.push(serde_json::json!({
                "file": path.display().to_string(),
                "valid": false,
                "diagnostics": [{
                    "file": path.display().to_string(),
                    "line": null,
                    "column": null,
                    "code": "kairos::io",
                    "message": e.to_string(),
                    "label": null,
                    "help": null,
                }],
            })),
        }
    }
    if args.format == OutputFormat::Json {
        let doc = serde_json::json!({ "valid": code == exit::SUCCESS, "files": json_files });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serializes")
        );
    }
    code
}
