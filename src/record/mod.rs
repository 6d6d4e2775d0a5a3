//! Record, replay and resume: where a call's result comes from when it is not a live call.
//!
//! A ledger is also a recording. [`recording`] reads a ledger's tool calls back into a
//! [`Recording`]; [`source`] decides, call by call, whether a result comes from the tool or
//! from a recording ([`CallSource`]); [`redrive`] re-runs a workflow on a recording (`kairos
//! replay --check` and `--against`), where a call the recording cannot answer is a
//! [`Divergence`], never a live call; [`resume`] reads the valid prefix of an interrupted
//! ledger and appends to it, so a resumed run ends byte-identical to one that was never
//! stopped.

pub mod decisions;
pub mod recording;
pub mod redrive;
pub mod resume;
pub mod source;

pub use crate::engine::Divergence;
pub use recording::{RecordedCall, Recording};
pub use source::CallSource;
