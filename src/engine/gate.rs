//! The policy gate: every call passes here before it runs. It checks the capabilities the
//! tool needs, the paths, programs and hosts the rendered call touches, and the `max_calls`
//! limits, and it says which calls must wait for a person (`require_approval`) or for their
//! turn in commit order (calls under a limit). See `docs/policy.md`.
//!
//! Call limits are counted here, in commit order: a call under a limit is started only when
//! it is next to commit, so the same calls are allowed at any `--jobs`.
//!
//! Under rules 3 every attempt is a call, retries included. A node under a limit is the only
//! such node in flight (it is next to commit until it has committed), so its retries are the
//! only ones asking: they are granted on the workers that run them from a shared [`Budget`],
//! after every first attempt of the node has been counted, one instance at a time in instance
//! order, each instance's attempts in order. That is the order a single worker would grant
//! them in, whatever `--jobs` is. Recorded calls (replay, resume) are counted the same way,
//! from their recorded attempts. See `docs/policy.md#call-limits`.

use super::Rules;
use super::state::{NodeState, PolicyCheck, TaskRun};
use crate::cancel::Cancel;
use crate::net::Net;
use crate::policy::effective::{self, Effective};
use crate::policy::{CapSet, Enforcement};
use crate::tools::Tool;
use crate::workflow::{Node, NodeKind};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub(super) struct Gate<'w> {
    pub policy: &'w Effective,
    /// The run's network access, checked against the policy's hosts at every URL it reaches.
    pub net: Net,
    /// The run's MCP servers, started by the calls that need them; the engine stops them when
    /// the run ends.
    pub mcp: crate::mcp::Servers,
    /// Calls counted so far per `max_calls` key, in commit order; shared with the workers that
    /// ask for retries.
    budget: Arc<Budget>,
    /// Whether retries count as calls (rules 3).
    retries_are_calls: bool,
    /// Whether an enforced denial stopped part of the run.
    denied: bool,
    /// Tokens spent by the model calls committed so far (for `budget.tokens`).
    spent_tokens: u64,
    /// By node id: the policy of each node whose own `policy:` narrows paths, hosts or
    /// commands, built the first time one of its calls is decided.
    narrowed: HashMap<String, Arc<Narrowed>>,
}

/// What a node's calls may touch when its own `policy:` lists `paths`, `hosts` or `commands`:
/// the run's layers and the node's (each layer must allow, so the node's can only narrow),
/// and network access held to its hosts at every redirect.
pub(super) struct Narrowed {
    pub policy: Effective,
    pub net: Net,
}

/// The `max_calls` key under which `budget.llm_calls` counts model calls; its events carry
/// the reason `BUDGET_EXCEEDED`.
pub(super) const LLM_CALLS_KEY: &str = "budget.llm_calls";

/// Whether a tool's calls are model calls, which a `budget` caps.
fn calls_a_model(tool: &dyn Tool) -> bool {
    tool.spec()
        .capabilities
        .contains(&crate::policy::Capability::Llm)
}

impl<'w> Gate<'w> {
    pub fn new(policy: &'w Effective, rules: Rules) -> Self {
        Self {
            policy,
            net: Net::new(policy.reaching().clone()),
            mcp: crate::mcp::Servers::default(),
            budget: Arc::default(),
            retries_are_calls: rules.retries_are_calls(),
            denied: false,
            spent_tokens: 0,
            narrowed: HashMap::new(),
        }
    }

    /// Counts the tokens of a call that has committed.
    pub fn spend(&mut self, tokens: u64) {
        self.spent_tokens = self.spent_tokens.saturating_add(tokens);
    }

    /// The call limits of a node's calls: its `max_calls` keys, and `budget.llm_calls` for a
    /// model call.
    fn limits_of(&self, node: &Node, tool: &dyn Tool) -> Vec<(String, u64)> {
        // By the tool's name, the node's id, and the key the task names (`mcp:SERVER/TOOL`).
        let mut limits = if self.policy.has_limits(node.policy.as_deref()) {
            let extra = match &node.kind {
                NodeKind::Task(t) => t.limit_key(),
                _ => None,
            };
            self.policy.limits(
                &[
                    tool.spec().name,
                    &node.id,
                    extra.as_deref().unwrap_or_default(),
                ],
                node.policy.as_deref(),
            )
        } else {
            Vec::new()
        };
        if let Some(n) = self.policy.budget_llm_calls.filter(|_| calls_a_model(tool)) {
            limits.push((LLM_CALLS_KEY.to_string(), n));
        }
        limits
    }

