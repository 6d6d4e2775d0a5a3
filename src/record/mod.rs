//! Record, replay and resume: where a call's result comes from when it is not a live call.
//!
//! A ledger is also a recording. [`recording`] reads a ledger's tool calls back into a
//! [`Recording`]; [`redrive`] re-runs a workflow on it (`kairos replay --check` and
//! `--against`), where a call the recording cannot answer is a [`Divergence`], never a live
//! call; [`resume`] reads the valid prefix of an interrupted ledger and appends to it, so a
//! resumed run ends byte-identical to one that was never stopped.

pub mod recording;
pub mod redrive;
pub mod resume;

pub use recording::{Divergence, RecordedCall, Recording};
