//! A node's state from the start of the run until it commits, and the rules that read it:
//! what its status is, whether it has its result, whether its dependents may run.
//!
//! There is one [`NodeState`] per node for the whole run, so it is kept small (rare, large
//! variants are boxed) and a committed node keeps only its status.

use super::{ApprovalDecision, Rules};
use crate::ledger::event::Status;
use crate::policy::effective::codes;
use crate::tools::{Attempt, Outcome};
use crate::workflow::NodeIdx;
use serde_json::Value;

/// A node's result, from the moment it is known until it is committed.
#[derive(Debug, Default)]
pub(super) enum NodeState {
    /// Waiting for the nodes it reads.
    #[default]
    Pending,
    Skipped(String),
    /// Failed before any call (a condition or template that could not be evaluated).
    Failed(String),
    Task(Box<TaskRun>),
    /// Handed to a worker; becomes `Task` when the result comes back.
    Running(Box<TaskRun>),
    ForEach {
        runs: Vec<Option<TaskRun>>,
        /// Instances still running on workers.
        remaining: usize,
    },
    Branch {
        value: bool,
    },
    Fork,
    Join {
        succeeded: Vec<NodeIdx>,
    },
    /// An approval node, or a call that needs one, waiting for a person.
    AwaitingApproval {
        prompt: String,
    },
    /// A call subject to `max_calls`: decided when it is next in commit order, so that the
    /// same calls are allowed whatever the timing.
    AwaitingTurn,
    /// An approval node with its decision.
    Approval(Box<ApprovalDecision>),
    /// A loop or a call whose sub-graph has run (its events are written).
    Scope(Box<ScopeRun>),
    /// Committed; only the status is kept.
    Done(Status),
}

/// What a loop or a call gave: its events up to `clock` are written; its `End` is not.
#[derive(Debug)]
pub(super) struct ScopeRun {
    pub status: Status,
    /// `nodes.ID.output`.
    pub output: Value,
    /// The clock of its last event written.
    pub clock: u64,
    pub error: Option<String>,
    pub summary: String,
}

const _: () = assert!(std::mem::size_of::<NodeState>() <= 32);

impl NodeState {
    /// The node's status as far as it is known (a node that never got its result counts as
    /// skipped), under `rules`.
    pub fn status(&self, rules: Rules) -> Status {
        match self {
            NodeState::Done(s) => *s,
            NodeState::Pending
            | NodeState::Running(_)
            | NodeState::AwaitingApproval { .. }
            | NodeState::AwaitingTurn => Status::Skipped,
            NodeState::Skipped(_) => Status::Skipped,
            NodeState::Failed(_) => Status::Failed,
            NodeState::Task(t) => t.status(),
            NodeState::ForEach { runs, .. } => {
                let any = |s: Status| runs.iter().flatten().any(|r| r.status() == s);
                if any(Status::Failed) {
                    Status::Failed
                } else if rules.denied_instances_deny_the_node() && any(Status::Denied) {
                    Status::Denied
                } else {
                    Status::Succeeded
                }
            }
            NodeState::Branch { .. } | NodeState::Fork | NodeState::Join { .. } => {
                Status::Succeeded
            }
            NodeState::Scope(run) => run.status,
            NodeState::Approval(d) if d.approve => Status::Succeeded,
            NodeState::Approval(_) => Status::Failed,
        }
    }

    /// Whether the node's result is known (it may commit once its turn comes).
    pub fn has_result(&self) -> bool {
        !matches!(
            self,
            NodeState::Pending
                | NodeState::Running(_)
                | NodeState::AwaitingApproval { .. }
                | NodeState::AwaitingTurn
                | NodeState::ForEach { remaining: 1.., .. }
        )
    }

    /// The node's value as expressions read it (`nodes.ID.output`, `.stdout`, ...).
    pub fn value(&self, rules: Rules) -> Value {
        let status = self.status(rules).name();
        let mut v = serde_json::json!({ "output": null, "stdout": null, "stderr": null, "exit_code": null, "status": status });
        match self {
            NodeState::Task(run) => {
                if let Some(o) = run.outcome() {
                    v["output"] = o.output.clone();
                    v["stdout"] = o
                        .stdout
                        .as_ref()
                        .map_or(Value::Null, |c| Value::String(c.text.clone()));
                    v["stderr"] = o
                        .stderr
                        .as_ref()
                        .map_or(Value::Null, |c| Value::String(c.text.clone()));
                    v["exit_code"] = o.exit_code.map_or(Value::Null, Value::from);
                }
            }
            NodeState::ForEach { runs, .. } => {
                v["output"] = Value::Array(
                    runs.iter()
                        .map(|r| {
                            r.as_ref()
                                .and_then(TaskRun::outcome)
                                .map_or(Value::Null, |o| o.output.clone())
                        })
                        .collect(),
                );
            }
            NodeState::Branch { value } => v["output"] = Value::Bool(*value),
            NodeState::Approval(d) => v["output"] = Value::Bool(d.approve),
            NodeState::Scope(run) => v["output"] = run.output.clone(),
            _ => {}
        }
        v
    }
}

