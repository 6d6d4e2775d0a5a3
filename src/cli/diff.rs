//! `kairos diff A.jsonl B.jsonl` (being written).

use super::OutputFormat;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first ledger.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second ledger.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn run(_args: &Args) -> i32 {
    crate::exit::BAD_INPUT
}
