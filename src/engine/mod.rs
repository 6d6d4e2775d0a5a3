//! The engine: runs a validated workflow and commits its events to the ledger in the
//! canonical order of SPEC section 5, whatever the number of workers.
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
//! Everything is iterative (sets of ready nodes, counters): a 1,000,000-node chain runs without
//! recursion.

mod order;
pub mod render;
mod rng;

use crate::ledger::event::Event;
use crate::ledger::writer::{ChainState, Sink, Writer};
use crate::ledger::{self, FORMAT};
use crate::policy::effective::{self, Effective};
use crate::policy::redact::Redactor;
use crate::policy::{CapSet, Enforcement};
use crate::tools::{self, Attempt, Outcome, Placement, Tool, ToolSpec};
use crate::workflow::model::Retry;
use crate::workflow::{ForEach, NodeIdx, NodeKind, Workflow};
use rand::RngExt;
use render::{Locals, NodeValues, Renderer};
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads for waiting work; 0 means the default.
    pub jobs: usize,
    /// Overrides the workflow's seed.
    pub seed: Option<u64>,
    /// `--input key=value` pairs.
    pub inputs: Vec<(String, String)>,
    /// Collect a per-node summary for [`RunReport::nodes`] (off for `--quiet` and benchmarks).
    pub summary: bool,
    /// Decisions for approval nodes, by node id (`--approve` / `--reject`).
    pub approvals: std::collections::BTreeMap<String, ApprovalDecision>,
    /// Resuming: calls the recording has are answered from it, the others run.
    pub resume: bool,
    /// Asks a person for a decision the options do not hold (an interactive terminal).
    pub ask: Option<Ask>,
}

/// A way to ask for an approval decision: given the node id and its prompt.
#[derive(Clone)]
pub struct Ask(pub std::sync::Arc<AskFn>);

/// Node id and prompt in, a decision out (`None`: no decision, the run pauses).
pub type AskFn = dyn Fn(&str, &str) -> Option<ApprovalDecision> + Send + Sync;

impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ask(..)")
    }
}

/// A person's decision on an approval node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalDecision {
    pub approve: bool,
    pub approver: Option<String>,
    pub reason: Option<String>,
}

/// Emptied task runs the engine keeps for reuse.
const SPARE_RUNS: usize = 64;

/// How long committed events may wait for the writer while workers run.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// The default `--jobs`: the number of CPUs, at least 4 (SPEC 5).
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

/// A node's final status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    Skipped,
    Denied,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Denied => "denied",
        }
    }
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
    pub counts: [u64; 4],
    pub outputs: Map<String, Value>,
    pub pending_approvals: Vec<String>,
    pub ledger_lines: u64,
    pub chain_head: String,
    /// Replay: the calls the recording could not answer, in commit order of their nodes.
    pub divergences: Vec<crate::record::Divergence>,
}

/// A task's run (or one `for_each` instance's).
#[derive(Debug, Default)]
struct TaskRun {
    skipped: Option<String>,
    /// The rendered arguments (absent when rendering failed).
    input: Option<Value>,
    /// Failure before the tool ran (rendering, a condition).
    error: Option<String>,
    attempts: Vec<Attempt>,
    /// Policy decisions about this call, in the order they were made.
    decisions: Vec<Decision>,
    /// An enforced denial: the tool did not run.
    denied: bool,
    /// Redactions applied to the call's input and results: (field, count).
    redactions: Vec<(String, u64)>,
}

/// One policy decision about a call (SPEC 4), recorded as an event.
#[derive(Clone, Debug)]
pub(crate) enum Decision {
    Allow {
        checks: Vec<&'static str>,
    },
    Deny {
        code: &'static str,
        detail: String,
        enforced: bool,
    },
    Limit {
        key: String,
        limit: u64,
        enforced: bool,
    },
}

impl TaskRun {
    fn status(&self) -> Status {
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

    fn outcome(&self) -> Option<&Outcome> {
        self.attempts.last().map(|a| &a.outcome)
    }

    /// Empties the run for reuse, keeping the capacity of its lists.
    fn clear(&mut self) {
        let mut attempts = std::mem::take(&mut self.attempts);
        let mut decisions = std::mem::take(&mut self.decisions);
        let mut redactions = std::mem::take(&mut self.redactions);
        attempts.clear();
        decisions.clear();
        redactions.clear();
        *self = TaskRun {
            attempts,
            decisions,
            redactions,
            ..TaskRun::default()
        };
    }
}

/// A node's result, from the moment it is known until it is committed. There is one per
/// node for the whole run, so rare, large variants are boxed.
#[derive(Debug, Default)]
enum Res {
    #[default]
    Pending,
    Skipped(String),
    Failed(String),
    Task(Box<TaskRun>),
    /// Handed to a worker; becomes `Task` when the result comes back.
    Running(Box<TaskRun>),
    ForEach {
        runs: Vec<Option<TaskRun>>,
        remaining: usize,
    },
    Branch {
        value: bool,
    },
    Fork,
    Join {
        succeeded: Vec<NodeIdx>,
    },
    AwaitingApproval {
        prompt: String,
    },
    /// A call subject to `max_calls`: decided when it is next in commit order, so that the
    /// same calls are allowed whatever the timing.
    AwaitingTurn,
    /// An approval node with its decision.
    Approval(Box<ApprovalDecision>),
    /// Committed; only the status is kept.
    Done(Status),
}

const _: () = assert!(std::mem::size_of::<Res>() <= 32);

/// Work for a worker thread: one task, or one `for_each` instance.
struct Job {
    key: (Reverse<i64>, u32, u32),
    node: NodeIdx,
    instance: Option<u32>,
    tool: &'static dyn Tool,
    args: Map<String, Value>,
    timeout: Option<Duration>,
    retry: Option<Retry>,
    seed: u64,
    instance_id: String,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    // The heap pops the greatest; the canonical first (highest priority, earliest declared)
    // must be the greatest, so compare reversed.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key.cmp(&self.key)
    }
}

/// A job's node, instance and attempts (none when it was not run because of an interrupt).
type JobResult = (NodeIdx, Option<u32>, Option<Vec<Attempt>>);

/// The job queue and whether it is closed, with the condition workers wait on.
type Queue = (Mutex<(BinaryHeap<Job>, bool)>, Condvar);

/// Finished jobs on their way back to the scheduler.
///
/// A worker wakes the scheduler only when the job queue runs low. While enough work is
/// queued, results wait and the scheduler takes them in batches: with short commands it would
/// otherwise wake once per command and take CPU time from the commands themselves.
#[derive(Default)]
struct Results {
    done: Mutex<Vec<JobResult>>,
    wake: Condvar,
}

impl Results {
    fn put(&self, result: JobResult, urgent: bool) {
        self.done.lock().expect("results lock").push(result);
        if urgent {
            self.wake.notify_one();
        }
    }

    /// The results so far; when there are none, waits up to `timeout` for a worker's call.
    fn take(&self, timeout: Duration) -> Vec<JobResult> {
        let mut done = self.done.lock().expect("results lock");
        if done.is_empty() {
            done = self
                .wake
                .wait_timeout(done, timeout)
                .expect("results lock")
                .0;
        }
        std::mem::take(&mut *done)
    }
}

