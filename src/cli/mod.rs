//! The command line: clap types and one module per sub-command. Nothing outside `cli`
//! imports clap; each sub-command turns its arguments into calls on the library and returns
//! an exit code from [`crate::exit`].

/// `println!` for what a command reports to people: through [`print`], control characters
/// escaped, and a closed or full stdout never panics.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print::people(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` for messages to people: control characters escaped, never a panic.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::cli::print::err_people(&format!($($arg)*))
    };
}

/// `eprintln!` for messages to people; see [`err!`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::print::err_people(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub mod diff;
pub mod generate;
pub mod graph;
pub mod keygen;
pub mod print;
pub mod replay;
pub mod run;
pub mod sign;
pub mod validate;
pub mod verify;

use crate::exit;
use clap::{Parser, Subcommand, ValueEnum};

/// Deterministic workflow graphs with a tamper-evident ledger.
#[derive(Debug, Parser)]
#[command(name = "kairos", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow and write its ledger.
    Run(run::Args),
    /// Parse a workflow and run every static check, without running anything.
    Validate(validate::Args),
    /// Rebuild a run's state from its ledger, or re-drive a workflow on the recorded results.
    Replay(replay::Args),
    /// Show where and how two ledgers differ.
    Diff(diff::Args),
    /// Make an Ed25519 signing key pair.
    Keygen(keygen::Args),
    /// Write a signature envelope (in-toto/DSSE) for a ledger.
    Sign(sign::Args),
    /// Check a ledger's format, chain and signatures.
    Verify(verify::Args),
    /// Print the workflow graph as Mermaid or Graphviz DOT.
    Graph(graph::Args),
    /// Write completions, man pages and JSON Schemas (for maintainers).
    #[command(hide = true)]
    Generate(generate::Args),
}

/// `--format` of commands that report something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people.
    #[default]
    Table,
    /// JSON for machines.
    Json,
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::SUCCESS
            };
            let _ = e.print();
            return code;
        }
    };
    let code = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Sign(args) => sign::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Generate(args) => generate::run(&args),
    };
    print::finish(code)
}

/// Loads `--policy ORG.yaml` (if given) and combines it with the workflow's policy; also gives
/// the run's `executor:` settings, the organisation's over the workflow's (the organisation
/// decides how its cluster is used; `docs/executors.md`). On a bad organisation file, prints
/// its diagnostics and returns the exit code.
pub fn effective_policy(
    wf: &crate::workflow::Workflow,
    org: Option<&std::path::Path>,
) -> Result<
    (
        crate::policy::effective::Effective,
        crate::exec::ExecutorSpec,
    ),
    i32,
> {
    let org = org
        .map(crate::plan::Organisation::load)
        .transpose()
        .map_err(load_failed)?;
    let executor = match &org {
        Some(org) => wf.executor.over(&org.executor),
        None => wf.executor.over(&Default::default()),
    };
    Ok((crate::plan::effective_policy(wf, org.as_ref()), executor))
}

/// Text for people on stdout (see [`print`]).
fn print_stdout(text: &str) {
    print::people(text);
}

/// Pretty JSON and a newline on stdout, as it is: JSON escapes control characters itself.
fn print_json(value: &impl serde::Serialize) {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    print::raw(&text);
}

/// Prints an error as a miette report on stderr. Its message may quote what a workflow, a
/// tool or a ledger holds: its texts are shown with their control characters escaped.
pub fn report_error(error: impl miette::Diagnostic + Send + Sync + 'static) {
    print::err_raw(&format!(
        "{:?}\n",
        miette::Report::new(print::Escaped(error))
    ));
}

/// Loads a workflow file; when it cannot be, prints why and gives the exit code.
pub fn load_workflow(path: &std::path::Path) -> Result<crate::workflow::Workflow, i32> {
    crate::workflow::load_file(path).map_err(load_failed)
}

/// The diagnostics of a file that could not be loaded, as `--format json` lists them: every
/// diagnostic of an invalid file, or one `kairos::io` record for a file that cannot be read.
pub fn load_error_records(
    path: &std::path::Path,
    error: &crate::workflow::LoadError,
) -> serde_json::Value {
    match error {
        crate::workflow::LoadError::Invalid(d) => serde_json::json!(d.records()),
        e => serde_json::json!([{
            "file": path.display().to_string(),
            "line": null,
            "column": null,
            "code": "kairos::io",
            "message": e.to_string(),
            "label": null,
            "labels": [],
            "help": null,
        }]),
    }
}

/// Prints why a workflow or policy file could not be loaded (every diagnostic of an invalid
/// file) and gives the exit code.
fn load_failed(error: crate::workflow::LoadError) -> i32 {
    match error {
        crate::workflow::LoadError::Invalid(d) => {
            let mut out = String::new();
            d.render(&mut out);
            print::err_raw(&out);
        }
        e => report_error(e),
    }
    exit::BAD_INPUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