    /// Whether a task's `max_calls` key is known only from its rendered call.
    fn keys_a_call(&self, node: &Node, tool: &dyn Tool) -> bool {
        matches!(&node.kind, NodeKind::Task(t) if t.limit_key().is_none()) && tool.keys_calls()
    }

    /// Whether a model call is under `budget.tokens`.
    fn under_token_budget(&self, tool: &dyn Tool) -> bool {
        self.policy.budget_tokens.is_some() && calls_a_model(tool)
    }

    /// The gate of a called workflow's sub-graph, under `policy` (the caller's narrowed by
    /// the callee's): the same `max_calls` counts, so limits count across the whole run.
    /// `net` is the network access under that policy: the run's own (its connections kept
    /// for reuse) when the policy is the same, see [`Gate::net_for`].
    pub fn nested<'x>(&self, policy: &'x Effective, net: Net) -> Gate<'x> {
        Gate {
            policy,
            net,
            mcp: self.mcp.clone(),
            budget: Arc::clone(&self.budget),
            retries_are_calls: self.retries_are_calls,
            denied: false,
            spent_tokens: self.spent_tokens,
            narrowed: HashMap::new(),
        }
    }

    /// The network access of a sub-graph under `policy`: this gate's (sharing its idle
    /// connections, so an agent's turns reuse them) when the policy is this gate's, a new
    /// one held to `policy`'s hosts otherwise.
    pub fn net_for(&self, policy: &Effective) -> Net {
        if std::ptr::eq(policy, self.policy) {
            self.net.clone()
        } else {
            Net::new(policy.reaching().clone())
        }
    }

    /// Takes back what a sub-graph's gate decided: whether an enforced denial stopped part of
    /// it, and the tokens its model calls spent (they count for the calls committed after it).
    pub fn join(&mut self, child: &Gate<'_>) {
        self.denied |= child.denied;
        self.spent_tokens = child.spent_tokens;
    }

    /// Whether an enforced denial stopped part of the run.
    pub fn denied(&self) -> bool {
        self.denied
    }

    /// Notes the checks of a node's retries (from a worker): an enforced refusal stopped part
    /// of the run, as an enforced denial of a first attempt does.
    pub fn retries_checked(&mut self, checks: &[PolicyCheck]) {
        self.denied |= checks
            .iter()
            .any(|c| matches!(c, PolicyCheck::Limit { enforced: true, .. }));
    }

    /// Whether a node's retries count as calls: not under rules before 3, nor when the node
    /// does not retry or no limit can apply to its calls. Each call's retries count against
    /// the limits it was counted against ([`TaskRun::limits`]).
    pub fn counts_retries(&self, node: &Node, tool: &dyn Tool) -> bool {
        self.retries_are_calls
            && node.retry.as_ref().is_some_and(|r| r.attempts > 1)
            && (!self.limits_of(node, tool).is_empty()
                || (self.policy.has_limits(node.policy.as_deref()) && self.keys_a_call(node, tool)))
    }

    /// Before the calls of a node whose retries count: its retries wait until [`seal`](Self::seal).
    pub fn open_node(&self) {
        let mut counted = self.budget.lock();
        debug_assert!(
            counted.open.is_empty(),
            "one limited node in flight at a time"
        );
        counted.sealed = false;
    }

    /// The grant a worker asks for the retries of instance `instance` (0 for a plain task).
    pub fn retry_grant(&self, limits: Vec<(String, u64)>, instance: u32) -> RetryGrant {
        self.budget.lock().open.insert(instance);
        RetryGrant {
            budget: Arc::clone(&self.budget),
            limits,
            enforced: self.policy.enforcement == Enforcement::Enforce,
            instance,
        }
    }

    /// After every call of the node has been decided: counts the retries of its recorded calls
    /// (in `state`, instance order) as the workers would have, then lets the live ones ask.
    pub fn seal(&mut self, state: &mut NodeState, attempts: u32) {
        let enforced = self.policy.enforcement == Enforcement::Enforce;
        let runs: Vec<&mut TaskRun> = match state {
            NodeState::Task(run) => vec![&mut **run],
            NodeState::ForEach { runs, .. } => runs.iter_mut().flatten().collect(),
            _ => Vec::new(),
        };
        for run in runs {
            // Live calls on workers have no attempts yet; recorded ones have all of them.
            if run.denied || run.attempts.is_empty() {
                continue;
            }
            let made = run.attempts.len();
            let last_failed = run
                .attempts
                .last()
                .is_some_and(|a| a.outcome.error.is_some());
            // Each retry made was granted; a failed call that stopped short was refused one.
            let asked = made - 1 + usize::from(last_failed && made < attempts as usize);
            for _ in 0..asked {
                let checks = self.budget.lock().count(&run.limits, enforced);
                self.retries_checked(&checks);
                run.checks.extend(checks);
            }
        }
        let mut counted = self.budget.lock();
        counted.sealed = true;
        drop(counted);
        self.budget.changed.notify_all();
    }

    /// Whether a task's call needs a person's approval (`require_approval` of the run's
    /// policy or of the node's own).
    pub fn needs_approval(&self, node: &Node) -> bool {
        match &node.kind {
            NodeKind::Task(t) => !t
                .capabilities()
                .intersect(self.required_approval(node))
                .is_empty(),
            _ => false,
        }
    }

    /// The capabilities whose calls wait for a person at `node`.
    fn required_approval(&self, node: &Node) -> CapSet {
        match node.policy.as_deref() {
            Some(own) => own.requiring(self.policy.require_approval),
            None => self.policy.require_approval,
        }
    }

    /// The policy of `node`'s calls when its own `policy:` narrows what they may touch
    /// (`docs/policy.md#node-policies`); `None`: the run's.
    pub fn narrowed(&mut self, node: &Node) -> Option<Arc<Narrowed>> {
        let spec = node.policy.as_deref()?;
        if spec.paths_read.is_empty()
            && spec.paths_write.is_empty()
            && spec.hosts.is_empty()
            && spec.commands.is_empty()
        {
            return None;
        }
        if let Some(n) = self.narrowed.get(node.id.as_str()) {
            return Some(Arc::clone(n));
        }
        let policy = self.policy.narrowed_by(&node.id, spec);
        let net = Net::new(policy.reaching().clone());
        let n = Arc::new(Narrowed { policy, net });
        self.narrowed.insert(node.id.to_string(), Arc::clone(&n));
        Some(n)
    }

    /// Whether a task's call is under a `max_calls` limit, and so must wait for its turn in
    /// commit order before it is decided.
    pub fn needs_turn(&self, node: &Node, tool: &dyn Tool) -> bool {
        self.under_token_budget(tool)
            || !self.limits_of(node, tool).is_empty()
            || (self.policy.has_limits(node.policy.as_deref()) && self.keys_a_call(node, tool))
    }

    /// The question a `require_approval` call asks.
    pub fn approval_prompt(&self, node: &Node, tool: &dyn Tool) -> String {
        let spec = tool.spec();
        let needed = match &node.kind {
            NodeKind::Task(t) => t.capabilities(),
            _ => CapSet::of(spec.capabilities),
        };
        let caps = needed.intersect(self.required_approval(node));
        format!(
            "node `{}` calls `{}`, which needs {caps}: allow it?",
            node.id, spec.name
        )
    }

    /// The policy's checks of one call: capabilities, paths, commands, hosts and call limits,
    /// recorded in `run`, under the node's `narrowed` policy when it has one. Call limits are
    /// counted here; for the calls they apply to, this runs in commit order (see
    /// `NodeState::AwaitingTurn`).
    pub fn decide(
        &mut self,
        node: &Node,
        tool: &'static dyn Tool,
        args: &Map<String, Value>,
        narrowed: Option<&Narrowed>,
        run: &mut TaskRun,
    ) {
        let spec = tool.spec();
        let enforced = self.policy.enforcement == Enforcement::Enforce;
        let mut checks = Vec::new();
        let mut denials = Vec::new();
        let needed = match &node.kind {
            NodeKind::Task(t) => t.capabilities(),
            _ => CapSet::of(spec.capabilities),
        };
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
        let touching = narrowed.map_or(self.policy, |n| &n.policy);
        for resource in tool.resources(args) {
            let (check, verdict) = touching.check(&resource);
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
        // Tokens are known once a call has answered: a model call is admitted while the calls
        // committed before it have spent less than the budget (docs/llm.md, "Budgets").
        if let Some(budget) = self.policy.budget_tokens.filter(|_| calls_a_model(tool))
            && !run.denied
        {
            checks.push("budget");
            if self.spent_tokens >= budget {
                run.checks.push(PolicyCheck::Deny {
                    code: effective::codes::BUDGET_EXCEEDED,
                    detail: format!(
                        "the token budget of {budget} is spent ({} tokens by the calls committed before this one)",
                        self.spent_tokens
                    ),
                    enforced,
                });
                run.denied |= enforced;
            }
        }
        let mut limits = self.limits_of(node, tool);
        // A key the task could not name as written (`tool: '{{ item.name }}'`) counts once
        // the call is rendered (`needs_turn` made it wait for its turn).
        if let (NodeKind::Task(t), Some(key)) = (&node.kind, tool.call_limit_key(args))
            && t.limit_key().is_none()
        {
            for limit in self.policy.limits(&[key.as_str()], node.policy.as_deref()) {
                if !limits.contains(&limit) {
                    limits.push(limit);
                }
            }
        }
        if !limits.is_empty() && !run.denied {
            checks.push("max_calls");
            let exceeded = self.budget.lock().count(&limits, enforced);
            run.denied |= enforced && !exceeded.is_empty();
            run.checks.extend(exceeded);
        }
        run.limits = limits;
        if run.checks.is_empty() && !checks.is_empty() {
            run.checks.push(PolicyCheck::Allow { checks });
        }
        // A refused call whose errors are answers (`allow_error: true`, as an agent's tool
        // calls are: docs/agents.md) is recorded as denied, but does not deny the run: the
        // refusal is given back to whoever asked (the model), which goes on.
        if !tool.errors_are_answers(args) {
            self.denied |= run.denied;
        }
    }
}

