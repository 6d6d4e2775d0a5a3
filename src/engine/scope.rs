//! Sub-graphs: the iterations of a `loop:` node and the graph of a `workflow:` call.
//!
//! A loop or a call waits for its turn in commit order (`NodeState::AwaitingTurn`): when it
//! is next to commit, everything before it has committed, so its sub-graph can commit as it
//! runs, straight into the ledger, and the run's call counts (`max_calls`) are exact. Each
//! iteration (or the call) is an engine of its own over the sub-graph, with this run's writer,
//! call source, redaction and `max_calls` counts, its own worker pool, and a scope that starts
//! every instance id it writes (`LOOP#N/`, `CALL/`). Inside it, nodes run in parallel and
//! commit in the sub-graph's canonical order, as a run's do (`docs/determinism.md`).
//!
//! Because every body node's `End` is an ordinary commit, a crash in the middle of an
//! iteration leaves a prefix that `--resume` continues: the run is driven again, the committed
//! calls are answered from the recording, and the rest runs.

use super::commit::Committer;
use super::gate::Gate;
use super::graph::{Graph, Schedule};
use super::render::{NodeValues, Renderer};
use super::state::{NodeState, Nodes, ScopeRun};
use super::task::Calls;
use super::{Engine, EngineError, Stop};
use crate::ledger::event::{self as ev, Event, Status};
use crate::ledger::id::InstanceId;
use crate::ledger::writer::Writer;
use crate::policy::effective::Effective;
use crate::workflow::model::{Call, Loop, OnMax};
use crate::workflow::{NodeIdx, NodeKind, Workflow};
use minijinja::value::Value as Mj;
use serde_json::{Map, Value};
use std::sync::Arc;

/// How a sub-graph's run ended.
struct Ended {
    stop: Stop,
    /// A node failed without `continue_on_error`.
    failed: bool,
    /// An enforced denial stopped part of it.
    denied: bool,
    /// The clock of its last event.
    clock: u64,
    values: Arc<NodeValues>,
    /// A called workflow's `outputs`.
    outputs: Map<String, Value>,
}

/// What the engine of a sub-graph needs besides the graph itself.
struct Frame<'x> {
    gate: Gate<'x>,
    scope: String,
    /// Values of the enclosing level the sub-graph may read (a loop body's outer reads).
    parent: Option<Arc<NodeValues>>,
    /// A called workflow's inputs.
    inputs: Option<Value>,
    loop_var: Option<Mj>,
    /// The clock its first event comes after.
    base: u64,
}

impl<'w> Engine<'w> {
    /// An engine over sub-graph `wf`, writing with this run's writer (lent until
    /// [`Engine::join`] takes it back).
    fn child<'x>(&mut self, wf: &'x Workflow, frame: Frame<'x>) -> Result<Engine<'x>, EngineError>
    where
        'w: 'x,
    {
        let n = wf.nodes.len();
        let gate = frame.gate;
        let graph = Graph::new(wf, |node| {
            matches!(node.kind, NodeKind::Approval { .. }) || gate.needs_approval(node)
        });
        let values = Arc::new(
            NodeValues::new(
                (0..n as NodeIdx)
                    .filter(|&i| graph.is_read(i))
                    .map(|i| (i, wf.nodes[i as usize].id.as_str())),
            )
            .with_parent(frame.parent),
        );
        let renderer: Renderer =
            self.calls
                .renderer
                .nested(Arc::clone(&values), frame.inputs.as_ref(), frame.loop_var);
        let mut writer = Writer::default();
        self.commit.swap_writer(&mut writer)?;
        let redactor = Arc::clone(&self.calls.redactor);
        // Observers hear of the sub-graph's calls, but only the workflow's own nodes commit
        // as far as they know: a progress line counts nodes out of the workflow's total.
        let mut commit = Committer::new(writer, Arc::clone(&redactor), n, false, None);
        commit.base = frame.base;
        let source: &'x dyn super::Answers = self.calls.source;
        Ok(Engine {
            wf,
            sched: Schedule::new(&graph),
            graph,
            nodes: Nodes::new(n, self.nodes.rules),
            calls: Calls {
                renderer,
                values,
                seed: self.calls.seed,
                redactor,
                source,
                divergences: Vec::new(),
                failures: Vec::new(),
            },
            workers: self.workers.sibling(),
            gate,
            // The run's decisions, by instance id: a sub-graph's approvals are decided as the
            // workflow's are, from the command line, the recording or a person.
            approvals: self.approvals.nested(n),
            commit,
            cancel: self.cancel.clone(),
            observer: self.observer.clone(),
            scope: frame.scope,
            jobs: self.jobs,
            halted: None,
        })
    }

