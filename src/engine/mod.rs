//! The engine: runs a validated workflow and commits its events to the ledger in the
//! canonical order (see `docs/determinism.md`), whatever the number of workers.
//!
//! Two orders are kept apart. *Execution* may start a node as soon as every node it waits for
//! has a result; long-running tools (shell, sleep, files) go to a pool of `--jobs` worker
//! threads, pure computations (echo, template, random, assert, structure) run at once on the
//! scheduler thread. *Commit* follows a simulated single-worker run: a node becomes
//! committable when everything it waits for has committed, and the committable node taken next
//! is the one with the highest priority, then the earliest declared (approvals last). Because
//! a node's result depends only on the results it reads, its own RNG stream and its inputs,
//! never on timing, the commit order and the ledger bytes are the same at any `--jobs`.
//!
//! This file is the loop that drives the parts, each of which has one owner:
//!
//! - `graph`: the dense graph tables and the ready / committable sets (`graph::Schedule`);
//! - `state`: each node's state and the rules that read it;
//! - `kinds`: the one place that matches on a node's kind (begin, and events at commit);
//! - `task`: task calls: rendering, answering from a recording, inline or on a worker;
//! - `pool`: the worker threads and the retry loop of one call;
//! - `gate`: the policy gate (capabilities, resources, `max_calls`, approval gating);
//! - `approvals`: requesting and deciding approvals, or pausing;
//! - `commit`: clocks, events, counts, the summary, and batches to the writer;
//! - `observe`: what an observer (a trace, a progress display) is told while the run runs;
//!   nothing flows back from it into the run.
//!
//! Everything is iterative (sets of ready nodes, counters): a 1,000,000-node chain runs without
//! recursion.

mod answer;
mod approvals;
mod commit;
mod gate;
mod graph;
mod kinds;
pub mod observe;
mod order;
mod pool;
pub mod render;
mod rng;
mod rules;
mod scope;
mod state;
mod task;

pub use crate::ledger::event::Status;
pub use answer::{Answer, Answers, Divergence, Live};
pub use approvals::{ApprovalDecision, ApproverCheck, Ask, AskFn};
pub use commit::run_start;
pub use observe::{AttemptInfo, Lane, Observer, Observers};
pub use rules::Rules;

use crate::cancel::Cancel;
use crate::ledger::event::{self as ev, Counts, Event};
use crate::ledger::writer::{ChainState, Sink, Writer};
use crate::policy::effective::Effective;
use crate::policy::redact::Redactor;
use crate::workflow::{NodeIdx, NodeKind, Workflow};
use approvals::{Approvals, Turn};
use commit::Committer;
use gate::Gate;
use graph::{Graph, Schedule};
pub use pool::DEFAULT_NET_JOBS;
use pool::{NetLimits, Workers};
use render::{NodeValues, Renderer};
use serde_json::{Map, Value};
use state::{NodeState, Nodes};
use std::fs::File;
use std::sync::Arc;
use task::Calls;

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads for waiting work; 0 means the default.
    pub jobs: usize,
    /// Network calls running at once (`--net-jobs`); 0 means the default,
    /// [`DEFAULT_NET_JOBS`], or the workflow's `network.max_concurrent` if lower.
    pub net_jobs: usize,
    /// Overrides the workflow's seed.
    pub seed: Option<u64>,
    /// `--input key=value` pairs.
    pub inputs: Vec<(String, String)>,
    /// Collect a per-node summary for [`RunReport::nodes`] (off for `--quiet` and benchmarks).
    pub summary: bool,
    /// Decisions for approval nodes, by node id (`--approve` / `--reject`).
    pub approvals: std::collections::BTreeMap<String, ApprovalDecision>,
    /// Asks a person for a decision the options do not hold (an interactive terminal).
    pub ask: Option<Ask>,
    /// Interrupts: the first stops starting nodes, the second kills running commands.
    pub cancel: Cancel,
    /// The revision of run semantics to follow (a replay or resume follows the recorded
    /// run's).
    pub rules: Rules,
    /// Told when calls start and finish, nodes commit and approvals wait (`--trace`, the
    /// progress display). Never changes the ledger; `None` costs nothing.
    pub observer: Option<Arc<dyn Observer>>,
    /// Where `shell` calls run when not on this machine (`--executor slurm`); `None`: here.
    /// Never changes the ledger (`docs/executors.md`).
    pub shell: Option<Arc<dyn crate::exec::ShellBackend>>,
}

