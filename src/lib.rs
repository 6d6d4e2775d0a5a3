//! kairos runs declarative YAML workflow graphs on a deterministic scheduler and records
//! every run in a hash-chained ledger.
//!
//! Data flows one way: [`syntax`] (text to a spanned tree and diagnostics) -> [`workflow`]
//! (a validated graph) -> [`plan`] (the effective policy, inputs and static checks) ->
//! [`engine`] (scheduling, with [`tools`] behind [`policy`]'s gate) -> [`ledger`] (the format,
//! its writer and readers) -> the readers [`record`] (replay, resume) and [`sign`] (verify).
//! [`report`] renders for people and [`cli`] is the thin layer the binary calls. [`cancel`]
//! carries interrupts to whatever must heed them, as a value.
//! `ARCHITECTURE.md` at the repository root has the module map.

pub mod cancel;
pub mod capped;
pub mod cli;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod interrupt;
pub mod ledger;
pub mod mcp;
pub mod net;
pub mod plan;
pub mod policy;
pub mod printable;
pub mod record;
pub mod report;
pub mod sh;
pub mod sign;
pub mod syntax;
pub mod tools;
pub mod workflow;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    cli::main()
}