/// Long-lived worker threads fed from one priority queue.
struct Pool {
    shared: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(jobs: usize, results: &Arc<Results>) -> Self {
        let shared = Arc::new((Mutex::new((BinaryHeap::new(), false)), Condvar::new()));
        let threads = (0..jobs)
            .map(|i| {
                let shared = Arc::clone(&shared);
                let results = Arc::clone(results);
                std::thread::Builder::new()
                    .name(format!("kairos-worker-{i}"))
                    .spawn(move || worker(&shared, &results, jobs))
                    .expect("spawn a worker thread")
            })
            .collect();
        Self { shared, threads }
    }

    fn push(&self, job: Job) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("queue lock").0.push(job);
        cv.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("queue lock").1 = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(shared: &Queue, results: &Results, workers: usize) {
    let (lock, cv) = shared;
    loop {
        let job = {
            let mut state = lock.lock().expect("queue lock");
            loop {
                if let Some(job) = state.0.pop() {
                    break job;
                }
                if state.1 {
                    return;
                }
                state = cv.wait(state).expect("queue lock");
            }
        };
        // After Ctrl-C, queued jobs are handed back unrun.
        let attempts = (!crate::interrupt::global().requested()).then(|| {
            execute(
                job.tool,
                &job.args,
                job.timeout,
                job.retry.as_ref(),
                job.seed,
                &job.instance_id,
            )
        });
        // The scheduler is needed soon only when the workers may run out of queued jobs.
        let queued = lock.lock().expect("queue lock").0.len();
        results.put((job.node, job.instance, attempts), queued < 2 * workers);
    }
}

/// Runs a tool call with its retries. Backoff jitter comes from the node's RNG, so the
/// schedule is the same on every run.
fn execute(
    tool: &dyn Tool,
    args: &Map<String, Value>,
    timeout: Option<Duration>,
    retry: Option<&Retry>,
    seed: u64,
    instance_id: &str,
) -> Vec<Attempt> {
    let mut out = Vec::with_capacity(1);
    execute_into(tool, args, timeout, retry, seed, instance_id, &mut out);
    out
}

/// [`execute`], appending the attempts to `out`.
fn execute_into(
    tool: &dyn Tool,
    args: &Map<String, Value>,
    timeout: Option<Duration>,
    retry: Option<&Retry>,
    seed: u64,
    instance_id: &str,
    out: &mut Vec<Attempt>,
) {
    // The RNG is derived only for the calls that draw from it.
    let mut rng = (tool.draws_rng() || retry.is_some_and(|r| r.attempts > 1))
        .then(|| rng::for_node(seed, instance_id));
    let attempts = retry.map_or(1, |r| r.attempts.max(1));
    for k in 0..attempts {
        let outcome = tool.call(
            args,
            &mut tools::CallCx {
                rng: rng.as_mut(),
                timeout,
                cancel: crate::interrupt::global(),
            },
        );
        let failed = outcome.error.is_some();
        match retry.filter(|_| failed && k + 1 < attempts) {
            Some(r) => {
                let base = r.backoff.as_secs_f64() * r.factor.powi(k as i32);
                let capped = r.max_backoff.map_or(base, |m| base.min(m.as_secs_f64()));
                // Half fixed, half jitter: spreads retries, never waits less than half.
                let draw = rng.as_mut().map_or(0.5, |r| r.random::<f64>());
                let delay = capped * (0.5 + 0.5 * draw);
                let delay_ms = (delay * 1000.0).round() as u64;
                out.push(Attempt {
                    outcome,
                    delay_ms: Some(delay_ms),
                });
                std::thread::sleep(Duration::from_millis(delay_ms));
            }
            None => {
                out.push(Attempt {
                    outcome,
                    delay_ms: None,
                });
                break;
            }
        }
    }
}

/// The `RunStart` body.
pub(crate) fn run_start(
    workflow: &Workflow,
    inputs: &Map<String, Value>,
    seed: u64,
    effective: &Effective,
) -> String {
    // A secret's value written into the workflow or passed as an input is masked here too.
    // `redact` patterns are not applied to the workflow text: they are meant for what tools
    // produce, and masking part of the source would change the workflow a replay re-drives.
    let redactor = Redactor::new(&[], &effective.redaction().1);
    let source = redactor.redact(&workflow.source).0;
    let mut inputs = Value::Object(inputs.clone());
    redactor.redact_json(&mut inputs);
    let mut policy = effective.to_json();
    // The organisation policy's text, so a replay can rebuild the same effective policy.
    if let Some(org) = effective.layers.iter().find(|l| l.narrows) {
        policy["organisation_source"] = Value::String(org.source.to_string());
    }
    let policy_text = serde_json::to_string(&policy).unwrap_or_default();
    // The source is most of the line: room for it and some escaping, allocated once.
    let mut out = String::with_capacity(source.len() + source.len() / 8 + policy_text.len() + 1024);
    Event::new(&mut out, "RunStart", 0)
        .str("format", FORMAT)
        .str("kairos_version", env!("CARGO_PKG_VERSION"))
        .str("workflow", &workflow.name)
        .str(
            "workflow_sha256",
            &ledger::sha256_hex(workflow.source.as_bytes()),
        )
        .str("workflow_source", &source)
        .json("inputs", &inputs)
        .u64("seed", seed)
        .json("policy", &policy)
        .str("policy_sha256", &ledger::sha256_hex(policy_text.as_bytes()))
        .finish();
    out
}

/// Runs `workflow`, writing the ledger to `file`.
pub fn run(
    workflow: &Workflow,
    options: &RunOptions,
    policy: &Effective,
    file: File,
) -> Result<RunReport, EngineError> {
    crate::plan::check_tools(workflow)?;
    let inputs = crate::plan::resolve_inputs(workflow, &options.inputs)?;
    run_to(workflow, options, policy, &inputs, file, None)
}

/// Runs `workflow` with resolved `inputs`, writing the ledger to `sink`; with a recording,
/// tools are not called: their results come from the recording (replay).
pub fn run_to(
    workflow: &Workflow,
    options: &RunOptions,
    policy: &Effective,
    inputs: &Map<String, Value>,
    sink: impl Sink,
    recording: Option<&crate::record::Recording>,
) -> Result<RunReport, EngineError> {
    let seed = options.seed.unwrap_or(workflow.seed);
    let jobs = if options.jobs == 0 {
        default_jobs()
    } else {
        options.jobs
    };
    let writer = Writer::start(sink, ChainState::default());
    // `RunStart` (the whole source, escaped and hashed: milliseconds for a large workflow) is
    // built while the scheduler's tables are.
    let (start, mut engine) = std::thread::scope(|scope| {
        let start = scope.spawn(|| run_start(workflow, inputs, seed, policy));
        let engine = Engine::new(
            workflow,
            inputs,
            seed,
            jobs,
            options.summary,
            policy,
            writer,
        );
        (
            start.join().expect("building RunStart does not panic"),
            engine,
        )
    });
    engine.writer.send(start)?;
    engine.recording = recording;
    engine.live_fallback = options.resume;
    engine.approvals = options.approvals.clone();
    engine.ask = options.ask.clone();
    engine.run()
}

struct Engine<'w> {
    wf: &'w Workflow,
    policy: &'w Effective,
    redactor: Redactor,
    /// Calls counted so far per `max_calls` key, in commit order.
    calls: HashMap<String, u64>,
    /// Whether an enforced denial stopped part of the run.
    denied: bool,
    /// Decisions for approval nodes, and which approvals have had `ApprovalRequested` written.
    approvals: std::collections::BTreeMap<String, ApprovalDecision>,
    ask: Option<Ask>,
    requested: Vec<bool>,
    /// Replay: where tool results come from instead of the tools.
    recording: Option<&'w crate::record::Recording>,
    /// Resume: a call the recording does not have runs for real.
    live_fallback: bool,
    divergences: Vec<crate::record::Divergence>,
    seed: u64,
    jobs: usize,
    succ_start: Vec<u32>,
    succ: Vec<NodeIdx>,
    /// What each node waits for: `pred[pred_start[i]..deps_end[i]]` are its `deps`, the rest
    /// up to `pred_start[i + 1]` its `after`.
    pred_start: Vec<u32>,
    deps_end: Vec<u32>,
    pred: Vec<NodeIdx>,
    pending_results: Vec<u32>,
    pending_commits: Vec<u32>,
    res: Vec<Res>,
    /// Whether some expression reads the node (only then is its value kept).
    read: Vec<bool>,
    end_clock: Vec<u64>,
    /// Branch decisions, kept after the branch commits (its arms may begin later).
    decisions: Vec<Option<bool>>,
    /// Each node's rank in the canonical order.
    order: order::Order,
    /// The decision that let a `require_approval` call run, recorded when the task commits.
    gate_decisions: std::collections::BTreeMap<NodeIdx, ApprovalDecision>,
    /// Whether each resolved node lets its dependents run (see `lets_dependents_run`).
    ok: Vec<bool>,
    /// Whether a node's result has been passed on to its dependents (`resolved`): only then
    /// may it be committed, which drops the result.
    passed_on: Vec<bool>,
    attempts: Vec<u32>,
    short: Vec<String>,
    summary: bool,
    /// Ranks of the nodes that may commit once they have their result: everything they wait
    /// for has committed.
    commits: order::RankSet,
    values: Arc<NodeValues>,
    renderer: Renderer,
    pool: Option<Pool>,
    outstanding: usize,
    results: Arc<Results>,
    /// Emptied runs kept for reuse (at most `SPARE_RUNS`). The boxes themselves are what is
    /// reused: a `Res` holds a boxed run.
    #[allow(clippy::vec_box)]
    spare_runs: Vec<Box<TaskRun>>,
    writer: Writer,
    committed: usize,
    /// Event bodies committed but not yet handed to the writer (sent in batches).
    outbox: String,
    counts: [u64; 4],
    /// Ranks of the nodes whose inputs have results, to begin (or to resolve) in commit order:
    /// what starts first is what commits first, so results are written and dropped at once.
    ready: order::RankSet,
}