    /// Runs `child` to its end and takes back the writer, its divergences and failures.
    fn join(&mut self, mut child: Engine<'_>) -> Result<Ended, EngineError> {
        let stop = child.drive()?;
        let outputs = match stop {
            Stop::Done if !child.wf.outputs.is_empty() => child.outputs(),
            _ => Map::new(),
        };
        let mut writer = Writer::default();
        child.commit.swap_writer(&mut writer)?;
        self.commit.swap_writer(&mut writer)?;
        self.calls.divergences.append(&mut child.calls.divergences);
        self.calls.failures.append(&mut child.calls.failures);
        let denied = child.gate.denied();
        self.gate.join(&child.gate);
        for (model, usage) in std::mem::take(&mut child.commit.usage) {
            self.commit.usage.entry(model).or_default().merge(&usage);
        }
        let failed = (0..child.wf.nodes.len()).any(|i| {
            child.nodes.status(i as NodeIdx) == Status::Failed
                && !child.wf.nodes[i].continue_on_error
        });
        Ok(Ended {
            stop,
            failed,
            denied,
            clock: child.commit.next_clock() - 1,
            values: Arc::clone(&child.calls.values),
            outputs,
        })
    }

    /// Whether a sub-graph stopped before its end: interrupted, or paused at approvals
    /// nobody has decided, which halts this graph too (the node waits for its turn again, and
    /// runs again from its start when the run is resumed).
    fn stopped(&mut self, ended: &mut Ended) -> bool {
        if !matches!(ended.stop, Stop::Done) {
            // The trailer comes after what the sub-graph wrote (`docs/ledger.md#the-clock`).
            self.commit.base = self.commit.base.max(ended.clock);
        }
        match &mut ended.stop {
            Stop::Done => false,
            Stop::Interrupted => true,
            Stop::Paused(pending) => {
                self.halted = Some(std::mem::take(pending));
                true
            }
        }
    }

