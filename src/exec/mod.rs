//! Executors: where an approved `shell` call runs (`docs/executors.md`). `local`, the default,
//! is the worker pool of this process; `slurm` submits each call attempt as a batch job to a
//! Slurm cluster and reads its result back from a shared directory.
//!
//! Only the place changes. The engine decides order, the policy gate passes or refuses the call
//! and the ledger is written here, before and after, exactly as for a local run; a backend gets
//! a call that has already passed the gate and returns its [`Outcome`], which the engine
//! commits as it commits a local one. Whatever the backend observes on the way (job ids,
//! nodes, queue times) stays out of the outcome, so the ledger is the same.

use crate::cancel::Cancel;
use crate::tools::Outcome;
use crate::tools::shell::Request;
use std::time::Instant;

pub mod slurm;
pub mod spec;

pub use spec::{ExecutorKind, ExecutorSpec};

/// Which attempt of which call a backend runs: the instance id (`fetch[2]`) and the attempt
/// number, from 1. The same on a resumed run, so a backend can find what an earlier process
/// started for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptId<'a> {
    pub instance: &'a str,
    pub attempt: u32,
}

/// Where and when an attempt ran as a batch job: for `--trace`, never for the ledger, which
/// must not depend on which node a job landed on or how long it queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub instance: String,
    pub attempt: u32,
    /// The scheduler's job id.
    pub job: String,
    /// The node(s) it ran on, as the scheduler last listed them.
    pub nodes: Option<String>,
    /// When it was submitted (or, for a job a resumed run adopted, found).
    pub submitted: Instant,
    /// When it was first seen running: at the poll after it started.
    pub started: Option<Instant>,
    /// Whether a resumed run adopted it instead of submitting it.
    pub adopted: bool,
}

/// Runs approved `shell` calls somewhere other than this process.
pub trait ShellBackend: Send + Sync + std::fmt::Debug {
    /// Runs one attempt to its end (or its timeout, or until `cancel` ends it: then
    /// [`Outcome::interrupted`]) and reports what happened as the local runner would.
    fn run(&self, request: &Request, attempt: &AttemptId<'_>, cancel: &Cancel) -> Outcome;
}