/// The default `--jobs`: the number of CPUs, at least 4 (waiting work such as sleeps and
/// processes should not queue behind a small machine's cores).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(4, usize::from)
        .max(4)
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EngineError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error("cannot write the ledger: {0}")]
    #[diagnostic(code(kairos::ledger_io))]
    Ledger(#[from] std::io::Error),
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
    /// An enforced policy denied a call.
    Denied,
    /// Stopped at an approval nobody has decided yet.
    Paused,
    /// Stopped by Ctrl-C (or SIGTERM).
    Interrupted,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Denied => "denied",
            RunStatus::Paused => "paused",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// One row of the run summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub attempts: u32,
    pub output: String,
}

/// What a finished (or paused) run reports.
#[derive(Debug)]
pub struct RunReport {
    pub status: RunStatus,
    pub nodes: Vec<NodeSummary>,
    pub counts: Counts,
    pub outputs: Map<String, Value>,
    pub pending_approvals: Vec<String>,
    pub ledger_lines: u64,
    pub chain_head: String,
    /// Replay: the calls the recording could not answer, in commit order of their nodes.
    pub divergences: Vec<Divergence>,
    /// Templates and expressions that failed at run time, in the order they were evaluated.
    pub template_failures: Vec<render::TemplateFailure>,
    /// Tokens spent by the run's `llm` calls, per model (as `RunEnd.usage`).
    pub usage: std::collections::BTreeMap<String, ev::ModelUsage>,
}

/// Runs `workflow`, writing the ledger to `file`.
pub fn run(
    workflow: &Workflow,
    options: &RunOptions,
    policy: &Effective,
    file: File,
) -> Result<RunReport, EngineError> {
    let inputs = crate::plan::resolve_inputs(workflow, &options.inputs)?;
    run_to(workflow, options, policy, &inputs, file, &Live)
}

/// Runs `workflow` with resolved `inputs`, writing the ledger to `sink`; `source` says where
/// call results come from (live, replayed from a recording, or resumed with a live fallback).
pub fn run_to(
    workflow: &Workflow,
    options: &RunOptions,
    policy: &Effective,
    inputs: &Map<String, Value>,
    sink: impl Sink,
    source: &dyn Answers,
) -> Result<RunReport, EngineError> {
    let seed = options.seed.unwrap_or(workflow.seed);
    // Admission checks this too; a run never goes on without the redaction its policy asks for.
    let (patterns, mut secrets) = policy.redaction();
    // What an MCP server is given from kairos's environment is as secret as `secrets`.
    secrets.extend(crate::workflow::servers::secret_env(&workflow.mcp_servers));
    let redactor =
        Arc::new(Redactor::new(&patterns, &secrets).map_err(crate::plan::PlanError::from)?);
    let writer = Writer::start(sink, ChainState::default());
    // `RunStart` (the whole source, escaped and hashed: milliseconds for a large workflow) is
    // built while the scheduler's tables are.
    let (start, mut engine) = std::thread::scope(|scope| {
        let start = scope.spawn(|| run_start(workflow, inputs, seed, policy, options.rules));
        let engine = Engine::new(workflow, options, policy, inputs, source, redactor, writer);
        (
            start.join().expect("building RunStart does not panic"),
            engine,
        )
    });
    let start = start.map_err(crate::plan::PlanError::from)?;
    engine.commit.outbox.push_run_start(&start);
    engine.commit.flush()?;
    engine.run()
}

/// The network lane's limits: `--net-jobs` (or the default) lowered to the workflow's
/// `network.max_concurrent`, and its per-host limits.
fn net_limits(wf: &Workflow, net_jobs: usize) -> NetLimits {
    let flag = match net_jobs {
        0 => DEFAULT_NET_JOBS,
        n => n,
    };
    NetLimits {
        max: wf.network.max_concurrent.map_or(flag, |m| m.min(flag)),
        per_host: wf.network.per_host.clone(),
    }
}

/// How [`Engine::drive`] stopped.
enum Stop {
    Done,
    Paused(Vec<String>),
    Interrupted,
}

/// One run: the parts below, driven by [`Engine::run`].
struct Engine<'w> {
    wf: &'w Workflow,
    graph: Graph,
    sched: Schedule,
    nodes: Nodes,
    calls: Calls<'w>,
    workers: Workers,
    gate: Gate<'w>,
    approvals: Approvals,
    commit: Committer,
    cancel: Cancel,
    /// `RunOptions::observer`, for the calls that run inline and for approvals.
    observer: Option<Arc<dyn Observer>>,
    /// Where this graph's nodes are: empty for the workflow's, `LOOP#N/` or `CALL/` (nested:
    /// `OUTER#2/INNER#1/`) for a sub-graph's (`engine/scope.rs`); the start of every
    /// instance id written.
    scope: String,
    /// Worker threads, for the sub-graphs' pools.
    jobs: usize,
    /// A sub-graph (a loop iteration, a call) paused at these approvals: no node starts any
    /// more, and once the running ones are back the run pauses (`docs/workflow.md#loops`).
    halted: Option<Vec<String>>,
}