    /// Runs loop `i`: its iterations one after another, each body a sub-graph, then `update`
    /// and `until`, with a `LoopIteration` line per iteration (`docs/workflow.md#loops`).
    pub(super) fn run_loop(&mut self, i: NodeIdx, l: &'w Loop) -> Result<NodeState, EngineError> {
        let node = &self.wf.nodes[i as usize];
        let iid = self.iid(i, None);
        let mut clock = self.commit.start_clock(&self.graph, i) - 1;
        let failed = |clock, error: String| {
            Ok(NodeState::Scope(Box::new(ScopeRun {
                status: Status::Failed,
                output: Value::Null,
                clock,
                summary: error.clone(),
                error: Some(error),
            })))
        };
        let mut state = Map::new();
        for (name, v) in &l.state {
            match self.calls.renderer.value(v, None) {
                Ok(x) => {
                    state.insert(name.clone(), x);
                }
                Err(e) => return failed(clock, format!("`state.{name}`: {e}")),
            }
        }
        // The loop node's own policy narrows every call of its body (an agent's turns too).
        let narrowed = node
            .policy
            .as_deref()
            .map(|spec| self.gate.policy.narrowed_by(&node.id, spec));
        let policy: &Effective = narrowed.as_ref().unwrap_or(self.gate.policy);
        // One for all the iterations, so that their calls reuse connections.
        let net = self.gate.net_for(policy);
        let mut previous: Option<Arc<NodeValues>> = None;
        let mut last: Option<Arc<NodeValues>> = None;
        let mut outcome = (Status::Failed, ev::LoopEnd::Failed, None::<String>);
        let mut iterations = 0;
        for n in 1..=l.max_iterations {
            if self.cancel.requested() {
                return Ok(NodeState::AwaitingTurn);
            }
            iterations = n;
            let frame = Frame {
                gate: self.gate.nested(policy, net.clone()),
                scope: InstanceId::scope(&self.scope, &node.id, Some(n)),
                parent: Some(Arc::clone(&self.calls.values)),
                inputs: None,
                loop_var: Some(loop_var(n, &state, previous.as_ref())),
                base: clock,
            };
            let child = self.child(&l.body, frame)?;
            let mut ended = self.join(child)?;
            if self.stopped(&mut ended) {
                return Ok(NodeState::AwaitingTurn);
            }
            clock = ended.clock;
            let step = self.iteration_end(i, l, n, &mut state, &ended, previous.as_ref());
            clock += 1;
            Event::LoopIteration(ev::LoopIteration {
                node: iid.as_str().into(),
                iteration: u64::from(n),
                state: std::borrow::Cow::Owned(Value::Object(state.clone())),
                until: step.until,
                ended: step.ended,
            })
            .write(clock, &mut self.commit.outbox);
            previous = Some(Arc::clone(&ended.values));
            last = Some(ended.values);
            if let Some(end) = step.ended {
                let status = match end {
                    ev::LoopEnd::Until => Status::Succeeded,
                    ev::LoopEnd::MaxIterations if l.on_max == OnMax::Succeed => Status::Succeeded,
                    ev::LoopEnd::MaxIterations => Status::Failed,
                    ev::LoopEnd::Failed if ended.denied => Status::Denied,
                    ev::LoopEnd::Failed => Status::Failed,
                };
                let error = match end {
                    ev::LoopEnd::MaxIterations if status == Status::Failed => Some(format!(
                        "`until` was still false after max_iterations ({})",
                        l.max_iterations
                    )),
                    _ => step.error,
                };
                outcome = (status, end, error);
                break;
            }
        }
        let (mut status, end, mut error) = outcome;
        let output = match (&l.output, last) {
            (Some(template), Some(values)) => {
                let r = self.calls.renderer.nested(
                    values,
                    None,
                    Some(loop_var(iterations, &state, previous.as_ref())),
                );
                match r.value(template, None) {
                    Ok(v) => v,
                    Err(e) => {
                        self.template_failed(
                            i,
                            None,
                            "`output`".into(),
                            &as_text(template),
                            &e,
                            None,
                        );
                        status = Status::Failed;
                        error = Some(format!("`output`: {e}"));
                        Value::Null
                    }
                }
            }
            _ => Value::Object(state),
        };
        let summary = error
            .clone()
            .unwrap_or_else(|| format!("{iterations} iteration(s), ended by {}", end.name()));
        Ok(NodeState::Scope(Box::new(ScopeRun {
            status,
            output,
            clock,
            error,
            summary,
        })))
    }

    /// After iteration `n`: `update` (into `state`), then `until`; why the loop ends here, if
    /// it does.
    fn iteration_end(
        &mut self,
        i: NodeIdx,
        l: &Loop,
        n: u32,
        state: &mut Map<String, Value>,
        ended: &Ended,
        previous: Option<&Arc<NodeValues>>,
    ) -> Step {
        let stop = |error: String| Step {
            until: None,
            ended: Some(ev::LoopEnd::Failed),
            error: Some(error),
        };
        if ended.failed || ended.denied {
            return stop(format!("iteration {n}: a node of the body did not succeed"));
        }
        let r = self.calls.renderer.nested(
            Arc::clone(&ended.values),
            None,
            Some(loop_var(n, state, previous)),
        );
        let mut next = state.clone();
        for (name, v) in &l.update {
            match r.value(v, None) {
                Ok(x) => {
                    next.insert(name.clone(), x);
                }
                Err(e) => {
                    let field = format!("`update.{name}`");
                    self.template_failed(i, None, field, &as_text(v), &e, None);
                    return stop(format!("iteration {n}: `update.{name}`: {e}"));
                }
            }
        }
        *state = next;
        let mut until = None;
        if let Some(u) = &l.until {
            let r = self.calls.renderer.nested(
                Arc::clone(&ended.values),
                None,
                Some(loop_var(n, state, previous)),
            );
            match r.condition(u, None) {
                Ok(v) => until = Some(v),
                Err(e) => {
                    self.template_failed(i, None, "`until`".into(), u, &e, None);
                    return stop(format!("iteration {n}: `until`: {e}"));
                }
            }
        }
        let ended = if until == Some(true) {
            Some(ev::LoopEnd::Until)
        } else if n == l.max_iterations {
            Some(ev::LoopEnd::MaxIterations)
        } else {
            None
        };
        Step {
            until,
            ended,
            error: None,
        }
    }

