//! Replay mode: tool results come from a recorded ledger instead of running the tools.
//!
//! A [`Recording`] holds, per node (or `for_each` instance) id, the input digest and attempts
//! the ledger recorded. When the engine re-drives a workflow on it, a call whose rendered
//! input has the recorded digest gets the recorded attempts back; any other call is a
//! [`Divergence`] and fails, never a live call.

use crate::engine::{ApprovalDecision, Divergence};
use crate::ledger::event::{Event, RawJson, Stream, StreamName, Verdict};
use crate::tools::{Attempt, Captured, Outcome};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// One recorded tool call.
#[derive(Debug, Default)]
pub struct RecordedCall {
    pub tool: String,
    pub input_sha256: Option<String>,
    pub input: Option<Value>,
    pub(crate) attempts: Vec<Attempt>,
    /// `End.attempts`, for calls without `ToolOutput` lines (noop).
    pub(crate) ended_attempts: u64,
}

/// Every recorded call of a ledger, by node or instance id.
#[derive(Debug, Default)]
pub struct Recording {
    pub(super) calls: HashMap<String, RecordedCall>,
    /// `ContentRedacted` per node: the recorded results are already redacted, so a replay
    /// takes the counts from the recording.
    redactions: HashMap<String, Vec<(String, u64)>>,
    /// Recorded approval decisions, by node id.
    pub approvals: std::collections::BTreeMap<String, ApprovalDecision>,
    /// The 1-based line of each recorded decision, for messages about it.
    pub approval_lines: std::collections::BTreeMap<String, u64>,
}

/// A captured stream as a tool call gave it, from what the ledger recorded.
fn captured(stream: Option<Stream<'_>>) -> Option<Captured> {
    stream.map(|s| {
        let text = s.text.into_owned();
        let (bytes, truncated, sha256) = match s.truncated {
            Some((bytes, sha256)) => (bytes, true, sha256.map(Cow::into_owned)),
            None => (text.len() as u64, false, None),
        };
        Captured {
            text,
            bytes,
            truncated,
            sha256,
        }
    })
}

impl Recording {
    /// Adds the event of 1-based line `line` (see [`Recording::add`]).
    pub fn add_line(&mut self, line: u64, event: Event<'_>) {
        if let Event::ApprovalResolved(e) = &event {
            self.approval_lines.insert(e.node.to_string(), line);
        }
        self.add(event);
    }

    /// Adds one ledger event to the recording; events that say nothing about calls or
    /// decisions are passed over.
    pub fn add(&mut self, event: Event<'_>) {
        match event {
            Event::ApprovalResolved(e) => {
                self.approvals.insert(
                    e.node.to_string(),
                    ApprovalDecision {
                        approve: e.decision == Verdict::Approved,
                        approver: e.approver.map(Cow::into_owned),
                        reason: e.reason.map(Cow::into_owned),
                    },
                );
            }
            // The input's count is kept too: a call whose re-rendered input matches the
            // recorded one takes it (its secrets may have come from inputs that the recording
            // holds masked); one that diverges recomputes it (`source.rs`).
            Event::ContentRedacted { node, field, count } => {
                self.redactions
                    .entry(node.into_owned())
                    .or_default()
                    .push((field.into_owned(), count));
            }
            // A fan-out node's own Start has `for_each` and no input: not a call. A tool
            // without keys records no input, and each of its Starts is a call all the same.
            Event::Start(e)
                if e.input.is_some()
                    || e.input_sha256.is_some()
                    || crate::tools::find(&e.tool).is_some_and(|t| t.spec().keys.is_empty()) =>
            {
                self.calls.insert(
                    e.node.into_owned(),
                    RecordedCall {
                        tool: e.tool.into_owned(),
                        input_sha256: e.input_sha256.map(Cow::into_owned),
                        input: e.input.as_ref().map(RawJson::to_value),
                        ..RecordedCall::default()
                    },
                );
            }
            Event::ToolOutput(e) => {
                if let Some(call) = self.calls.get_mut(e.node.as_ref()) {
                    let (stdout, stderr) = (
                        captured(e.stream(StreamName::Stdout)),
                        captured(e.stream(StreamName::Stderr)),
                    );
                    call.attempts.push(Attempt {
                        outcome: Outcome {
                            output: e.output.into_owned(),
                            stdout,
                            stderr,
                            // The engine writes an `i32`; a forged code out of its range is
                            // left out, and a re-driven ledger shows the line as changed.
                            exit_code: e.exit_code.and_then(|c| i32::try_from(c).ok()),
                            error: e.error.map(Cow::into_owned),
                            listing: e.mcp_tools.as_deref().and_then(listing),
                            retry: None,
                        },
                        delay_ms: None,
                    });
                }
            }
            Event::Retry(e) => {
                if let Some(last) = self
                    .calls
                    .get_mut(e.node.as_ref())
                    .and_then(|c| c.attempts.last_mut())
                {
                    last.delay_ms = Some(e.delay_ms);
                }
            }
            Event::End(e) => {
                if let Some(call) = self.calls.get_mut(e.node.as_ref()) {
                    call.ended_attempts = e.attempts.unwrap_or(0);
                }
            }
            _ => {}
        }
    }

    /// The recorded redactions of `id`'s results.
    pub(super) fn redactions(&self, id: &str) -> Vec<(String, u64)> {
        self.redactions.get(id).cloned().unwrap_or_default()
    }

    /// The recorded attempts of `id` if its input digest is `digest`.
    pub(super) fn answer(
        &self,
        id: &str,
        tool: &str,
        digest: Option<&str>,
        asked: &Value,
    ) -> Result<Vec<Attempt>, Divergence> {
        let diverge = |reason: String, recorded: Option<Value>| Divergence {
            node: id.to_string(),
            reason,
            recorded,
            asked: asked.clone(),
        };
        let Some(call) = self.calls.get(id) else {
            return Err(diverge("no recorded result for this call".into(), None));
        };
        if call.tool != tool {
            return Err(diverge(
                format!(
                    "the recording ran tool `{}`, the workflow now asks for `{tool}`",
                    call.tool
                ),
                call.input.clone(),
            ));
        }
        if call.input_sha256.as_deref() != digest {
            return Err(diverge(
                "the rendered input differs from the recorded one".into(),
                call.input.clone(),
            ));
        }
        if call.attempts.is_empty() {
            let n = call.ended_attempts.max(1) as usize;
            return Ok(vec![
                Attempt {
                    outcome: Outcome::default(),
                    delay_ms: None
                };
                n
            ]);
        }
        Ok(call.attempts.clone())
    }
}

/// The MCP server listing a `ToolOutput` carries, as the call's outcome held it.
fn listing(recorded: &serde_json::Value) -> Option<crate::tools::Listing> {
    Some(crate::tools::Listing {
        server: recorded.get("server")?.as_str()?.to_string(),
        tools: recorded.get("tools")?.clone(),
    })
}