impl<'w> Engine<'w> {
    fn new(
        wf: &'w Workflow,
        options: &RunOptions,
        policy: &'w Effective,
        inputs: &Map<String, Value>,
        source: &'w dyn Answers,
        redactor: Arc<Redactor>,
        writer: Writer,
    ) -> Self {
        let n = wf.nodes.len();
        let seed = options.seed.unwrap_or(wf.seed);
        let gate = Gate::new(policy, options.rules);
        let graph = Graph::new(wf, |node| {
            matches!(node.kind, NodeKind::Approval { .. }) || gate.needs_approval(node)
        });
        let values = Arc::new(NodeValues::new(
            (0..n as NodeIdx)
                .filter(|&i| graph.is_read(i))
                .map(|i| (i, wf.nodes[i as usize].id.as_str())),
        ));
        let jobs = match options.jobs {
            0 => default_jobs(),
            jobs => jobs,
        };
        Self {
            wf,
            sched: Schedule::new(&graph),
            graph,
            nodes: Nodes::new(n, options.rules),
            calls: Calls {
                renderer: Renderer::new(
                    &Value::Object(inputs.clone()),
                    &wf.name,
                    seed,
                    Arc::clone(&values),
                    options.rules.text_style(),
                ),
                values,
                seed,
                redactor: Arc::clone(&redactor),
                source,
                divergences: Vec::new(),
                failures: Vec::new(),
            },
            workers: Workers::new(
                jobs,
                net_limits(wf, options.net_jobs),
                options.cancel.clone(),
                options.observer.clone(),
                options.shell.clone(),
            ),
            gate,
            approvals: Approvals::new(n, options.approvals.clone(), options.ask.clone()),
            commit: Committer::new(
                writer,
                redactor,
                n,
                options.summary,
                options.observer.clone(),
            ),
            cancel: options.cancel.clone(),
            observer: options.observer.clone(),
            scope: String::new(),
            jobs,
            halted: None,
        }
    }

