//! Approvals: approval nodes and calls that need one (`require_approval`) wait for a person.
//!
//! They commit last in canonical order, so everything that does not wait for a person is
//! done first. When nothing else can go on, every approval that is ready is requested at once
//! (`ApprovalRequested`, in commit order, whether or not its decision is known, so a paused
//! run and one given the decisions up front write the same requests); then the first is
//! decided from the options, or by asking on a terminal, or the run pauses (`RunPaused`).
//! See `docs/workflow.md` (approvals) and `docs/ledger.md` (resuming).

use super::state::NodeState;
use super::{Engine, EngineError};
use crate::ledger::event::{self as ev, Event, Text};
use crate::workflow::{NodeIdx, NodeKind};
use std::collections::BTreeMap;

/// A person's decision on an approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDecision {
    pub approve: bool,
    pub approver: Option<String>,
    pub reason: Option<String>,
}

/// A way to ask for an approval decision: given the node id and its prompt.
#[derive(Clone)]
pub struct Ask(pub std::sync::Arc<AskFn>);

/// Node id, prompt, and the check of who may decide in (the `approvers` of the policy that
/// applies there, a called workflow's included); a decision out (`None`: no decision, the run
/// pauses).
pub type AskFn = dyn Fn(&str, &str, &ApproverCheck<'_>) -> Option<ApprovalDecision> + Send + Sync;

/// Whether a name (or none) may decide an approval; why not, when not.
pub type ApproverCheck<'a> = dyn Fn(Option<&str>) -> Result<(), String> + 'a;

impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ask(..)")
    }
}

pub(super) struct Approvals {
    /// Decisions given before the run, by instance id (`--approve`, `--reject`, the
    /// recording): shared with the sub-graphs, which look up their own ids in them.
    decisions: std::sync::Arc<BTreeMap<String, ApprovalDecision>>,
    /// Decisions a person made on the terminal, in this graph (its ids are its own).
    asked: BTreeMap<String, ApprovalDecision>,
    ask: Option<Ask>,
    /// Whether each node's `ApprovalRequested` has been written.
    requested: Vec<bool>,
    /// The decisions that let `require_approval` calls run, recorded when the task commits.
    approved_calls: BTreeMap<NodeIdx, ApprovalDecision>,
}

/// What the scheduler does after an approval's turn.
pub(super) enum Turn {
    /// A decision was made: go on scheduling.
    Decided,
    /// No decision: the run pauses, waiting for these nodes.
    Pause(Vec<String>),
}

impl Approvals {
    pub fn new(n: usize, decisions: BTreeMap<String, ApprovalDecision>, ask: Option<Ask>) -> Self {
        Self {
            decisions: std::sync::Arc::new(decisions),
            asked: BTreeMap::new(),
            ask,
            requested: vec![false; n],
            approved_calls: BTreeMap::new(),
        }
    }

    /// The approvals of a sub-graph of `n` nodes: the run's decisions and way of asking
    /// (decisions are by instance id, so each iteration's are its own).
    pub fn nested(&self, n: usize) -> Self {
        Self {
            decisions: std::sync::Arc::clone(&self.decisions),
            asked: BTreeMap::new(),
            ask: self.ask.clone(),
            requested: vec![false; n],
            approved_calls: BTreeMap::new(),
        }
    }

    /// The decision on `id`, if one is known.
    fn decision(&self, id: &str) -> Option<&ApprovalDecision> {
        self.asked.get(id).or_else(|| self.decisions.get(id))
    }

    /// Whether `i`'s call (`require_approval`) has been approved.
    pub fn call_approved(&self, i: NodeIdx) -> bool {
        self.approved_calls.contains_key(&i)
    }

    /// The decision that let `i`'s call run.
    pub fn approved_call(&self, i: NodeIdx) -> Option<&ApprovalDecision> {
        self.approved_calls.get(&i)
    }
}

impl Engine<'_> {
    /// The next node to commit is `top`, waiting for a person, and nothing else is ready:
    /// request every ready approval, then decide `top` or pause.
    pub(super) fn approval_turn(&mut self, top: NodeIdx) -> Result<Turn, EngineError> {
        let ready: Vec<NodeIdx> = self
            .sched
            .committable(&self.graph)
            .filter(|&i| {
                matches!(
                    self.nodes.states[i as usize],
                    NodeState::AwaitingApproval { .. }
                )
            })
            .collect();
        for &i in &ready {
            if !self.approvals.requested[i as usize] {
                self.approvals.requested[i as usize] = true;
                let clock = self.commit.start_clock(&self.graph, i);
                let iid = self.iid(i, None);
                if let NodeState::AwaitingApproval { prompt } = &self.nodes.states[i as usize] {
                    Event::ApprovalRequested {
                        node: iid.as_str().into(),
                        prompt: prompt.as_str().into(),
                    }
                    .write(clock, &mut self.commit.outbox);
                }
                if let Some(observer) = &self.observer {
                    observer.approval_requested(iid.as_str(), std::time::Instant::now());
                }
            }
        }
        // Decisions are by instance id: in a loop's body, `review#2/ok` (`docs/workflow.md`).
        let iid = self.iid(top, None);
        let id = iid.as_str();
        if self.approvals.decision(id).is_none()
            && let (Some(ask), NodeState::AwaitingApproval { prompt }) =
                (&self.approvals.ask, &self.nodes.states[top as usize])
        {
            // The requests are on disk before a person is asked.
            let ask = ask.clone();
            // The terminal sees what the ledger sees: the prompt, redacted.
            let prompt = self.calls.redactor.redact(prompt).0.into_owned();
            self.commit.flush()?;
            let policy = self.gate.policy;
            if let Some(decision) = (ask.0)(id, &prompt, &|name| policy.check_approver(name)) {
                self.approvals.asked.insert(id.to_string(), decision);
            }
        }
        if let Some(decision) = self.approvals.decision(id).cloned() {
            if let Some(observer) = &self.observer {
                observer.approval_decided(id, decision.approve, std::time::Instant::now());
            }
            let call = matches!(self.wf.nodes[top as usize].kind, NodeKind::Task(_));
            self.nodes.states[top as usize] = if call && decision.approve {
                // A `require_approval` call, approved: it runs now, at its turn.
                self.approvals.approved_calls.insert(top, decision);
                self.start_node(top)
            } else {
                NodeState::Approval(Box::new(decision))
            };
            self.sched.push_ready(&self.graph, top);
            return Ok(Turn::Decided);
        }
        let pending: Vec<String> = ready
            .iter()
            .map(|&i| self.iid(i, None).into_string())
            .collect();
        // A sub-graph's pause is the run's: the workflow's engine writes the trailer.
        if self.scope.is_empty() {
            self.pause_for(&pending)?;
        }
        Ok(Turn::Pause(pending))
    }

    /// Writes the `RunPaused` trailer of a run waiting for decisions on `pending`.
    pub(super) fn pause_for(&mut self, pending: &[String]) -> Result<(), EngineError> {
        self.commit.finish_with(&Event::RunPaused(ev::RunPaused {
            reason: ev::PauseReason::Approval,
            pending: pending.iter().map(|p| Text::from(p.as_str())).collect(),
            resume: "kairos run WORKFLOW --resume LEDGER --approve ID --approver NAME".into(),
        }))?;
        Ok(())
    }
}
