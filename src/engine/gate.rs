//! The policy gate: every call passes here before it runs. It checks the capabilities the
//! tool needs, the paths, programs and hosts the rendered call touches, and the `max_calls`
//! limits, and it says which calls must wait for a person (`require_approval`) or for their
//! turn in commit order (calls under a limit). See `docs/policy.md`.
//!
//! Call limits are counted here, in commit order: a call under a limit is started only when
//! it is next to commit, so the same calls are allowed at any `--jobs`.

use super::state::{PolicyCheck, TaskRun};
use crate::policy::effective::{self, Effective};
use crate::policy::{CapSet, Enforcement};
use crate::tools::Tool;
use crate::workflow::{Node, NodeKind};
use serde_json::{Map, Value};
use std::collections::HashMap;

pub(super) struct Gate<'w> {
    pub policy: &'w Effective,
    /// Calls counted so far per `max_calls` key, in commit order.
    calls: HashMap<String, u64>,
    /// Whether an enforced denial stopped part of the run.
    denied: bool,
}

impl<'w> Gate<'w> {
    pub fn new(policy: &'w Effective) -> Self {
        Self {
            policy,
            calls: HashMap::new(),
            denied: false,
        }
    }

    /// Whether an enforced denial stopped part of the run.
    pub fn denied(&self) -> bool {
        self.denied
    }

    /// Whether a task's call needs a person's approval (`require_approval`).
    pub fn needs_approval(&self, node: &Node) -> bool {
        match &node.kind {
            NodeKind::Task(t) => !CapSet::of(t.tool.spec().capabilities)
                .intersect(self.policy.require_approval)
                .is_empty(),
            _ => false,
        }
    }

    /// Whether a task's call is under a `max_calls` limit, and so must wait for its turn in
    /// commit order before it is decided.
    pub fn needs_turn(&self, node: &Node, tool: &dyn Tool) -> bool {
        self.policy.has_limits(node.policy.as_deref())
            && !self
                .policy
                .limits(tool.spec().name, &node.id, node.policy.as_deref())
                .is_empty()
    }

    /// The question a `require_approval` call asks.
    pub fn approval_prompt(&self, node: &Node, tool: &dyn Tool) -> String {
        let spec = tool.spec();
        let caps = CapSet::of(spec.capabilities).intersect(self.policy.require_approval);
        format!(
            "node `{}` calls `{}`, which needs {caps}: allow it?",
            node.id, spec.name
        )
    }

    /// The policy's checks of one call: capabilities, paths, commands, hosts and call limits,
    /// recorded in `run`. Call limits are counted here; for the calls they apply to, this
    /// runs in commit order (see `NodeState::AwaitingTurn`).
    pub fn decide(
        &mut self,
        node: &Node,
        tool: &'static dyn Tool,
        args: &Map<String, Value>,
        run: &mut TaskRun,
    ) {
        let spec = tool.spec();
        let enforced = self.policy.enforcement == Enforcement::Enforce;
        let mut checks = Vec::new();
        let mut denials = Vec::new();
        let needed = CapSet::of(spec.capabilities);
        if !needed.is_empty() {
            checks.push("capability");
            let granted = self.policy.granted_for(node.policy.as_deref());
            for cap in needed.iter().filter(|c| !granted.contains(*c)) {
                denials.push(effective::Denial {
                    reason: effective::Reason::CapabilityNotGranted,
                    detail: self.policy.withheld_by(cap, node.policy.as_deref(), false),
                });
            }
        }
        for resource in tool.resources(args) {
            let (check, verdict) = self.policy.check(&resource);
            if !checks.contains(&check.name()) {
                checks.push(check.name());
            }
            if let Err(d) = verdict {
                denials.push(d);
            }
        }
        for d in denials {
            run.checks.push(PolicyCheck::Deny {
                code: d.reason.as_str(),
                detail: d.detail,
                enforced,
            });
            run.denied |= enforced;
        }
        let limits = self
            .policy
            .limits(spec.name, &node.id, node.policy.as_deref());
        if !limits.is_empty() && !run.denied {
            checks.push("max_calls");
            for (key, limit) in limits {
                let count = self.calls.entry(key.clone()).or_insert(0);
                *count += 1;
                if *count > limit {
                    run.checks.push(PolicyCheck::Limit {
                        key,
                        limit,
                        enforced,
                    });
                    run.denied |= enforced;
                }
            }
        }
        if run.checks.is_empty() && !checks.is_empty() {
            run.checks.push(PolicyCheck::Allow { checks });
        }
        self.denied |= run.denied;
    }
}