    /// The instance id of node `i` (item `item` of it) in this graph's scope.
    fn iid(&self, i: NodeIdx, item: Option<u32>) -> crate::ledger::id::InstanceId<'w> {
        let wf: &'w Workflow = self.wf;
        crate::ledger::id::InstanceId::scoped(&self.scope, wf.nodes[i as usize].id.as_str(), item)
    }

    /// The scheduling loop: run and commit what can be, then wait for workers, a decision or
    /// an interrupt; until every node has committed or the run pauses.
    /// Drives the run to its end, then stops the MCP servers it started, however it ended
    /// (finished, paused, interrupted, or an error): no server outlives its run. Sub-graphs
    /// (loop iterations, calls) share the run's servers and are driven, not run.
    fn run(mut self) -> Result<RunReport, EngineError> {
        let servers = self.gate.mcp.clone();
        let report = self.drive().and_then(|stop| {
            let (pending_approvals, interrupted) = match stop {
                Stop::Done => (Vec::new(), false),
                Stop::Paused(pending) => (pending, false),
                Stop::Interrupted => (Vec::new(), true),
            };
            self.finish(pending_approvals, interrupted)
        });
        servers.stop();
        report
    }

    /// Runs and commits the graph until every node has committed, an approval nobody has
    /// decided is next, or an interrupt stops it (the `RunPaused` trailer is then written).
    fn drive(&mut self) -> Result<Stop, EngineError> {
        let mut pending_approvals = Vec::new();
        let mut interrupted = false;
        loop {
            self.advance()?;
            if self.sched.all_committed() {
                break;
            }
            if self.halted.is_some() {
                if self.workers.outstanding() > 0 {
                    self.wait_for_workers()?;
                    continue;
                }
                if self.cancel.requested() {
                    // Interrupted while the sub-graph waited: the interrupt is what stopped
                    // the run (its trailer and exit code); the approvals are asked again.
                    self.halted = None;
                    continue;
                }
                let pending = self.halted.take().unwrap_or_default();
                if self.scope.is_empty() {
                    self.pause_for(&pending)?;
                }
                pending_approvals = pending;
                break;
            }
            if self.cancel.requested() && self.workers.outstanding() == 0 {
                if !self.scope.is_empty() {
                    // A sub-graph stops where it is; the run writes the trailer.
                    interrupted = true;
                    break;
                }
                // Everything that finished is committed; write the trailer a resume replaces.
                self.commit.finish_with(&Event::RunPaused(ev::RunPaused {
                    reason: ev::PauseReason::Interrupted,
                    pending: Vec::new(),
                    resume: "kairos run WORKFLOW --resume LEDGER".into(),
                }))?;
                interrupted = true;
                break;
            }
            if let Some(top) = self.sched.next_commit(&self.graph)
                && let NodeState::AwaitingApproval { .. } = &self.nodes.states[top as usize]
            {
                match self.approval_turn(top)? {
                    Turn::Decided => continue,
                    Turn::Pause(pending) => {
                        pending_approvals = pending;
                        break;
                    }
                }
            }
            if self.workers.outstanding() == 0 {
                return Err(EngineError::Ledger(std::io::Error::other(
                    "internal error: the scheduler has nothing to commit and nothing running",
                )));
            }
            self.wait_for_workers()?;
        }
        self.workers.stop();
        self.commit.flush()?;
        Ok(if interrupted {
            Stop::Interrupted
        } else if pending_approvals.is_empty() {
            Stop::Done
        } else {
            Stop::Paused(pending_approvals)
        })
    }

    /// Waits for results from the workers and takes them in, sending committed events to the
    /// writer when they are due.
    fn wait_for_workers(&mut self) -> Result<(), EngineError> {
        let batch = loop {
            let Some(wait) = self.commit.wait_budget() else {
                self.commit.flush()?;
                continue;
            };
            // Wake up now and then to notice an interrupt, and to take results that the
            // workers did not wake the scheduler for: they wait at most FLUSH_INTERVAL.
            let batch = self.workers.take(wait);
            // After a second interrupt, nothing may be left to wait for (network calls are
            // not waited for then).
            if !batch.is_empty() || self.workers.outstanding() == 0 {
                break batch;
            }
        };
        for (node, instance, attempts) in batch {
            self.job_done(node, instance, attempts);
        }
        Ok(())
    }

    /// Writes `RunEnd` (unless the run paused) and builds the report.
    fn finish(
        mut self,
        pending_approvals: Vec<String>,
        interrupted: bool,
    ) -> Result<RunReport, EngineError> {
        let paused = !pending_approvals.is_empty() || interrupted;
        let outputs = if paused { Map::new() } else { self.outputs() };
        let failed = |i: usize| {
            self.nodes.status(i as NodeIdx) == Status::Failed && !self.wf.nodes[i].continue_on_error
        };
        let status = if interrupted {
            RunStatus::Interrupted
        } else if paused {
            RunStatus::Paused
        } else if self.gate.denied() {
            RunStatus::Denied
        } else if (0..self.wf.nodes.len()).any(failed) {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let mut commit = self.commit;
        if !paused {
            let outcome = match status {
                RunStatus::Failed => ev::RunOutcome::Failed,
                RunStatus::Denied => ev::RunOutcome::Denied,
                _ => ev::RunOutcome::Succeeded,
            };
            let outputs = Value::Object(outputs.clone());
            commit.finish_with(&Event::RunEnd(ev::RunEnd {
                status: outcome,
                counts: commit.counts,
                outputs: std::borrow::Cow::Borrowed(&outputs),
                usage: (!commit.usage.is_empty()).then(|| commit.usage.clone()),
            }))?;
        }
        let nodes = self
            .wf
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| commit.summary && matches!(self.nodes.states[*i], NodeState::Done(_)))
            .map(|(i, node)| NodeSummary {
                node: node.id.to_string(),
                kind: node.label(),
                status: self.nodes.status(i as NodeIdx).name(),
                attempts: commit.attempts[i],
                output: std::mem::take(&mut commit.short[i]),
            })
            .collect();
        // What the command prints (the summary's outputs, replay's divergences, `--format
        // json`) is masked as the ledger is.
        let mut outputs = outputs;
        let mut divergences = self.calls.divergences;
        if let Some(r) = commit.redactor() {
            for value in outputs.values_mut() {
                r.redact_json(value);
            }
            for d in &mut divergences {
                d.reason = r.redact(&d.reason).0.into_owned();
                r.redact_json(&mut d.asked);
                if let Some(recorded) = &mut d.recorded {
                    r.redact_json(recorded);
                }
            }
        }
        let counts = commit.counts;
        let usage = std::mem::take(&mut commit.usage);
        let written = commit.close()?;
        Ok(RunReport {
            status,
            nodes,
            counts,
            outputs,
            pending_approvals,
            ledger_lines: written.lines,
            chain_head: written.head,
            divergences,
            template_failures: self.calls.failures,
            usage,
        })
    }

    /// Runs what is ready and commits what can be committed, until neither can go on without
    /// a worker's result or a decision.
    ///
    /// Commits are interleaved with starting nodes, so that a result is written and dropped
    /// soon after it is known: memory stays flat however many inline nodes run in a row.
    fn advance(&mut self) -> Result<(), EngineError> {
        loop {
            self.commit_ready()?;
            let Some(i) = self.sched.pop_ready(&self.graph) else {
                return Ok(());
            };
            let pending = matches!(self.nodes.states[i as usize], NodeState::Pending);
            if pending && (self.cancel.requested() || self.halted.is_some()) {
                // After Ctrl-C, or once a sub-graph waits for a person, no node starts.
                continue;
            }
            if pending {
                self.begin(i);
            }
            if self.nodes.states[i as usize].has_result() {
                self.resolved(i);
            }
        }
    }

    /// Commits nodes in canonical order while the next one has its result.
    fn commit_ready(&mut self) -> Result<(), EngineError> {
        while let Some(top) = self.sched.next_commit(&self.graph) {
            match &self.nodes.states[top as usize] {
                // After Ctrl-C no node starts, not even one that waited for its turn.
                NodeState::AwaitingTurn if self.cancel.requested() || self.halted.is_some() => {
                    break;
                }
                // A loop or a call runs its sub-graph on this thread: what is ready begins
                // first, so that it runs on the workers meanwhile.
                NodeState::AwaitingTurn
                    if self.sched.has_ready()
                        && matches!(
                            self.wf.nodes[top as usize].kind,
                            NodeKind::Loop(_) | NodeKind::Call(_)
                        ) =>
                {
                    break;
                }
                NodeState::AwaitingTurn => {
                    // Its turn in commit order: now its call limits can be counted (and a
                    // loop or a call runs its sub-graph, committing as it goes).
                    self.nodes.states[top as usize] = self.start_turn(top)?;
                    if matches!(self.nodes.states[top as usize], NodeState::AwaitingTurn) {
                        break; // interrupted, or paused for a person, inside the sub-graph
                    }
                    self.sched.push_ready(&self.graph, top);
                    break;
                }
                state if !state.has_result() => break,
                _ if !self.sched.passed_on(top) => break,
                _ => self.commit(top)?,
            }
        }
        Ok(())
    }

    /// `i` has its result: record its value and unblock what waits for it.
    fn resolved(&mut self, i: NodeIdx) {
        let ok = state::lets_dependents_run(
            self.nodes.status(i),
            self.wf.nodes[i as usize].continue_on_error,
        );
        if self.graph.is_read(i) {
            self.calls.values.set(i, &self.nodes.value(i));
        }
        self.sched.resolved(&self.graph, i, ok);
    }

    /// Writes `i`'s events and unblocks the commits that wait for it.
    fn commit(&mut self, i: NodeIdx) -> Result<(), EngineError> {
        let status = self.nodes.status(i);
        let clock = self.commit.start_clock(&self.graph, i);
        let state = std::mem::replace(&mut self.nodes.states[i as usize], NodeState::Done(status));
        let mut events = std::mem::take(&mut self.commit.outbox);
        let clock = self.kind_events(i, state, status, clock, &mut events);
        self.commit.outbox = events;
        self.commit
            .node_done(i, self.iid(i, None).as_str(), clock, status)?;
        self.sched.committed(&self.graph, i);
        Ok(())
    }

    /// The workflow's `outputs`, rendered after the last node.
    fn outputs(&mut self) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, template) in &self.wf.outputs {
            let value = match self.calls.renderer.template(template, None) {
                Ok(text) => Value::String(text),
                Err(e) => {
                    let failure = render::TemplateFailure::new(
                        &self.wf.source,
                        template.span,
                        &template.value,
                        &e,
                        (
                            None,
                            format!("output `{name}`"),
                            "inputs, nodes, run".into(),
                        ),
                    );
                    self.calls
                        .failures
                        .push(failure.redacted(&self.calls.redactor));
                    serde_json::json!({ "error": e.message })
                }
            };
            out.insert(name.clone(), value);
        }
        out
    }
}

#[cfg(test)]
mod tests;
