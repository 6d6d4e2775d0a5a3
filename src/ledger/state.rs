//! The state of a run, rebuilt from its ledger without executing anything: per node its
//! status, attempts and last output, the branch decisions, the run status and the final clock.

use super::event::{Event, Kind, Status};
use super::reader::{ReadError, Reader};
use serde_json::Value;
use std::borrow::Cow;
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

    /// Takes in one event read whole (line `seq`).
    fn apply(&mut self, event: Event<'_>, seq: u64) {
        match event {
            Event::RunStart(e) => {
                self.workflow = e.workflow.into_owned();
                self.workflow_sha256 = e.workflow_sha256.into_owned();
                self.seed = e.seed;
                self.inputs = e.inputs.into_owned();
            }
            Event::ToolOutput(e) => {
                let n = self.node(&e.node, seq);
                n.output = e.output.into_owned();
                n.error = e.error.map(Cow::into_owned);
            }
            Event::End(e) => {
                let n = self.node(&e.node, seq);
                n.status = e.status.name();
                n.attempts = e.attempts.unwrap_or(n.attempts);
                if let Some(error) = e.error {
                    n.error = Some(error.into_owned());
                }
            }
            Event::Error { node, message } => {
                self.node(&node, seq).error = Some(message.into_owned());
            }
            Event::Skipped { node, reason } => {
                let n = self.node(&node, seq);
                n.status = Status::Skipped.name();
                n.reason = Some(reason.into_owned());
            }
            Event::BranchDecision(e) => {
                self.node(&e.node, seq).output = Value::Bool(e.value);
                self.decisions.push(Decision {
                    node: e.node.into_owned(),
                    arm: e.arm.name().to_string(),
                    value: e.value,
                    seq,
                });
            }
            Event::LoopIteration(e) => {
                // The loop's state so far: what `nodes.LOOP.output` is if the loop ends here.
                self.node(&e.node, seq).output = e.state.into_owned();
            }
            Event::WorkflowCall(e) => {
                self.node(&e.node, seq);
            }
            Event::RunPaused(e) => {
                self.status = "paused".into();
                self.pending_approvals = e.pending.into_iter().map(Cow::into_owned).collect();
            }
            Event::RunEnd(e) => {
                self.status = e.status.name().to_string();
                self.outputs = e.outputs.into_owned();
            }
            _ => {}
        }
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
        let kind = line.kind()?;
        state.clock = state.clock.max(line.head.clock);
        state.events = seq + 1;
        // Only the events that change the state beyond creating a node are read whole.
        match kind {
            Kind::Start => {
                if let Some(id) = line.head.node {
                    state.node(id, seq);
                }
            }
            Kind::ApprovalRequested => {
                if let Some(id) = line.head.node {
                    state.node(id, seq).status = "waiting";
                }
            }
            Kind::RunStart
            | Kind::ToolOutput
            | Kind::End
            | Kind::Error
            | Kind::Skipped
            | Kind::BranchDecision
            | Kind::RunPaused
            | Kind::LoopIteration
            | Kind::WorkflowCall
            | Kind::RunEnd => state.apply(line.event()?, seq),
            Kind::ForkSpawn
            | Kind::JoinComplete
            | Kind::PolicyAllow
            | Kind::PolicyDeny
            | Kind::ContentRedacted
            | Kind::CallLimitExceeded
            | Kind::Retry
            | Kind::ApprovalResolved => {}
        }
        if until == Some(seq) {
            if !matches!(kind, Kind::RunEnd | Kind::RunPaused) {
                state.status = "incomplete".into();
            }
            break;
        }
    }
    Ok(state)
}
