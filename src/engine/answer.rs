//! Where a task call's result comes from when it does not come from the tool: the engine
//! asks an [`Answers`] once per call, after the call's policy decision and before it runs.
//!
//! The engine only defines the question. [`Live`] answers "run it"; the recordings of
//! `crate::record` answer from a ledger (replay never runs a tool, resume runs what the
//! recording lacks). So the engine does not depend on how ledgers are read back.

use crate::tools::{Attempt, Outcome, ToolSpec};
use serde_json::Value;

/// Gives the result of a task call, or says that the tool must run.
pub trait Answers {
    /// Where the result of call `id` of `tool` comes from. `input` gives the call's rendered
    /// input as the ledger records it (redacted); call it only when a recording answers.
    fn answer(&self, id: &str, tool: &ToolSpec, input: &mut dyn FnMut() -> Value) -> Answer;
}

/// Every call runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Live;

impl Answers for Live {
    fn answer(&self, _: &str, _: &ToolSpec, _: &mut dyn FnMut() -> Value) -> Answer {
        Answer::Run
    }
}

/// What to do with one call.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Run the tool.
    Run,
    /// The recording's result. `input` is the one the `input` closure gave (what the node's
    /// `Start` records); `redactions` are the counts the recording has for the call's
    /// results, which are already redacted.
    Recorded {
        input: Value,
        attempts: Vec<Attempt>,
        redactions: Vec<(String, u64)>,
    },
    /// The recording cannot answer: the node fails with [`Divergence::attempt`], and the run
    /// reports `divergence`. `input` and `redactions` as for [`Answer::Recorded`].
    Diverged {
        input: Value,
        redactions: Vec<(String, u64)>,
        divergence: Divergence,
    },
}

/// A call the recording cannot answer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Divergence {
    pub node: String,
    pub reason: String,
    /// What the recording had (its rendered input), when it had the call.
    pub recorded: Option<Value>,
    /// What the workflow asked for now.
    pub asked: Value,
}

impl Divergence {
    /// The one failed attempt a node whose call diverged records.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            outcome: Outcome {
                error: Some(format!("replay diverged: {}", self.reason)),
                ..Outcome::default()
            },
            delay_ms: None,
        }
    }
}