/// The calls counted per `max_calls` key, and the turn of the instances of the node in flight
/// that may still ask for retries.
#[derive(Default)]
pub(super) struct Budget {
    counted: Mutex<Counted>,
    /// Notified when the node is sealed and when an instance finishes.
    changed: Condvar,
}

#[derive(Default)]
struct Counted {
    calls: HashMap<String, u64>,
    /// Instances of the node in flight whose calls are still running (and may ask).
    open: BTreeSet<u32>,
    /// Whether every first attempt of the node in flight has been counted.
    sealed: bool,
}

impl Budget {
    /// A worker that panicked holding the lock must not stop the others; the counts are
    /// whole at every unlock.
    fn lock(&self) -> MutexGuard<'_, Counted> {
        self.counted.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Counted {
    /// Counts one call against each of `limits`; the checks of the limits it goes over.
    fn count(&mut self, limits: &[(String, u64)], enforced: bool) -> Vec<PolicyCheck> {
        let mut exceeded = Vec::new();
        for (key, limit) in limits {
            let count = self.calls.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count > *limit {
                exceeded.push(PolicyCheck::Limit {
                    key: key.clone(),
                    limit: *limit,
                    enforced,
                });
            }
        }
        exceeded
    }
}

/// Lets one live call (a task, or a `for_each` instance) ask for its retries; when dropped
/// (the call is over), the next instance's turn comes.
pub(super) struct RetryGrant {
    budget: Arc<Budget>,
    limits: Vec<(String, u64)>,
    enforced: bool,
    instance: u32,
}

/// The answer to a retry's request.
pub(super) enum Granted {
    /// The retry may run; the checks of any limit it goes over (not enforced: audit).
    Yes(Vec<PolicyCheck>),
    /// An enforced limit refuses it; the checks say which.
    No(Vec<PolicyCheck>),
    /// The run was interrupted while the retry waited for its turn.
    Interrupted,
}

impl RetryGrant {
    /// Waits for this call's turn (every first attempt counted, every earlier instance over),
    /// then counts the retry.
    pub fn request(&self, cancel: &Cancel) -> Granted {
        let mut counted = self.budget.lock();
        loop {
            let first_open = counted.open.first().copied();
            if counted.sealed && first_open.is_none_or(|k| k >= self.instance) {
                break;
            }
            // A wait, and the first Ctrl-C ends waits (see `Cancel::wait`).
            if cancel.requested() {
                return Granted::Interrupted;
            }
            counted = self
                .budget
                .changed
                .wait_timeout(counted, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let checks = counted.count(&self.limits, self.enforced);
        if self.enforced && !checks.is_empty() {
            Granted::No(checks)
        } else {
            Granted::Yes(checks)
        }
    }
}

impl Drop for RetryGrant {
    fn drop(&mut self) {
        self.budget.lock().open.remove(&self.instance);
        self.budget.changed.notify_all();
    }
}
