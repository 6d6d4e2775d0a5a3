//! `kairos generate`: the files derived from the code (completions, man pages, schemas).
//!
//! [`files`] builds them in memory; the command writes them under a directory, and a test
//! compares them with the committed copies.

use super::Cli;
use crate::exit;
use clap::CommandFactory;
use clap_complete::{Generator, Shell};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory that receives `completions/`, `man/` and `schemas/`.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// Every generated file: path relative to the project root, and contents.
pub fn files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cmd = Cli::command();
    cmd.build();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "kairos", &mut buf);
        out.push((format!("completions/{}", shell.file_name("kairos")), buf));
    }
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .expect("rendering to memory succeeds");
    out.push(("man/kairos.1".to_string(), buf));
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("kairos-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .display_name(name.clone())
            .version(env!("CARGO_PKG_VERSION"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut buf)
            .expect("rendering to memory succeeds");
        out.push((format!("man/{name}.1"), buf));
    }
    out.push((
        "schemas/workflow.schema.json".to_string(),
        crate::workflow::schema::workflow_schema().into_bytes(),
    ));
    out.push((
        "schemas/ledger-line.schema.json".to_string(),
        crate::ledger::schema::ledger_line_schema().into_bytes(),
    ));
    out
}

/// Writes [`files`] under `root`.
pub fn write_all(root: &Path) -> std::io::Result<()> {
    for (path, contents) in files() {
        let path = root.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, contents)?;
    }
    Ok(())
}

pub fn run(args: &Args) -> i32 {
    match write_all(&args.out) {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            errln!(
                "error: cannot write generated files under {}: {e}",
                args.out.display()
            );
            exit::BAD_INPUT
        }
    }
}