impl<'w> Engine<'w> {
    fn new(
        wf: &'w Workflow,
        inputs: &Map<String, Value>,
        seed: u64,
        jobs: usize,
        summary: bool,
        policy: &'w Effective,
        writer: Writer,
    ) -> Self {
        let n = wf.nodes.len();
        // One pass over the nodes (large, and their lists scattered over the heap) gathers
        // what the run reads per node into dense arrays: what each node waits for (`deps`
        // then `after`), which nodes are read, and the keys of the canonical order.
        let mut pred_start = Vec::with_capacity(n + 1);
        let mut deps_end = Vec::with_capacity(n);
        let mut pred = Vec::with_capacity(wf.edge_count());
        let mut read = vec![false; n];
        let mut keys = Vec::with_capacity(n);
        pred_start.push(0);
        for node in &wf.nodes {
            pred.extend_from_slice(&node.deps);
            deps_end.push(pred.len() as u32);
            pred.extend_from_slice(&node.after);
            pred_start.push(pred.len() as u32);
            for &r in &node.reads {
                read[r as usize] = true;
            }
            keys.push((
                matches!(node.kind, NodeKind::Approval { .. }) || gated(node, policy),
                node.priority,
            ));
        }
        for &r in &wf.output_reads {
            read[r as usize] = true;
        }
        let mut succ_start = vec![0u32; n + 1];
        for &p in &pred {
            succ_start[p as usize + 1] += 1;
        }
        for i in 0..n {
            succ_start[i + 1] += succ_start[i];
        }
        let mut fill = succ_start.clone();
        let mut succ = vec![0; succ_start[n] as usize];
        for i in 0..n {
            for &p in &pred[pred_start[i] as usize..pred_start[i + 1] as usize] {
                succ[fill[p as usize] as usize] = i as NodeIdx;
                fill[p as usize] += 1;
            }
        }
        let pending: Vec<u32> = pred_start.windows(2).map(|w| w[1] - w[0]).collect();
        let values = Arc::new(NodeValues::new(
            (0..n)
                .filter(|&i| read[i])
                .map(|i| (i as NodeIdx, wf.nodes[i].id.as_str())),
        ));
        let renderer = Renderer::new(
            &Value::Object(inputs.clone()),
            &wf.name,
            seed,
            Arc::clone(&values),
        );
        let (patterns, secrets) = policy.redaction();
        Self {
            wf,
            policy,
            redactor: Redactor::new(&patterns, &secrets),
            calls: HashMap::new(),
            denied: false,
            approvals: std::collections::BTreeMap::new(),
            ask: None,
            requested: vec![false; n],
            recording: None,
            live_fallback: false,
            divergences: Vec::new(),
            seed,
            jobs,
            succ_start,
            succ,
            pred_start,
            deps_end,
            pred,
            pending_results: pending.clone(),
            pending_commits: pending,
            res: (0..n).map(|_| Res::Pending).collect(),
            read,
            end_clock: vec![0; n],
            decisions: vec![None; n],
            order: order::Order::new(n, |i| keys[i]),
            gate_decisions: std::collections::BTreeMap::new(),
            ok: vec![false; n],
            passed_on: vec![false; n],
            attempts: vec![0; n],
            short: if summary {
                vec![String::new(); n]
            } else {
                Vec::new()
            },
            summary,
            commits: order::RankSet::new(n),
            values,
            renderer,
            pool: None,
            outstanding: 0,
            results: Arc::default(),
            spare_runs: Vec::new(),
            writer,
            committed: 0,
            outbox: String::new(),
            counts: [0; 4],
            ready: order::RankSet::new(n),
        }
    }

    /// Marks `i` as ready to begin, or to pass its result on.
    fn push_ready(&mut self, i: NodeIdx) {
        self.ready.insert(self.order.rank(i));
    }

    /// The node that commits next, if it is known which.
    fn next_commit(&self) -> Option<NodeIdx> {
        self.commits.first().map(|r| self.order.node(r))
    }

