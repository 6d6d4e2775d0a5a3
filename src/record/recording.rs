//! Replay mode: tool results come from a recorded ledger instead of running the tools.
//!
//! A [`Recording`] holds, per node (or `for_each` instance) id, the input digest and attempts
//! the ledger recorded. When the engine re-drives a workflow on it, a call whose rendered
//! input has the recorded digest gets the recorded attempts back; any other call is a
//! [`Divergence`] and fails, never a live call.

use crate::engine::ApprovalDecision;
use crate::tools::{Attempt, Captured, Outcome};
use serde::Deserialize;
use serde_json::Value;
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
    pub calls: HashMap<String, RecordedCall>,
    /// `ContentRedacted` per node: the recorded results are already redacted, so a replay
    /// takes the counts from the recording.
    redactions: HashMap<String, Vec<(String, u64)>>,
    /// Recorded approval decisions, by node id.
    pub approvals: std::collections::BTreeMap<String, ApprovalDecision>,
}

/// A call the recording cannot answer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Divergence {
    pub node: String,
    pub reason: String,
    /// What the recording had (its rendered input), when it had the call.
    pub recorded: Option<Value>,
    /// What the workflow asked for now.
    pub asked: Value,
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    input_sha256: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
    #[serde(default)]
    stdout_bytes: Option<u64>,
    #[serde(default)]
    stderr_bytes: Option<u64>,
    #[serde(default)]
    stdout_sha256: Option<String>,
    #[serde(default)]
    stderr_sha256: Option<String>,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    attempts: Option<u64>,
}

fn captured(text: Option<String>, bytes: Option<u64>, sha256: Option<String>) -> Option<Captured> {
    text.map(|text| Captured {
        bytes: bytes.unwrap_or(text.len() as u64),
        truncated: bytes.is_some(),
        sha256,
        text,
    })
}

impl Recording {
    /// Adds one ledger line (its event type, node and full text) to the recording.
    pub fn add(&mut self, event: &str, node: Option<&str>, text: &str) -> Result<(), String> {
        let Some(node) = node else { return Ok(()) };
        if event == "ApprovalResolved" {
            #[derive(Deserialize)]
            struct Resolved {
                decision: String,
                #[serde(default)]
                approver: Option<String>,
                #[serde(default)]
                reason: Option<String>,
            }
            let r: Resolved = serde_json::from_str(text)
                .map_err(|e| format!("ApprovalResolved of `{node}`: {e}"))?;
            self.approvals.insert(
                node.to_string(),
                ApprovalDecision {
                    approve: r.decision == "approved",
                    approver: r.approver,
                    reason: r.reason,
                },
            );
            return Ok(());
        }
        if event == "ContentRedacted" {
            #[derive(Deserialize)]
            struct Redacted {
                field: String,
                count: u64,
            }
            let r: Redacted = serde_json::from_str(text)
                .map_err(|e| format!("ContentRedacted of `{node}`: {e}"))?;
            // The input's redaction is recomputed from the re-rendered input.
            if r.field != "input" {
                self.redactions
                    .entry(node.to_string())
                    .or_default()
                    .push((r.field, r.count));
            }
            return Ok(());
        }
        if !matches!(event, "Start" | "ToolOutput" | "Retry" | "End") {
            return Ok(());
        }
        let f: Fields =
            serde_json::from_str(text).map_err(|e| format!("{event} of `{node}`: {e}"))?;
        match event {
            "Start" => {
                // A fan-out node's own Start has `for_each` and no input: not a call. A tool
                // without keys records no input either, but each of its Starts is a call.
                if f.input.is_some()
                    || f.input_sha256.is_some()
                    || f.tool
                        .as_deref()
                        .and_then(crate::tools::find)
                        .is_some_and(|t| t.spec().keys.is_empty())
                {
                    self.calls.insert(
                        node.to_string(),
                        RecordedCall {
                            tool: f.tool.unwrap_or_default(),
                            input_sha256: f.input_sha256,
                            input: f.input,
                            ..RecordedCall::default()
                        },
                    );
                }
            }
            "ToolOutput" => {
                if let Some(call) = self.calls.get_mut(node) {
                    call.attempts.push(Attempt {
                        outcome: Outcome {
                            output: f.output,
                            stdout: captured(f.stdout, f.stdout_bytes, f.stdout_sha256),
                            stderr: captured(f.stderr, f.stderr_bytes, f.stderr_sha256),
                            exit_code: f.exit_code,
                            error: f.error,
                        },
                        delay_ms: None,
                    });
                }
            }
            "Retry" => {
                if let Some(last) = self.calls.get_mut(node).and_then(|c| c.attempts.last_mut()) {
                    last.delay_ms = f.delay_ms;
                }
            }
            _ => {
                if let Some(call) = self.calls.get_mut(node) {
                    call.ended_attempts = f.attempts.unwrap_or(0);
                }
            }
        }
        Ok(())
    }

    /// The recorded redactions of `id`'s results.
    pub(crate) fn redactions(&self, id: &str) -> Vec<(String, u64)> {
        self.redactions.get(id).cloned().unwrap_or_default()
    }

    /// The recorded attempts of `id` if its input digest is `digest`.
    pub(crate) fn answer(
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