    /// Runs call `i`: the callee's graph as a sub-graph, under the caller's policy narrowed by
    /// the callee's (`docs/workflow.md#calls`).
    pub(super) fn run_call(&mut self, i: NodeIdx, c: &'w Call) -> Result<NodeState, EngineError> {
        let node = &self.wf.nodes[i as usize];
        let iid = self.iid(i, None);
        let clock = self.commit.start_clock(&self.graph, i);
        let mut inputs = Map::new();
        for input in &c.callee.inputs {
            if let Some(d) = &input.default {
                inputs.insert(input.name.clone(), d.clone());
            }
        }
        for (name, v) in &c.inputs {
            match self.calls.renderer.value(v, None) {
                Ok(x) => {
                    inputs.insert(name.clone(), x);
                }
                Err(e) => {
                    let error = format!("`inputs.{name}`: {e}");
                    return Ok(NodeState::Scope(Box::new(ScopeRun {
                        status: Status::Failed,
                        output: Value::Null,
                        clock: clock - 1,
                        summary: error.clone(),
                        error: Some(error),
                    })));
                }
            }
        }
        Event::WorkflowCall(ev::WorkflowCall {
            node: iid.as_str().into(),
            file: c.file.value.as_str().into(),
            sha256: c.sha256.as_str().into(),
            source: (*c.callee.source).into(),
        })
        .write(clock, &mut self.commit.outbox);
        let policy = c.policy(self.gate.policy, &node.id, node.policy.as_deref());
        let frame = Frame {
            gate: self.gate.nested(&policy, self.gate.net_for(&policy)),
            scope: InstanceId::scope(&self.scope, &node.id, None),
            parent: None,
            inputs: Some(Value::Object(inputs)),
            loop_var: None,
            base: clock,
        };
        let child = self.child(&c.callee, frame)?;
        let mut ended = self.join(child)?;
        if self.stopped(&mut ended) {
            return Ok(NodeState::AwaitingTurn);
        }
        let (status, error) = if ended.denied {
            (
                Status::Denied,
                Some("a call of the called workflow was denied".to_string()),
            )
        } else if ended.failed {
            (
                Status::Failed,
                Some("the called workflow failed".to_string()),
            )
        } else {
            (Status::Succeeded, None)
        };
        Ok(NodeState::Scope(Box::new(ScopeRun {
            status,
            summary: error.clone().unwrap_or_else(|| c.file.value.clone()),
            output: Value::Object(ended.outputs),
            clock: ended.clock,
            error,
        })))
    }
}

/// What the end of one iteration decided.
struct Step {
    until: Option<bool>,
    ended: Option<ev::LoopEnd>,
    error: Option<String>,
}

/// `loop` as expressions see it: `iteration`, `state`, and `previous` (the previous
/// iteration's node values; empty in the first).
fn loop_var(n: u32, state: &Map<String, Value>, previous: Option<&Arc<NodeValues>>) -> Mj {
    let mut m = std::collections::BTreeMap::new();
    m.insert("iteration", Mj::from(n));
    m.insert(
        "state",
        Mj::from(minijinja::value::Serde(Value::Object(state.clone()))),
    );
    m.insert(
        "previous",
        match previous {
            Some(p) => Mj::from_dyn_object(Arc::clone(p)),
            None => Mj::from(std::collections::BTreeMap::<String, Mj>::new()),
        },
    );
    Mj::from(m)
}

/// A template of a loop's `update` or `output` as a located text, for a run-time diagnostic.
fn as_text(node: &crate::syntax::yaml::Node) -> crate::syntax::read::Sp<String> {
    crate::syntax::read::Sp::new(node.as_str().unwrap_or_default().to_string(), node.span)
}