    fn run(mut self) -> Result<RunReport, EngineError> {
        let n = self.wf.nodes.len();
        for i in 0..n as NodeIdx {
            if self.pending_commits[i as usize] == 0 {
                self.commits.insert(self.order.rank(i));
            }
            if self.pending_results[i as usize] == 0 {
                self.push_ready(i);
            }
        }
        let mut pending_approvals = Vec::new();
        let mut interrupted = false;
        let mut last_flush = std::time::Instant::now();
        loop {
            self.advance()?;
            if self.committed == n {
                break;
            }
            if crate::interrupt::global().requested() && self.outstanding == 0 {
                // Everything that finished is committed; write the trailer a resume replaces.
                let clock = self.end_clock.iter().copied().max().unwrap_or(0) + 1;
                Event::new(&mut self.outbox, "RunPaused", clock)
                    .str("reason", "interrupted")
                    .strs("pending", [])
                    .str("resume", "kairos run WORKFLOW --resume LEDGER")
                    .finish();
                self.writer.send(std::mem::take(&mut self.outbox))?;
                interrupted = true;
                break;
            }
            if let Some(top) = self.next_commit()
                && let Res::AwaitingApproval { .. } = &self.res[top as usize]
            {
                // Nothing else is ready: every approval that is ready now is requested at
                // once, in commit order, whether or not its decision is known (so a paused run
                // and one given the decisions up front write the same requests).
                let ready: Vec<NodeIdx> = self
                    .commits
                    .iter()
                    .map(|r| self.order.node(r))
                    .filter(|&i| matches!(self.res[i as usize], Res::AwaitingApproval { .. }))
                    .collect();
                for &i in &ready {
                    if !self.requested[i as usize] {
                        self.requested[i as usize] = true;
                        let clock = self.start_clock(i as usize);
                        if let Res::AwaitingApproval { prompt } = &self.res[i as usize] {
                            Event::new(&mut self.outbox, "ApprovalRequested", clock)
                                .node(&self.wf.nodes[i as usize].id)
                                .str("prompt", prompt)
                                .finish();
                        }
                    }
                }
                let id = self.wf.nodes[top as usize].id.as_str();
                if !self.approvals.contains_key(id)
                    && let (Some(ask), Res::AwaitingApproval { prompt }) =
                        (&self.ask, &self.res[top as usize])
                {
                    // The requests are on disk before a person is asked.
                    self.writer.send(std::mem::take(&mut self.outbox))?;
                    if let Some(decision) = (ask.0)(id, prompt) {
                        self.approvals.insert(id.to_string(), decision);
                    }
                }
                if let Some(decision) = self.approvals.get(id).cloned() {
                    let gate = matches!(self.wf.nodes[top as usize].kind, NodeKind::Task(_));
                    self.res[top as usize] = if gate && decision.approve {
                        // A `require_approval` call, approved: it runs now, at its turn.
                        self.gate_decisions.insert(top, decision);
                        self.start_node(top)
                    } else {
                        Res::Approval(Box::new(decision))
                    };
                    self.push_ready(top);
                    continue;
                }
                let pending: Vec<&str> = ready
                    .iter()
                    .map(|&i| self.wf.nodes[i as usize].id.as_str())
                    .collect();
                let clock = self.end_clock.iter().copied().max().unwrap_or(0) + 1;
                Event::new(&mut self.outbox, "RunPaused", clock)
                    .str("reason", "approval")
                    .strs("pending", pending.iter().copied())
                    .str(
                        "resume",
                        "kairos run WORKFLOW --resume LEDGER --approve ID --approver NAME",
                    )
                    .finish();
                self.writer.send(std::mem::take(&mut self.outbox))?;
                pending_approvals.extend(pending.iter().map(|s| s.to_string()));
                break;
            }
            if self.outstanding == 0 {
                return Err(EngineError::Ledger(std::io::Error::other(
                    "internal error: the scheduler has nothing to commit and nothing running",
                )));
            }
            // Committed events reach the writer at least every FLUSH_INTERVAL while workers
            // run, not after every node: waking the writer per node costs more than the node
            // when commands are short, and the writer syncs every 100 ms anyway.
            let batch = loop {
                let since = last_flush.elapsed();
                if !self.outbox.is_empty() && since >= FLUSH_INTERVAL {
                    self.writer.send(std::mem::take(&mut self.outbox))?;
                    last_flush = std::time::Instant::now();
                    continue;
                }
                // Wake up now and then to notice an interrupt, and to take results that the
                // workers did not wake the scheduler for: they wait at most FLUSH_INTERVAL.
                let wait = if self.outbox.is_empty() {
                    FLUSH_INTERVAL
                } else {
                    FLUSH_INTERVAL - since
                };
                let batch = self.results.take(wait);
                if !batch.is_empty() {
                    break batch;
                }
            };
            for (node, instance, attempts) in batch {
                self.outstanding -= 1;
                self.job_done(node, instance, attempts);
            }
        }
        self.pool = None;
        self.writer.send(std::mem::take(&mut self.outbox))?;
        let paused = !pending_approvals.is_empty() || interrupted;
        let outputs = if paused { Map::new() } else { self.outputs() };
        let status = if interrupted {
            RunStatus::Interrupted
        } else if paused {
            RunStatus::Paused
        } else if self.denied {
            RunStatus::Denied
        } else if (0..n)
            .any(|i| self.status_of(i) == Status::Failed && !self.wf.nodes[i].continue_on_error)
        {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        if !paused {
            let clock = self.end_clock.iter().copied().max().unwrap_or(0) + 1;
            let counts = serde_json::json!({
                "succeeded": self.counts[0], "failed": self.counts[1], "skipped": self.counts[2], "denied": self.counts[3],
            });
            let mut out = String::new();
            Event::new(&mut out, "RunEnd", clock)
                .str("status", status.name())
                .json("counts", &counts)
                .json("outputs", &Value::Object(outputs.clone()))
                .finish();
            self.writer.send(out)?;
        }
        let nodes = self
            .wf
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| self.summary && matches!(self.res[*i], Res::Done(_)))
            .map(|(i, node)| NodeSummary {
                node: node.id.to_string(),
                kind: node.label(),
                status: self.status_of(i).name(),
                attempts: self.attempts[i],
                output: self.short[i].clone(),
            })
            .collect();
        let written = self.writer.finish()?;
        Ok(RunReport {
            status,
            nodes,
            counts: self.counts,
            outputs,
            pending_approvals,
            ledger_lines: written.lines,
            chain_head: written.head,
            divergences: self.divergences,
        })
    }

    fn status_of(&self, i: usize) -> Status {
        match &self.res[i] {
            Res::Done(s) => *s,
            Res::Pending | Res::Running(_) | Res::AwaitingApproval { .. } | Res::AwaitingTurn => {
                Status::Skipped
            }
            Res::Skipped(_) => Status::Skipped,
            Res::Failed(_) => Status::Failed,
            Res::Task(t) => t.status(),
            Res::ForEach { runs, .. } => {
                if runs.iter().flatten().any(|r| r.status() == Status::Failed) {
                    Status::Failed
                } else {
                    Status::Succeeded
                }
            }
            Res::Branch { .. } | Res::Fork | Res::Join { .. } => Status::Succeeded,
            Res::Approval(d) if d.approve => Status::Succeeded,
            Res::Approval(_) => Status::Failed,
        }
    }

    /// Whether dependents of `i` run: it succeeded, or failed under `continue_on_error`.
    fn lets_dependents_run(&self, i: usize) -> bool {
        match self.status_of(i) {
            Status::Succeeded => true,
            Status::Failed => self.wf.nodes[i].continue_on_error,
            Status::Skipped | Status::Denied => false,
        }
    }

    /// Runs what is ready and commits what can be committed, until neither can go on without
    /// a worker's result or a decision.
    ///
    /// Commits are interleaved with starting nodes, so that a result is written and dropped
    /// soon after it is known: memory stays flat however many inline nodes run in a row.
    fn advance(&mut self) -> Result<(), EngineError> {
        loop {
            self.commit_ready()?;
            let Some(i) = self.ready.pop_first().map(|r| self.order.node(r)) else {
                return Ok(());
            };
            if crate::interrupt::global().requested()
                && matches!(self.res[i as usize], Res::Pending)
            {
                // After Ctrl-C no node starts.
                continue;
            }
            if matches!(self.res[i as usize], Res::Pending) {
                self.begin(i);
            }
            if self.result_complete(i as usize) {
                self.resolved(i);
            }
        }
    }

