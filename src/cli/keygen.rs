//! `kairos keygen` (being written).

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> i32 {
    crate::exit::BAD_INPUT
}