/// Whether dependents of a node with this status run: it succeeded, or failed under
/// `continue_on_error`.
pub(super) fn lets_dependents_run(status: Status, continue_on_error: bool) -> bool {
    match status {
        Status::Succeeded => true,
        Status::Failed => continue_on_error,
        Status::Skipped | Status::Denied => false,
    }
}

/// A task's run (or one `for_each` instance's).
#[derive(Debug, Default)]
pub(super) struct TaskRun {
    pub skipped: Option<String>,
    /// The rendered arguments as recorded (absent when rendering failed).
    pub input: Option<Value>,
    /// Failure before the tool ran (rendering, a condition).
    pub error: Option<String>,
    pub attempts: Vec<Attempt>,
    /// The policy's checks of this call, in the order they were made.
    pub checks: Vec<PolicyCheck>,
    /// An enforced denial: the tool did not run.
    pub denied: bool,
    /// Redactions applied to the call's input and results: (field, count).
    pub redactions: Vec<(String, u64)>,
    /// The call limits it was counted against (`max_calls` keys, its own rendered key
    /// among them, and `budget.llm_calls`): its retries count against the same ones.
    pub limits: Vec<(String, u64)>,
}

/// The outcome of the policy's checks of one call, recorded as an event.
#[derive(Clone, Debug)]
pub(super) enum PolicyCheck {
    /// Every check passed: their names, in order.
    Allow { checks: Vec<&'static str> },
    Deny {
        code: &'static str,
        detail: String,
        enforced: bool,
    },
    /// A `max_calls` limit was reached.
    Limit {
        key: String,
        limit: u64,
        enforced: bool,
    },
}

impl TaskRun {
    pub fn status(&self) -> Status {
        if self.skipped.is_some() {
            Status::Skipped
        } else if self.denied {
            Status::Denied
        } else if self.error.is_some()
            || self
                .attempts
                .last()
                .is_some_and(|a| a.outcome.error.is_some())
        {
            Status::Failed
        } else {
            Status::Succeeded
        }
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.attempts.last().map(|a| &a.outcome)
    }

    /// The reason code of the enforced denial that stopped the call, if one did.
    pub fn denial(&self) -> Option<&'static str> {
        self.checks.iter().find_map(|d| match d {
            PolicyCheck::Deny {
                code,
                enforced: true,
                ..
            } => Some(*code),
            PolicyCheck::Limit { enforced: true, .. } => Some(codes::CALL_LIMIT_EXCEEDED),
            _ => None,
        })
    }

    /// Empties the run for reuse, keeping the capacity of its lists.
    pub fn clear(&mut self) {
        let mut attempts = std::mem::take(&mut self.attempts);
        let mut checks = std::mem::take(&mut self.checks);
        let mut redactions = std::mem::take(&mut self.redactions);
        let mut limits = std::mem::take(&mut self.limits);
        attempts.clear();
        checks.clear();
        redactions.clear();
        limits.clear();
        *self = TaskRun {
            attempts,
            checks,
            redactions,
            limits,
            ..TaskRun::default()
        };
    }
}

/// Emptied task runs kept for reuse: most nodes run and commit in quick succession, so the
/// boxes of committed runs serve the next ones.
const SPARE_RUNS: usize = 64;

/// Every node's state, the branch decisions (kept after a branch commits: its arms may begin
/// later), and the runs kept for reuse.
pub(super) struct Nodes {
    pub states: Vec<NodeState>,
    /// The rules the run follows (some statuses depend on them).
    pub rules: Rules,
    pub branch_values: Vec<Option<bool>>,
    #[allow(clippy::vec_box)] // the boxes are what is reused
    spare: Vec<Box<TaskRun>>,
}

impl Nodes {
    pub fn new(n: usize, rules: Rules) -> Self {
        Self {
            rules,
            states: (0..n).map(|_| NodeState::Pending).collect(),
            branch_values: vec![None; n],
            spare: Vec::new(),
        }
    }

    pub fn status(&self, i: NodeIdx) -> Status {
        self.states[i as usize].status(self.rules)
    }

    /// `i`'s value as expressions read it.
    pub fn value(&self, i: NodeIdx) -> Value {
        self.states[i as usize].value(self.rules)
    }

    /// An empty run, reused when one is at hand.
    pub fn new_run(&mut self) -> Box<TaskRun> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps a committed run's box for reuse.
    pub fn recycle(&mut self, mut run: Box<TaskRun>) {
        if self.spare.len() < SPARE_RUNS {
            run.clear();
            self.spare.push(run);
        }
    }
}
