//! The state of a run, rebuilt from its ledger without executing anything: per node its
//! status, attempts and last output, the branch decisions, the run status and the final clock.

use super::reader::{ReadError, Reader};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: node ids are short, and SipHash's protection against chosen keys buys nothing for
/// a table a command builds from one file and drops when it exits.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}
use std::io::BufRead;

#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeState {
    pub node: String,
    /// `running` until the node's `End` (or `Skipped`), then its status.
    pub status: &'static str,
    pub attempts: u64,
    pub output: Value,
    pub error: Option<String>,
    pub reason: Option<String>,
    /// `seq` of the node's last event.
    pub seq: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    pub node: String,
    pub arm: String,
    pub value: bool,
    pub seq: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RunState {
    pub workflow: String,
    pub workflow_sha256: String,
    pub seed: u64,
    pub inputs: Value,
    /// `succeeded`, `failed`, `denied` (from `RunEnd`), `paused` (a `RunPaused` trailer), or
    /// `incomplete` (the ledger stops before either, or `--until` stopped reading).
    pub status: String,
    pub clock: u64,
    /// Events read.
    pub events: u64,
    pub nodes: Vec<NodeState>,
    pub decisions: Vec<Decision>,
    pub outputs: Value,
    pub pending_approvals: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, usize, BuildHasherDefault<Fnv>>,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    workflow_sha256: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    inputs: Option<Value>,
    #[serde(borrow, default)]
    status: Option<&'a str>,
    #[serde(default)]
    attempts: Option<u64>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    outputs: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    arm: Option<String>,
    #[serde(default)]
    value: Option<bool>,
    #[serde(default)]
    pending: Option<Vec<String>>,
}

impl RunState {
    fn node(&mut self, id: &str, seq: u64) -> &mut NodeState {
        // Look up before inserting: the id is allocated once per node, not once per event.
        let i = match self.index.get(id) {
            Some(&i) => i,
            None => {
                self.nodes.push(NodeState {
                    node: id.to_string(),
                    status: "running",
                    attempts: 0,
                    output: Value::Null,
                    error: None,
                    reason: None,
                    seq,
                });
                self.index.insert(id.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        let n = &mut self.nodes[i];
        n.seq = seq;
        n
    }

    pub fn get(&self, id: &str) -> Option<&NodeState> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }
}

/// A status as a static name (statuses repeat on every node; no allocation per event).
fn status_name(status: Option<&str>) -> &'static str {
    match status {
        Some("succeeded") => "succeeded",
        Some("failed") => "failed",
        Some("skipped") => "skipped",
        Some("denied") => "denied",
        _ => "unknown",
    }
}

/// Reads the ledger up to and including event `until` (all of it without), checking it as it
/// goes, and returns the state at that point.
pub fn rebuild<R: BufRead>(
    reader: &mut Reader<R>,
    until: Option<u64>,
) -> Result<RunState, ReadError> {
    let mut state = RunState {
        status: "incomplete".into(),
        ..RunState::default()
    };
    while let Some(line) = reader.next_line()? {
        let seq = line.seq;
        let event = line.head.event;
        state.clock = state.clock.max(line.head.clock);
        state.events = seq + 1;
        // Only the events that change the state are parsed beyond their head.
        let needs_fields = !matches!(
            event,
            "Start" | "ForkSpawn" | "JoinComplete" | "PolicyAllow" | "ContentRedacted"
        );
        let f: Option<Fields<'_>> = if needs_fields {
            serde_json::from_str(line.text).ok()
        } else {
            None
        };
        let node = line.head.node;
        match (event, node, f) {
            ("RunStart", _, Some(f)) => {
                state.workflow = f.workflow.unwrap_or_default();
                state.workflow_sha256 = f.workflow_sha256.unwrap_or_default();
                state.seed = f.seed.unwrap_or_default();
                state.inputs = f.inputs.unwrap_or(Value::Null);
            }
            ("Start", Some(id), _) => {
                state.node(id, seq);
            }
            ("ToolOutput", Some(id), Some(f)) => {
                let n = state.node(id, seq);
                n.output = f.output.unwrap_or(Value::Null);
                n.error = f.error;
            }
            ("End", Some(id), Some(f)) => {
                let n = state.node(id, seq);
                n.status = status_name(f.status);
                n.attempts = f.attempts.unwrap_or(n.attempts);
                if f.error.is_some() {
                    n.error = f.error;
                }
            }
            ("Error", Some(id), Some(f)) => {
                state.node(id, seq).error = f.message;
            }
            ("Skipped", Some(id), Some(f)) => {
                let n = state.node(id, seq);
                n.status = "skipped";
                n.reason = f.reason;
            }
            ("BranchDecision", Some(id), Some(f)) => {
                state.node(id, seq).output = Value::Bool(f.value.unwrap_or_default());
                state.decisions.push(Decision {
                    node: id.to_string(),
                    arm: f.arm.unwrap_or_default(),
                    value: f.value.unwrap_or_default(),
                    seq,
                });
            }
            ("ApprovalRequested", Some(id), _) => {
                state.node(id, seq).status = "waiting";
            }
            ("RunPaused", _, Some(f)) => {
                state.status = "paused".into();
                state.pending_approvals = f.pending.unwrap_or_default();
            }
            ("RunEnd", _, Some(f)) => {
                state.status = status_name(f.status).to_string();
                state.outputs = f.outputs.unwrap_or(Value::Null);
            }
            _ => {}
        }
        if until == Some(seq) {
            if !matches!(event, "RunEnd" | "RunPaused") {
                state.status = "incomplete".into();
            }
            break;
        }
    }
    Ok(state)
}
