//! The node kinds: the one place that matches on a node's kind, for the two things a kind
//! decides: what happens when everything the node waits for has a result ([`Engine::begin`]),
//! and which events its result becomes when it commits ([`Engine::kind_events`]).
//!
//! Adding a kind means a variant in `workflow::model::NodeKind`, its reading in
//! `workflow::validate`, and an arm in each of the two functions here; the compiler points at
//! every other place that must know.

use super::Engine;
use super::commit::{approval_resolved, short, task_events};
use super::state::{NodeState, TaskRun};
use crate::ledger::event::{self as ev, Event, Status, Text};
use crate::workflow::{NodeIdx, NodeKind};

impl<'w> Engine<'w> {
    /// Every node `i` waits for has a result: decide whether it runs, and run or dispatch it.
    pub(super) fn begin(&mut self, i: NodeIdx) {
        let iu = i as usize;
        let node = &self.wf.nodes[iu];
        if let Some(reason) = self.skip_reason(i) {
            self.nodes.states[iu] = NodeState::Skipped(reason);
            return;
        }
        if node.for_each.is_none()
            && let Some(cond) = &node.condition
        {
            match self.calls.renderer.condition(cond, None) {
                Ok(true) => {}
                Ok(false) => {
                    self.nodes.states[iu] = NodeState::Skipped("`if` is false".into());
                    return;
                }
                Err(e) => {
                    self.nodes.states[iu] = NodeState::Failed(format!("`if`: {e}"));
                    self.template_failed(i, None, "`if`".into(), cond, &e, None);
                    return;
                }
            }
        }
        self.nodes.states[iu] = match &node.kind {
            NodeKind::Branch { condition, .. } => {
                match self.calls.renderer.condition(condition, None) {
                    Ok(value) => {
                        self.nodes.branch_values[iu] = Some(value);
                        NodeState::Branch { value }
                    }
                    Err(e) => {
                        self.template_failed(i, None, "branch `if`".into(), condition, &e, None);
                        NodeState::Failed(format!("branch condition: {e}"))
                    }
                }
            }
            NodeKind::Fork(_) => NodeState::Fork,
            NodeKind::Join(parents) => {
                let succeeded = parents
                    .iter()
                    .copied()
                    .filter(|&p| self.nodes.status(p) == Status::Succeeded)
                    .collect();
                NodeState::Join { succeeded }
            }
            NodeKind::Approval { prompt } => match self.calls.renderer.template(prompt, None) {
                Ok(prompt) => NodeState::AwaitingApproval { prompt },
                Err(e) => NodeState::Failed(format!("prompt: {e}")),
            },
            NodeKind::Task(task)
                if !self.approvals.call_approved(i) && self.gate.needs_approval(node) =>
            {
                NodeState::AwaitingApproval {
                    prompt: self.gate.approval_prompt(node, task.tool),
                }
            }
            NodeKind::Task(task) if self.gate.needs_turn(node, task.tool) => {
                NodeState::AwaitingTurn
            }
            NodeKind::Task(_) => self.start_node(i),
            // A sub-graph runs when it is next to commit: its nodes' events are written as
            // they commit, between what comes before the node and what comes after.
            NodeKind::Loop(_) | NodeKind::Call(_) => NodeState::AwaitingTurn,
        };
    }

    /// `i` is next in commit order and was waiting for its turn: start it.
    pub(super) fn start_turn(&mut self, i: NodeIdx) -> Result<NodeState, super::EngineError> {
        let node = &self.wf.nodes[i as usize];
        Ok(match &node.kind {
            NodeKind::Loop(l) => self.run_loop(i, l)?,
            NodeKind::Call(c) => self.run_call(i, c)?,
            _ => self.start_node(i),
        })
    }

    /// Why `i` does not run, when it does not: a branch chose the other arm, something it
    /// needs did not succeed, or (for a join) none of the joined nodes succeeded.
    fn skip_reason(&self, i: NodeIdx) -> Option<String> {
        let node = &self.wf.nodes[i as usize];
        let joined: &[NodeIdx] = match &node.kind {
            NodeKind::Join(parents) => parents,
            _ => &[],
        };
        for &d in self.graph.deps(i) {
            let du = d as usize;
            // Dense arrays first: most dependencies are neither branches nor failures.
            if let Some(value) = self.nodes.branch_values[du]
                && let NodeKind::Branch {
                    then, otherwise, ..
                } = &self.wf.nodes[du].kind
            {
                let (arm, other) = if value {
                    (then, otherwise)
                } else {
                    (otherwise, then)
                };
                if other.contains(&i) && !arm.contains(&i) {
                    return Some(format!(
                        "branch `{}` chose `{}`",
                        self.wf.nodes[du].id,
                        ev::Arm::of(value).name()
                    ));
                }
            }
            if joined.contains(&d) {
                continue;
            }
            if !self.sched.ok(d) {
                return Some(format!(
                    "`{}` {}",
                    self.wf.nodes[du].id,
                    self.nodes.status(d).name()
                ));
            }
        }
        if !joined.is_empty()
            && !joined
                .iter()
                .any(|&p| self.nodes.status(p) == Status::Succeeded)
        {
            return Some("no joined node succeeded".into());
        }
        None
    }

