//! kairos runs declarative YAML workflow graphs on a deterministic scheduler and records
//! every run in a hash-chained ledger.
//!
//! Data flows one way: [`workflow`] (file -> validated graph), [`policy`] and [`tools`] (what
//! nodes may do and how they are described), [`report`] (renderings), and [`cli`], the thin
//! layer the `kairos` binary calls. [`cancel`] carries interrupts to whatever must heed them;
//! [`interrupt`] feeds it from signals.

pub mod cancel;
pub mod cli;
pub mod engine;
pub mod exit;
pub mod interrupt;
pub mod ledger;
pub mod plan;
pub mod policy;
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