    /// Commits nodes in canonical order while the next one has its result.
    fn commit_ready(&mut self) -> Result<(), EngineError> {
        while let Some(top) = self.next_commit() {
            match &self.res[top as usize] {
                Res::Pending | Res::Running(_) | Res::ForEach { remaining: 1.., .. } => break,
                Res::AwaitingApproval { .. } => break,
                Res::AwaitingTurn => {
                    // Its turn in commit order: now its call limits can be counted.
                    self.res[top as usize] = self.start_node(top);
                    self.push_ready(top);
                    break;
                }
                _ if !self.passed_on[top as usize] => break,
                _ => {
                    self.commits.remove(self.order.rank(top));
                    self.commit(top)?;
                }
            }
        }
        Ok(())
    }

    fn result_complete(&self, i: usize) -> bool {
        !matches!(
            self.res[i],
            Res::Pending
                | Res::Running(_)
                | Res::AwaitingApproval { .. }
                | Res::AwaitingTurn
                | Res::ForEach { remaining: 1.., .. }
        )
    }

    /// `i` has its result: record its value and unblock what waits for it.
    fn resolved(&mut self, i: NodeIdx) {
        let iu = i as usize;
        self.passed_on[iu] = true;
        self.ok[iu] = self.lets_dependents_run(iu);
        if self.read[iu] {
            let value = self.node_value(iu);
            self.values.set(i, &value);
        }
        for k in self.succ_start[iu]..self.succ_start[iu + 1] {
            let s = self.succ[k as usize];
            self.pending_results[s as usize] -= 1;
            if self.pending_results[s as usize] == 0 {
                self.push_ready(s);
            }
        }
    }