    /// Writes the events of `i`'s result (`state`, with status `status`) into `events`,
    /// from `clock` on, and returns the clock of its last event.
    pub(super) fn kind_events(
        &mut self,
        i: NodeIdx,
        state: NodeState,
        status: Status,
        mut clock: u64,
        events: &mut super::commit::Outbox,
    ) -> u64 {
        let node = &self.wf.nodes[i as usize];
        let iid = self.iid(i, None);
        let id = iid.as_str();
        match state {
            NodeState::Skipped(reason) => {
                Event::Skipped {
                    node: id.into(),
                    reason: reason.as_str().into(),
                }
                .write(clock, events);
                self.commit.summarize(i, || reason);
            }
            NodeState::Failed(message) => {
                Event::Error {
                    node: id.into(),
                    message: message.as_str().into(),
                }
                .write(clock, events);
                clock += 1;
                Event::End(ev::End::plain(id, Status::Failed)).write(clock, events);
                self.commit.summarize(i, || message);
            }
            NodeState::Task(run) => {
                let NodeKind::Task(task) = &node.kind else {
                    unreachable!("task result of a task node")
                };
                self.commit.attempts[i as usize] = run.attempts.len() as u32;
                self.commit.summarize(i, || short(&run));
                if let Some(d) = self.approvals.approved_call(i) {
                    clock = approval_resolved(events, clock, id, d);
                }
                task_events(events, &mut clock, id, task.tool.spec(), &run);
                let spent = self.commit.count_usage(task.tool.spec(), &run);
                self.gate.spend(spent);
                self.nodes.recycle(run);
            }
            NodeState::ForEach { runs, .. } => {
                clock = self.for_each_events(i, &runs, status, clock, events);
            }
            NodeState::Branch { value } => {
                let NodeKind::Branch {
                    condition,
                    then,
                    otherwise,
                } = &node.kind
                else {
                    unreachable!("branch result of a branch node")
                };
                let (chosen, skipped) = if value {
                    (then, otherwise)
                } else {
                    (otherwise, then)
                };
                Event::BranchDecision(ev::BranchDecision {
                    node: id.into(),
                    condition: condition.as_str().into(),
                    value,
                    arm: ev::Arm::of(value),
                    chosen: self.ids(chosen),
                    skipped: self.ids(skipped),
                })
                .write(clock, events);
                clock += 1;
                Event::End(ev::End::plain(id, Status::Succeeded)).write(clock, events);
                self.commit
                    .summarize(i, || ev::Arm::of(value).name().to_string());
            }
            NodeState::Approval(d) => {
                clock = approval_resolved(events, clock, id, &d);
                let error = (!d.approve).then(|| match &d.reason {
                    Some(r) => format!("rejected: {r}"),
                    None => "rejected".to_string(),
                });
                Event::End(ev::End {
                    error: error.as_deref().map(Text::from),
                    ..ev::End::plain(id, status)
                })
                .write(clock, events);
                self.commit
                    .summarize(i, || error.unwrap_or_else(|| "approved".into()));
            }
            NodeState::Fork => {
                let NodeKind::Fork(children) = &node.kind else {
                    unreachable!("fork result of a fork node")
                };
                Event::ForkSpawn {
                    node: id.into(),
                    children: self.ids(children),
                }
                .write(clock, events);
                clock += 1;
                Event::End(ev::End::plain(id, Status::Succeeded)).write(clock, events);
            }
            NodeState::Join { succeeded } => {
                let NodeKind::Join(parents) = &node.kind else {
                    unreachable!("join result of a join node")
                };
                Event::JoinComplete {
                    node: id.into(),
                    joined: self.ids(parents),
                    succeeded: self.ids(&succeeded),
                }
                .write(clock, events);
                clock += 1;
                Event::End(ev::End::plain(id, Status::Succeeded)).write(clock, events);
            }
            NodeState::Scope(run) => {
                clock = run.clock + 1;
                Event::End(ev::End {
                    error: run.error.as_deref().map(Text::from),
                    ..ev::End::plain(id, status)
                })
                .write(clock, events);
                self.commit.summarize(i, || run.summary);
            }
            NodeState::Pending
            | NodeState::Running(_)
            | NodeState::AwaitingApproval { .. }
            | NodeState::AwaitingTurn
            | NodeState::Done(_) => unreachable!("only resolved nodes commit"),
        }
        clock
    }

    /// A fan-out node's events: its `Start`, every instance's events, its `End`.
    fn for_each_events(
        &mut self,
        i: NodeIdx,
        runs: &[Option<TaskRun>],
        status: Status,
        mut clock: u64,
        events: &mut super::commit::Outbox,
    ) -> u64 {
        let node = &self.wf.nodes[i as usize];
        let iid = self.iid(i, None);
        let id = iid.as_str();
        let NodeKind::Task(task) = &node.kind else {
            unreachable!("for_each on a task node")
        };
        if let Some(d) = self.approvals.approved_call(i) {
            clock = approval_resolved(events, clock, id, d);
        }
        Event::Start(ev::Start {
            node: id.into(),
            tool: task.tool.spec().name.into(),
            input_sha256: None,
            input: None,
            for_each: Some(runs.len() as u64),
        })
        .write(clock, events);
        for (k, run) in runs.iter().enumerate() {
            let run = run.as_ref().expect("every instance has a result at commit");
            clock += 1;
            let item = self.iid(i, Some(k as u32));
            task_events(events, &mut clock, item.as_str(), task.tool.spec(), run);
            let spent = self.commit.count_usage(task.tool.spec(), run);
            self.gate.spend(spent);
            self.commit.attempts[i as usize] += run.attempts.len() as u32;
        }
        clock += 1;
        Event::End(ev::End {
            instances: Some(runs.len() as u64),
            ..ev::End::plain(id, status)
        })
        .write(clock, events);
        self.commit
            .summarize(i, || format!("{} instances", runs.len()));
        clock
    }

    /// The ids of `nodes`, for an event.
    fn ids(&self, nodes: &[NodeIdx]) -> Vec<Text<'w>> {
        nodes
            .iter()
            .map(|&c| Text::from(self.wf.nodes[c as usize].id.as_str()))
            .collect()
    }
}
