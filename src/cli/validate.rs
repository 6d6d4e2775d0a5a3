//! `kairos validate FILE...`

use super::OutputFormat;
use crate::exit;
use crate::syntax::snippet::one_line as printable;
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
    /// An organisation policy to check the workflows against (as `kairos run --policy`).
    #[arg(long, value_name = "ORG.yaml")]
    pub policy: Option<PathBuf>,
}

pub fn run(args: &Args) -> i32 {
    let mut code = exit::SUCCESS;
    let mut json_files = Vec::new();
    for path in &args.files {
        let result = workflow::load_file(path);
        if result.is_err() {
            code = exit::BAD_INPUT;
        }
        let checked = result.as_ref().ok().map(|w| {
            let policy = super::effective_policy(w, args.policy.as_deref()).map(|(p, _)| p);
            policy.and_then(|p| {
                // Redaction that cannot be built refuses the run, so it fails validation too.
                if let Err(e) = crate::plan::check_redaction(&p) {
                    super::report_error(e);
                    return Err(exit::BAD_INPUT);
                }
                let violations = crate::plan::check_capabilities(w, &p);
                let enforced = p.enforcement == crate::policy::Enforcement::Enforce;
                Ok((p.granted, violations, enforced))
            })
        });
        let (granted, violations) = match checked {
            Some(Err(c)) => return c,
            Some(Ok((granted, violations, enforced))) => {
                if !violations.is_empty() && enforced && code == exit::SUCCESS {
                    code = exit::POLICY;
                }
                (Some(granted), violations)
            }
            None => (None, Vec::new()),
        };
        match (args.format, result) {
            (OutputFormat::Table, Ok(w)) => {
                outln!(
                    "{} {}: {} nodes, {} edges, needs {}; granted {}",
                    if violations.is_empty() {
                        "ok"
                    } else {
                        "policy"
                    },
                    printable(&path.display().to_string()),
                    w.nodes.len(),
                    w.edge_count(),
                    w.capabilities_needed(),
                    granted.unwrap_or_default()
                );
                if !violations.is_empty() {
                    let d = crate::workflow::Diagnostics {
                        source: std::sync::Arc::new(miette::NamedSource::new(
                            w.file.clone(),
                            w.source.to_string(),
                        )),
                        errors: violations,
                    };
                    let mut out = String::new();
                    d.render(&mut out);
                    super::print::err_raw(&out);
                }
            }
            (OutputFormat::Table, Err(LoadError::Invalid(d))) => {
                let mut out = String::new();
                d.render(&mut out);
                super::print::err_raw(&out);
                let n = d.errors.len();
                errln!(
                    "error: {} is not a valid workflow ({n} error{})",
                    d.file_name(),
                    if n == 1 { "" } else { "s" }
                );
            }
            (OutputFormat::Table, Err(e)) => super::report_error(e),
            (OutputFormat::Json, Ok(w)) => {
                let d = crate::workflow::Diagnostics {
                    source: std::sync::Arc::new(miette::NamedSource::new(
                        w.file.clone(),
                        w.source.to_string(),
                    )),
                    errors: violations,
                };
                json_files.push(with_records(serde_json::json!({
                    "file": path.display().to_string(),
                    "valid": true,
                    "name": w.name,
                    "nodes": w.nodes.len(),
                    "edges": w.edge_count(),
                    "capabilities": w.capabilities_needed().iter().map(|c| c.name()).collect::<Vec<_>>(),
                    "granted": granted.unwrap_or_default().iter().map(|c| c.name()).collect::<Vec<_>>(),
                }), &d));
            }
            (OutputFormat::Json, Err(LoadError::Invalid(d))) => json_files.push(with_records(
                serde_json::json!({ "file": path.display().to_string(), "valid": false }),
                &d,
            )),
            (OutputFormat::Json, Err(e)) => json_files.push(serde_json::json!({
                "file": path.display().to_string(),
                "valid": false,
                "diagnostics": super::load_error_records(path, &e),
            })),
        }
    }
    if args.format == OutputFormat::Json {
        let doc = serde_json::json!({ "valid": code == exit::SUCCESS, "files": json_files });
        super::print_json(&doc);
    }
    code
}

/// A file's entry with its `diagnostics`, which stop at `MAX_RECORDS` (`docs/cli.md`), and
/// `diagnostics_omitted` counting the rest when there are more.
fn with_records(
    mut file: serde_json::Value,
    d: &crate::workflow::Diagnostics,
) -> serde_json::Value {
    file["diagnostics"] = serde_json::json!(d.records());
    if d.omitted() > 0 {
        file["diagnostics_omitted"] = d.omitted().into();
    }
    file
}