    fn node_value(&self, i: usize) -> Value {
        let status = self.status_of(i).name();
        let mut v = serde_json::json!({ "output": null, "stdout": null, "stderr": null, "exit_code": null, "status": status });
        match &self.res[i] {
            Res::Task(run) => {
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
            Res::ForEach { runs, .. } => {
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
            Res::Branch { value } => v["output"] = Value::Bool(*value),
            Res::Approval(d) => v["output"] = Value::Bool(d.approve),
            _ => {}
        }
        v
    }

    /// Every node `i` waits for has a result: decide whether it runs, and run or dispatch it.
    fn begin(&mut self, i: NodeIdx) {
        let iu = i as usize;
        let node = &self.wf.nodes[iu];
        if let Some(reason) = self.skip_reason(iu) {
            self.res[iu] = Res::Skipped(reason);
            return;
        }
        if node.for_each.is_none()
            && let Some(cond) = &node.condition
        {
            match self.renderer.condition(cond, None) {
                Ok(true) => {}
                Ok(false) => {
                    self.res[iu] = Res::Skipped("`if` is false".into());
                    return;
                }
                Err(e) => {
                    self.res[iu] = Res::Failed(format!("`if`: {e}"));
                    return;
                }
            }
        }
        self.res[iu] = match &node.kind {
            NodeKind::Branch { condition, .. } => match self.renderer.condition(condition, None) {
                Ok(value) => {
                    self.decisions[iu] = Some(value);
                    Res::Branch { value }
                }
                Err(e) => Res::Failed(format!("branch condition: {e}")),
            },
            NodeKind::Fork(_) => Res::Fork,
            NodeKind::Join(parents) => {
                let succeeded = parents
                    .iter()
                    .copied()
                    .filter(|&p| self.status_of(p as usize) == Status::Succeeded)
                    .collect();
                Res::Join { succeeded }
            }
            NodeKind::Approval { prompt } => match self.renderer.template(prompt, None) {
                Ok(prompt) => Res::AwaitingApproval { prompt },
                Err(e) => Res::Failed(format!("prompt: {e}")),
            },
            NodeKind::Task(task)
                if !self.gate_decisions.contains_key(&i) && gated(node, self.policy) =>
            {
                let caps = CapSet::of(task.tool.spec().capabilities)
                    .intersect(self.policy.require_approval);
                Res::AwaitingApproval {
                    prompt: format!(
                        "node `{}` calls `{}`, which needs {caps}: allow it?",
                        node.id,
                        task.tool.spec().name
                    ),
                }
            }
            NodeKind::Task(task)
                if self.policy.has_limits(node.policy.as_deref())
                    && !self
                        .policy
                        .limits(task.tool.spec().name, &node.id, node.policy.as_deref())
                        .is_empty() =>
            {
                Res::AwaitingTurn
            }
            NodeKind::Task(_) => self.start_node(i),
        };
    }

    fn skip_reason(&self, i: usize) -> Option<String> {
        let node = &self.wf.nodes[i];
        let joined: &[NodeIdx] = match &node.kind {
            NodeKind::Join(parents) => parents,
            _ => &[],
        };
        let deps = &self.pred[self.pred_start[i] as usize..self.deps_end[i] as usize];
        for &d in deps {
            let du = d as usize;
            // Dense arrays first: most dependencies are neither branches nor failures.
            if let Some(value) = self.decisions[du]
                && let NodeKind::Branch {
                    then, otherwise, ..
                } = &self.wf.nodes[du].kind
            {
                let (arm, other) = if value {
                    (then, otherwise)
                } else {
                    (otherwise, then)
                };
                if other.contains(&(i as NodeIdx)) && !arm.contains(&(i as NodeIdx)) {
                    return Some(format!(
                        "branch `{}` chose `{}`",
                        self.wf.nodes[du].id,
                        if value { "then" } else { "else" }
                    ));
                }
            }
            if joined.contains(&d) {
                continue;
            }
            if !self.ok[du] {
                return Some(format!(
                    "`{}` {}",
                    self.wf.nodes[du].id,
                    self.status_of(du).name()
                ));
            }
        }
        if !joined.is_empty()
            && !joined
                .iter()
                .any(|&p| self.status_of(p as usize) == Status::Succeeded)
        {
            return Some("no joined node succeeded".into());
        }
        None
    }

    /// Renders a task's arguments and runs it inline or hands it to a worker.
    fn start_task(&mut self, i: NodeIdx, instance: Option<(u32, Locals)>) -> Res {
        let node = &self.wf.nodes[i as usize];
        let NodeKind::Task(task) = &node.kind else {
            unreachable!("tasks only")
        };
        let locals = instance.as_ref().map(|(_, l)| l);
        // Boxes of committed runs are reused: most nodes run and commit in quick succession.
        let mut run = self.spare_runs.pop().unwrap_or_default();
        if instance.is_some()
            && let Some(cond) = &node.condition
        {
            match self.renderer.condition(cond, locals) {
                Ok(true) => {}
                Ok(false) => run.skipped = Some("`if` is false".into()),
                Err(e) => run.error = Some(format!("`if`: {e}")),
            }
            if run.skipped.is_some() || run.error.is_some() {
                return Res::Task(run);
            }
        }
        let mut args = Map::new();
        for (key, value) in &task.with {
            let kind = task.tool.spec().key(key).map(|k| k.kind);
            let rendered = match kind {
                Some(tools::KeyKind::ShellLine) => value
                    .as_str()
                    .map(|s| self.renderer.shell_line(s, locals).map(Value::String))
                    .unwrap_or_else(|| Ok(value.to_json())),
                Some(tools::KeyKind::Expression) => value.as_str().map_or_else(
                    || Ok(value.to_json()),
                    |s| {
                        self.renderer
                            .expression(s, locals)
                            .and_then(|v| render::to_json(&v))
                    },
                ),
                _ => self.renderer.value(value, locals),
            };
            match rendered {
                Ok(v) => {
                    args.insert(key.clone(), v);
                }
                Err(e) => {
                    run.error = Some(format!("`{key}`: {e}"));
                    return Res::Task(run);
                }
            }
        }
        let instance_id: std::borrow::Cow<'_, str> = match &instance {
            Some((k, _)) => format!("{}[{k}]", node.id).into(),
            None => node.id.as_str().into(),
        };
        // Policy, decided before anything runs (SPEC 4); a denial under `enforce` stops here.
        self.decide(i, task.tool, &args, &mut run);
        if run.denied {
            run.input = Some(self.recorded_input(args, &mut run));
            return Res::Task(run);
        }
        if let Some(recording) = self
            .recording
            .filter(|r| !self.live_fallback || r.calls.contains_key(instance_id.as_ref()))
        {
            let input = self.recorded_input(args, &mut run);
            run.redactions.extend(recording.redactions(&instance_id));
            let tool_name = task.tool.spec().name;
            let digest = (!task.tool.spec().keys.is_empty()).then(|| {
                input_digest(
                    tool_name,
                    &serde_json::to_string(&input).unwrap_or_default(),
                )
            });
            run.attempts =
                match recording.answer(&instance_id, tool_name, digest.as_deref(), &input) {
                    Ok(attempts) => attempts,
                    Err(divergence) => {
                        let error = format!("replay diverged: {}", divergence.reason);
                        self.divergences.push(divergence);
                        vec![Attempt {
                            outcome: Outcome {
                                error: Some(error),
                                ..Outcome::default()
                            },
                            delay_ms: None,
                        }]
                    }
                };
            run.input = Some(input);
            return Res::Task(run);
        }
        let retries = node.retry.as_ref().is_some_and(|r| r.attempts > 1);
        if task.tool.placement() == Placement::Inline && !retries {
            execute_into(
                task.tool,
                &args,
                node.timeout,
                None,
                self.seed,
                &instance_id,
                &mut run.attempts,
            );
            run.input = Some(self.recorded_input(args, &mut run));
            redact_results(&self.redactor, &mut run);
            return Res::Task(run);
        }
        run.input = Some(self.recorded_input(args.clone(), &mut run));
        let instance_id = instance_id.into_owned();
        let pool = self
            .pool
            .get_or_insert_with(|| Pool::start(self.jobs, &self.results));
        pool.push(Job {
            key: (
                Reverse(node.priority),
                i,
                instance.as_ref().map_or(0, |(k, _)| *k),
            ),
            node: i,
            instance: instance.as_ref().map(|(k, _)| *k),
            tool: task.tool,
            args,
            timeout: node.timeout,
            retry: node.retry.as_deref().cloned(),
            seed: self.seed,
            instance_id,
        });
        self.outstanding += 1;
        Res::Running(run)
    }

    /// Starts a task node: one call, or one per `for_each` item.
    fn start_node(&mut self, i: NodeIdx) -> Res {
        match &self.wf.nodes[i as usize].for_each {
            None => self.start_task(i, None),
            Some(each) => self.start_for_each(i, each),
        }
    }

    fn start_for_each(&mut self, i: NodeIdx, each: &ForEach) -> Res {
        let items: Vec<Value> = match each {
            ForEach::Items(items) => items.clone(),
            ForEach::Expression(text) => match self
                .renderer
                .expression(text, None)
                .and_then(|v| render::to_json(&v))
            {
                Ok(Value::Array(items)) => items,
                Ok(other) => {
                    return Res::Failed(format!("`for_each` must give a list, gave {other}"));
                }
                Err(e) => return Res::Failed(format!("`for_each`: {e}")),
            },
        };
        let mut runs = Vec::with_capacity(items.len());
        let mut remaining = 0;
        // Mark the node as in progress before starting instances: each may finish at once.
        for (k, item) in items.into_iter().enumerate() {
            let res = self.start_task(i, Some((k as u32, Locals { item, index: k })));
            match res {
                Res::Task(run) => runs.push(Some(*run)),
                Res::Running(run) => {
                    remaining += 1;
                    runs.push(Some(*run));
                }
                _ => unreachable!("start_task gives a task result"),
            }
        }
        Res::ForEach { runs, remaining }
    }

    fn job_done(&mut self, node: NodeIdx, instance: Option<u32>, attempts: Option<Vec<Attempt>>) {
        // A job not run (interrupt), or killed by a second interrupt, commits nothing: the
        // node runs again on resume.
        let Some(attempts) = attempts.filter(|_| !crate::interrupt::global().killed()) else {
            return;
        };
        let iu = node as usize;
        match (&mut self.res[iu], instance) {
            (Res::Running(run), None) => {
                run.attempts = attempts;
                redact_results(&self.redactor, run);
                self.res[iu] = match std::mem::take(&mut self.res[iu]) {
                    Res::Running(run) => Res::Task(run),
                    _ => unreachable!(),
                };
                self.push_ready(node);
            }
            (Res::ForEach { runs, remaining }, Some(k)) => {
                if let Some(Some(run)) = runs.get_mut(k as usize) {
                    run.attempts = attempts;
                    redact_results(&self.redactor, run);
                }
                *remaining -= 1;
                if *remaining == 0 {
                    self.push_ready(node);
                }
            }
            _ => debug_assert!(false, "a job result for a node that is not waiting for one"),
        }
    }

    fn start_clock(&self, i: usize) -> u64 {
        self.pred[self.pred_start[i] as usize..self.pred_start[i + 1] as usize]
            .iter()
            .map(|&d| self.end_clock[d as usize])
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Writes `i`'s events and unblocks the commits that wait for it.
    fn commit(&mut self, i: NodeIdx) -> Result<(), EngineError> {
        let iu = i as usize;
        let status = self.status_of(iu);
        let node = &self.wf.nodes[iu];
        let mut clock = self.start_clock(iu);
        let mut buf = std::mem::take(&mut self.outbox);
        let events = &mut buf;
        let res = std::mem::replace(&mut self.res[iu], Res::Done(status));
        match res {
            Res::Skipped(reason) => {
                Event::new(events, "Skipped", clock)
                    .node(&node.id)
                    .str("reason", &reason)
                    .finish();
                if self.summary {
                    self.short[iu] = reason;
                }
            }
            Res::Failed(message) => {
                Event::new(events, "Error", clock)
                    .node(&node.id)
                    .str("message", &message)
                    .finish();
                clock += 1;
                end_event(events, clock, &node.id, "failed");
                if self.summary {
                    self.short[iu] = message;
                }
            }
            Res::Task(run) => {
                let tool = match &node.kind {
                    NodeKind::Task(t) => t.tool.spec(),
                    _ => unreachable!("task result of a task node"),
                };
                self.attempts[iu] = run.attempts.len() as u32;
                if self.summary {
                    self.short[iu] = short(&run);
                }
                if let Some(d) = self.gate_decisions.get(&i) {
                    clock = approval_resolved(events, clock, &node.id, d);
                }
                task_events(events, &mut clock, &node.id, tool, &run);
                if self.spare_runs.len() < SPARE_RUNS {
                    let mut run = run;
                    run.clear();
                    self.spare_runs.push(run);
                }
            }
            Res::ForEach { runs, .. } => {
                let tool = match &node.kind {
                    NodeKind::Task(t) => t.tool.spec(),
                    _ => unreachable!("for_each on a task node"),
                };
                if let Some(d) = self.gate_decisions.get(&i) {
                    clock = approval_resolved(events, clock, &node.id, d);
                }
                Event::new(events, "Start", clock)
                    .node(&node.id)
                    .str("tool", tool.name)
                    .u64("for_each", runs.len() as u64)
                    .finish();
                for (k, run) in runs.iter().enumerate() {
                    let run = run.as_ref().expect("every instance has a result at commit");
                    clock += 1;
                    task_events(events, &mut clock, &format!("{}[{k}]", node.id), tool, run);
                    self.attempts[iu] += run.attempts.len() as u32;
                }
                clock += 1;
                Event::new(events, "End", clock)
                    .node(&node.id)
                    .str("status", status.name())
                    .u64("instances", runs.len() as u64)
                    .finish();
                if self.summary {
                    self.short[iu] = format!("{} instances", runs.len());
                }
            }
            Res::Branch { value } => {
                let NodeKind::Branch {
                    condition,
                    then,
                    otherwise,
                } = &node.kind
                else {
                    unreachable!()
                };
                let (arm, chosen, skipped) = if value {
                    ("then", then, otherwise)
                } else {
                    ("else", otherwise, then)
                };
                let ids = |v: &[NodeIdx]| {
                    v.iter()
                        .map(|&c| self.wf.nodes[c as usize].id.as_str())
                        .collect::<Vec<_>>()
                };
                Event::new(events, "BranchDecision", clock)
                    .node(&node.id)
                    .str("if", condition)
                    .bool("value", value)
                    .str("arm", arm)
                    .strs("chosen", ids(chosen))
                    .strs("skipped", ids(skipped))
                    .finish();
                clock += 1;
                end_event(events, clock, &node.id, "succeeded");
                if self.summary {
                    self.short[iu] = arm.to_string();
                }
            }
            Res::Approval(d) => {
                clock = approval_resolved(events, clock, &node.id, &d) - 1;
                clock += 1;
                let error = (!d.approve).then(|| match &d.reason {
                    Some(r) => format!("rejected: {r}"),
                    None => "rejected".to_string(),
                });
                Event::new(events, "End", clock)
                    .node(&node.id)
                    .str("status", status.name())
                    .opt_str("error", error.as_deref())
                    .finish();
                if self.summary {
                    self.short[iu] = error.unwrap_or_else(|| "approved".into());
                }
            }
            Res::Fork => {
                let NodeKind::Fork(children) = &node.kind else {
                    unreachable!()
                };
                let ids: Vec<&str> = children
                    .iter()
                    .map(|&c| self.wf.nodes[c as usize].id.as_str())
                    .collect();
                Event::new(events, "ForkSpawn", clock)
                    .node(&node.id)
                    .strs("children", ids)
                    .finish();
                clock += 1;
                end_event(events, clock, &node.id, "succeeded");
            }
            Res::Join { succeeded } => {
                let NodeKind::Join(parents) = &node.kind else {
                    unreachable!()
                };
                let ids = |v: &[NodeIdx]| {
                    v.iter()
                        .map(|&c| self.wf.nodes[c as usize].id.as_str())
                        .collect::<Vec<_>>()
                };
                Event::new(events, "JoinComplete", clock)
                    .node(&node.id)
                    .strs("joined", ids(parents))
                    .strs("succeeded", ids(&succeeded))
                    .finish();
                clock += 1;
                end_event(events, clock, &node.id, "succeeded");
            }
            Res::Pending
            | Res::Running(_)
            | Res::AwaitingApproval { .. }
            | Res::AwaitingTurn
            | Res::Done(_) => {
                unreachable!("only resolved nodes commit")
            }
        }
        self.end_clock[iu] = clock;
        self.counts[match status {
            Status::Succeeded => 0,
            Status::Failed => 1,
            Status::Skipped => 2,
            Status::Denied => 3,
        }] += 1;
        self.committed += 1;
        self.outbox = buf;
        if self.outbox.len() >= 256 * 1024 {
            self.writer.send(std::mem::take(&mut self.outbox))?;
        }
        for k in self.succ_start[iu]..self.succ_start[iu + 1] {
            let s = self.succ[k as usize];
            self.pending_commits[s as usize] -= 1;
            if self.pending_commits[s as usize] == 0 {
                self.commits.insert(self.order.rank(s));
            }
        }
        Ok(())
    }

    fn outputs(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, template) in &self.wf.outputs {
            let value = match self.renderer.template(template, None) {
                Ok(text) => Value::String(text),
                Err(e) => serde_json::json!({ "error": e }),
            };
            out.insert(name.clone(), value);
        }
        out
    }
}

/// The digest that identifies a tool invocation: SHA-256 of the compact JSON
/// `{"tool":NAME,"input":INPUT}` (in that key order), so a replay can tell a changed
/// invocation from the same one.
pub fn input_digest(tool: &str, input_json: &str) -> String {
    let mut text = String::with_capacity(input_json.len() + tool.len() + 20);
    text.push_str("{\"tool\":");
    crate::ledger::event::push_json_str(&mut text, tool);
    text.push_str(",\"input\":");
    text.push_str(input_json);
    text.push('}');
    ledger::sha256_hex(text.as_bytes())
}

/// A short, one-line form of a task's result for the summary table.
fn short(run: &TaskRun) -> String {
    if let Some(reason) = &run.skipped {
        return reason.clone();
    }
    if run.denied {
        let code = run.decisions.iter().find_map(|d| match d {
            Decision::Deny {
                code,
                enforced: true,
                ..
            } => Some(*code),
            Decision::Limit { enforced: true, .. } => Some(effective::codes::CALL_LIMIT_EXCEEDED),
            _ => None,
        });
        return format!("denied: {}", code.unwrap_or("policy"));
    }
    if let Some(e) = &run.error {
        return e.clone();
    }
    let Some(o) = run.outcome() else {
        return String::new();
    };
    if let Some(e) = &o.error {
        return e.clone();
    }
    let text = match &o.output {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let line = text.lines().next().unwrap_or_default();
    let mut s: String = line.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// The events of one task run: `Start`, then per attempt `ToolOutput` (and `Retry` before
/// the next), then `End`; or `Skipped`; or `Start`, `Error`, `End` when it could not run.
fn task_events(events: &mut String, clock: &mut u64, id: &str, tool: &ToolSpec, run: &TaskRun) {
    if let Some(reason) = &run.skipped {
        Event::new(events, "Skipped", *clock)
            .node(id)
            .str("reason", reason)
            .finish();
        return;
    }
    let mut start = Event::new(events, "Start", *clock)
        .node(id)
        .str("tool", tool.name);
    // A tool without arguments (noop) has no invocation to tell apart: no input is recorded.
    if let Some(input) = run.input.as_ref().filter(|_| !tool.keys.is_empty()) {
        let text = serde_json::to_string(input).unwrap_or_default();
        start = start
            .str("input_sha256", &input_digest(tool.name, &text))
            .raw("input", &text);
    }
    start.finish();
    for decision in &run.decisions {
        *clock += 1;
        match decision {
            Decision::Allow { checks } => {
                Event::new(events, "PolicyAllow", *clock)
                    .node(id)
                    .strs("checks", checks.iter().copied())
                    .finish();
            }
            Decision::Deny {
                code,
                detail,
                enforced,
            } => {
                Event::new(events, "PolicyDeny", *clock)
                    .node(id)
                    .str("reason", code)
                    .str("detail", detail)
                    .bool("enforced", *enforced)
                    .finish();
            }
            Decision::Limit {
                key,
                limit,
                enforced,
            } => {
                Event::new(events, "CallLimitExceeded", *clock)
                    .node(id)
                    .str("reason", effective::codes::CALL_LIMIT_EXCEEDED)
                    .str("key", key)
                    .u64("limit", *limit)
                    .bool("enforced", *enforced)
                    .finish();
            }
        }
    }
    if let Some(message) = &run.error {
        *clock += 1;
        Event::new(events, "Error", *clock)
            .node(id)
            .str("message", message)
            .finish();
    }
    for (k, attempt) in run.attempts.iter().enumerate() {
        let o = &attempt.outcome;
        // A tool without keys succeeds with nothing to record (see `ToolSpec::keys`).
        if !tool.keys.is_empty() || o.error.is_some() {
            *clock += 1;
            let mut e = Event::new(events, "ToolOutput", *clock)
                .node(id)
                .u64("attempt", k as u64 + 1)
                .json("output", &o.output);
            for (name, captured) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
                if let Some(c) = captured {
                    e = e.str(name, &c.text);
                    if c.truncated {
                        e = e
                            .u64(&format!("{name}_bytes"), c.bytes)
                            .opt_str(&format!("{name}_sha256"), c.sha256.as_deref());
                    }
                }
            }
            if let Some(code) = o.exit_code {
                e = e.i64("exit_code", i64::from(code));
            }
            e.opt_str("error", o.error.as_deref()).finish();
        }
        if let Some(delay) = attempt.delay_ms {
            *clock += 1;
            Event::new(events, "Retry", *clock)
                .node(id)
                .u64("attempt", k as u64 + 2)
                .u64("delay_ms", delay)
                .opt_str("reason", o.error.as_deref())
                .finish();
        }
    }
    for (field, count) in &run.redactions {
        *clock += 1;
        Event::new(events, "ContentRedacted", *clock)
            .node(id)
            .str("field", field)
            .u64("count", *count)
            .finish();
    }
    *clock += 1;
    let status = run.status();
    let denial = run.decisions.iter().find_map(|d| match d {
        Decision::Deny {
            code,
            enforced: true,
            ..
        } => Some(format!("denied by policy: {code}")),
        Decision::Limit { enforced: true, .. } => Some(format!(
            "denied by policy: {}",
            effective::codes::CALL_LIMIT_EXCEEDED
        )),
        _ => None,
    });
    let error = denial
        .as_deref()
        .or(run.error.as_deref())
        .or_else(|| run.outcome().and_then(|o| o.error.as_deref()));
    Event::new(events, "End", *clock)
        .node(id)
        .str("status", status.name())
        .u64("attempts", run.attempts.len() as u64)
        .opt_str("error", error)
        .finish();
}

/// Redacts a call's results in place (before they are recorded or read by another node) and
/// notes how many replacements each field got.
fn redact_results(redactor: &Redactor, run: &mut TaskRun) {
    if !redactor.is_active() {
        return;
    }
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut add = |field: &str, n: usize| {
        if n > 0 {
            match counts.iter_mut().find(|(f, _)| f == field) {
                Some((_, c)) => *c += n as u64,
                None => counts.push((field.to_string(), n as u64)),
            }
        }
    };
    for attempt in &mut run.attempts {
        let o = &mut attempt.outcome;
        add("output", redactor.redact_json(&mut o.output));
        for (field, stream) in [("stdout", &mut o.stdout), ("stderr", &mut o.stderr)] {
            if let Some(c) = stream {
                let (text, n) = redactor.redact(&c.text);
                if n > 0 {
                    c.text = text.into_owned();
                }
                add(field, n);
            }
        }
        if let Some(e) = &mut o.error {
            let (text, n) = redactor.redact(e);
            if n > 0 {
                *e = text.into_owned();
            }
            add("error", n);
        }
    }
    run.redactions.extend(counts);
}

impl Engine<'_> {
    /// The rendered input as the ledger records it: redacted.
    fn recorded_input(&self, args: Map<String, Value>, run: &mut TaskRun) -> Value {
        let mut input = Value::Object(args);
        let n = self.redactor.redact_json(&mut input);
        if n > 0 {
            run.redactions.push(("input".into(), n as u64));
        }
        input
    }

    /// The policy decisions about one call: capabilities, paths, commands, hosts and call
    /// limits. Call limits are counted here, and this runs in commit order for the calls they
    /// apply to (see `Res::AwaitingTurn`).
    fn decide(
        &mut self,
        i: NodeIdx,
        tool: &'static dyn Tool,
        args: &Map<String, Value>,
        run: &mut TaskRun,
    ) {
        let node = &self.wf.nodes[i as usize];
        let enforced = self.policy.enforcement == Enforcement::Enforce;
        let mut checks = Vec::new();
        let mut denials = Vec::new();
        let needed = CapSet::of(tool.spec().capabilities);
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
            run.decisions.push(Decision::Deny {
                code: d.reason.as_str(),
                detail: d.detail,
                enforced,
            });
            run.denied |= enforced;
        }
        let limits = self
            .policy
            .limits(tool.spec().name, &node.id, node.policy.as_deref());
        if !limits.is_empty() && !run.denied {
            checks.push("max_calls");
            for (key, limit) in limits {
                let count = self.calls.entry(key.clone()).or_insert(0);
                *count += 1;
                if *count > limit {
                    run.decisions.push(Decision::Limit {
                        key,
                        limit,
                        enforced,
                    });
                    run.denied |= enforced;
                }
            }
        }
        if run.decisions.is_empty() && !checks.is_empty() {
            run.decisions.push(Decision::Allow { checks });
        }
        self.denied |= run.denied;
    }
}

/// Whether a task's call needs a person's approval (`require_approval`).
fn gated(node: &crate::workflow::Node, policy: &Effective) -> bool {
    match &node.kind {
        NodeKind::Task(t) => !CapSet::of(t.tool.spec().capabilities)
            .intersect(policy.require_approval)
            .is_empty(),
        _ => false,
    }
}

/// Writes `ApprovalResolved` (`ApprovalRequested` took the node's first clock tick when it was
/// written) and returns the clock for the node's next event.
fn approval_resolved(events: &mut String, start: u64, id: &str, d: &ApprovalDecision) -> u64 {
    Event::new(events, "ApprovalResolved", start + 1)
        .node(id)
        .str("decision", if d.approve { "approved" } else { "rejected" })
        .opt_str("approver", d.approver.as_deref())
        .opt_str("reason", d.reason.as_deref())
        .finish();
    start + 2
}

/// The `End` of a node that has nothing to add to its status.
fn end_event(events: &mut String, clock: u64, id: &str, status: &str) {
    Event::new(events, "End", clock)
        .node(id)
        .str("status", status)
        .finish();
}
