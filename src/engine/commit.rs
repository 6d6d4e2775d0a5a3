//! The committer: turns each node's result into its ledger events, in canonical order, with
//! the logical clock; counts statuses; keeps the run summary; and hands events to the writer
//! in batches.
//!
//! A node's first event takes the clock one past the latest `End` of the nodes it waits for,
//! and each following event one more: the clock depends only on the graph and the results,
//! never on timing (see `docs/determinism.md`). An observer, when there is one, is told of each
//! commit; what it is told never reaches the events.

use super::ApprovalDecision;
use super::graph::Graph;
use super::observe::Observer;
use super::state::{PolicyCheck, TaskRun};
use crate::ledger::event::{self as ev, Counts, Event, Status, Text};
use crate::ledger::writer::Writer;
use crate::ledger::{self, FORMAT};
use crate::ledger::{EventSink as Sink, Mask};
use crate::policy::effective::{self, Effective};
use crate::policy::redact::{RedactError, Redactor};
use crate::tools::{self, ToolSpec};
use crate::workflow::{NodeIdx, Workflow};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long committed events may wait for the writer while workers run.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// A batch this large goes to the writer at once.
const BATCH_BYTES: usize = 256 * 1024;

/// Event bodies committed but not yet handed to the writer (sent in batches).
///
/// The one way the engine's events reach the ledger: every text field of every event written
/// here passes the run's redaction on its way in (`ledger/encode.rs`, [`Mask`]), whichever
/// field it is and whether or not the code that built the event thought of secrets.
#[derive(Default)]
pub(super) struct Outbox {
    text: String,
    /// `None` only while the outbox is taken out of the committer (`std::mem::take`).
    redactor: Option<Arc<Redactor>>,
    /// The MCP servers whose tools are in the ledger already: each server's list goes with the
    /// first call to it in commit order, so where it is does not depend on timing.
    listed: std::collections::BTreeSet<String>,
}

impl Outbox {
    pub fn new(redactor: Arc<Redactor>) -> Self {
        Self {
            text: String::new(),
            redactor: Some(redactor),
            listed: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The `RunStart` body, built and masked on its own (see [`run_start`]).
    pub fn push_run_start(&mut self, body: &str) {
        self.text.push_str(body);
    }
}

impl Sink for Outbox {
    #[inline]
    fn parts(&mut self) -> (&mut String, Option<&dyn Mask>) {
        let mask = self
            .redactor
            .as_deref()
            .filter(|r| r.is_active())
            .map(|r| r as &dyn Mask);
        (&mut self.text, mask)
    }
}

pub(super) struct Committer {
    writer: Writer,
    /// The run's redaction (the outbox has it too, but the outbox is taken out while a node's
    /// events are written, and the summary is kept at the same time).
    redactor: Arc<Redactor>,
    pub outbox: Outbox,
    last_flush: Instant,
    /// Each committed node's last clock value.
    end_clock: Vec<u64>,
    pub counts: Counts,
    /// Whether to keep a per-node summary (off for `--quiet` and benchmarks).
    pub summary: bool,
    /// Per node, its attempts and a one-line form of its result (when `summary`).
    pub attempts: Vec<u32>,
    pub short: Vec<String>,
    /// Told of each node's commit.
    observer: Option<Arc<dyn Observer>>,
    /// Tokens spent by the `llm` calls committed so far, per model (`RunEnd.usage`).
    pub usage: std::collections::BTreeMap<String, ev::ModelUsage>,
    /// The clock everything here comes after: 0 for a run, the clock of the event before a
    /// sub-graph's first for a loop iteration or a call (`engine/scope.rs`).
    pub base: u64,
}

impl Committer {
    pub fn new(
        writer: Writer,
        redactor: Arc<Redactor>,
        n: usize,
        summary: bool,
        observer: Option<Arc<dyn Observer>>,
    ) -> Self {
        Self {
            writer,
            outbox: Outbox::new(Arc::clone(&redactor)),
            redactor,
            last_flush: Instant::now(),
            end_clock: vec![0; n],
            counts: Counts::default(),
            summary,
            attempts: vec![0; n],
            short: if summary {
                vec![String::new(); n]
            } else {
                Vec::new()
            },
            observer,
            usage: Default::default(),
            base: 0,
        }
    }

    /// Adds the tokens of a committed call's attempts (an `llm` call's) to the run's totals;
    /// returns how many it spent.
    pub fn count_usage(&mut self, tool: &ToolSpec, run: &TaskRun) -> u64 {
        if tool.name != "llm" {
            return 0;
        }
        let mut spent = 0;
        for attempt in &run.attempts {
            if let Some((model, tokens)) = tools::llm_usage_of(&attempt.outcome.output) {
                self.usage.entry(model.to_string()).or_default().add(tokens);
                spent += tokens[2];
            }
        }
        spent
    }

    /// Lends the writer to a sub-graph's committer (everything committed so far is sent
    /// first, so the lines stay in commit order), or takes it back.
    pub fn swap_writer(&mut self, other: &mut Writer) -> std::io::Result<()> {
        self.flush()?;
        std::mem::swap(&mut self.writer, other);
        Ok(())
    }

    /// The clock of `i`'s first event.
    pub fn start_clock(&self, graph: &Graph, i: NodeIdx) -> u64 {
        graph
            .preds(i)
            .iter()
            .map(|&d| self.end_clock[d as usize])
            .fold(self.base, u64::max)
            + 1
    }

    /// The clock of a run-level event after everything committed so far.
    pub fn next_clock(&self) -> u64 {
        self.end_clock.iter().copied().fold(self.base, u64::max) + 1
    }

    /// `i` (whose id is `id`) has written its events up to `clock` and ended with `status`.
    pub fn node_done(
        &mut self,
        i: NodeIdx,
        id: &str,
        clock: u64,
        status: Status,
    ) -> std::io::Result<()> {
        self.end_clock[i as usize] = clock;
        self.counts.add(status);
        if let Some(observer) = &self.observer {
            observer.node_committed(id, status, Instant::now());
        }
        if self.outbox.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Keeps `text` as `i`'s line in the summary, redacted like the ledger.
    pub fn summarize(&mut self, i: NodeIdx, text: impl FnOnce() -> String) {
        if self.summary {
            let text = text();
            self.short[i as usize] = match self.redactor() {
                Some(r) => r.redact(&text).0.into_owned(),
                None => text,
            };
        }
    }

    /// The run's redaction, for what leaves the engine other than by the ledger (the report
    /// a command prints).
    pub fn redactor(&self) -> Option<&Redactor> {
        Some(&*self.redactor).filter(|r| r.is_active())
    }

    /// Sends what is committed to the writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.last_flush = Instant::now();
        self.writer.send(std::mem::take(&mut self.outbox.text))
    }

    /// How long the scheduler may wait for results before the outbox is due: committed
    /// events reach the writer at least every [`FLUSH_INTERVAL`] while workers run, not after
    /// every node (waking the writer per node costs more than the node when commands are
    /// short, and the writer syncs every 100 ms anyway). `None`: flush now.
    pub fn wait_budget(&self) -> Option<Duration> {
        if self.outbox.is_empty() {
            return Some(FLUSH_INTERVAL);
        }
        FLUSH_INTERVAL.checked_sub(self.last_flush.elapsed())
    }

    /// Writes a run-level event after everything committed so far and sends it.
    pub fn finish_with(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        let clock = self.next_clock();
        event.write(clock, &mut self.outbox);
        self.flush()
    }

    /// Stops the writer once everything is written and synced.
    pub fn close(self) -> std::io::Result<ledger::writer::Written> {
        self.writer.finish()
    }
}

/// The `RunStart` body.
pub fn run_start(
    workflow: &Workflow,
    inputs: &Map<String, Value>,
    seed: u64,
    effective: &Effective,
    rules: super::Rules,
) -> Result<String, RedactError> {
    // A secret's value written into the workflow or passed as an input is masked here too.
    // `redact` patterns are not applied to the workflow text: they are meant for what tools
    // produce, and masking part of the source would change the workflow a replay re-drives.
    let redactor = Redactor::new(&[], &effective.redaction().1)?;
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
    Event::RunStart(ev::RunStart {
        format: FORMAT.into(),
        kairos_version: env!("CARGO_PKG_VERSION").into(),
        workflow: workflow.name.as_str().into(),
        workflow_sha256: ledger::sha256_hex(workflow.source.as_bytes()).into(),
        workflow_source: source,
        inputs: std::borrow::Cow::Owned(inputs),
        seed,
        policy: std::borrow::Cow::Owned(policy),
        policy_sha256: ledger::sha256_hex(policy_text.as_bytes()).into(),
        rules: rules.recorded(),
    })
    .write(0, &mut out);
    Ok(out)
}

/// A short, one-line form of a task's result for the summary table.
pub(super) fn short(run: &TaskRun) -> String {
    if let Some(reason) = &run.skipped {
        return reason.clone();
    }
    if run.denied {
        return format!("denied: {}", run.denial().unwrap_or("policy"));
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
pub(super) fn task_events(
    events: &mut Outbox,
    clock: &mut u64,
    id: &str,
    tool: &ToolSpec,
    run: &TaskRun,
) {
    if let Some(reason) = &run.skipped {
        Event::Skipped {
            node: id.into(),
            reason: reason.as_str().into(),
        }
        .write(*clock, events);
        return;
    }
    // A tool without arguments (noop) has no invocation to tell apart: no input is recorded.
    let input = run
        .input
        .as_ref()
        .filter(|_| !tool.keys.is_empty())
        .map(|input| {
            let text = serde_json::to_string(input).unwrap_or_default();
            (crate::ledger::input_digest(tool.name, &text), text)
        });
    Event::Start(ev::Start {
        node: id.into(),
        tool: tool.name.into(),
        input_sha256: input.as_ref().map(|(digest, _)| digest.as_str().into()),
        input: input
            .as_ref()
            .map(|(_, text)| ev::RawJson(text.as_str().into())),
        for_each: None,
    })
    .write(*clock, events);
    check_events(events, clock, id, run);
    if let Some(message) = &run.error {
        *clock += 1;
        Event::Error {
            node: id.into(),
            message: message.as_str().into(),
        }
        .write(*clock, events);
    }
    attempt_events(events, clock, id, tool, run);
    for (field, count) in &run.redactions {
        *clock += 1;
        Event::ContentRedacted {
            node: id.into(),
            field: field.as_str().into(),
            count: *count,
        }
        .write(*clock, events);
    }
    *clock += 1;
    let denial = run.denial().map(|code| format!("denied by policy: {code}"));
    let error = denial
        .as_deref()
        .or(run.error.as_deref())
        .or_else(|| run.outcome().and_then(|o| o.error.as_deref()));
    Event::End(ev::End {
        attempts: Some(run.attempts.len() as u64),
        error: error.map(Text::from),
        ..ev::End::plain(id, run.status())
    })
    .write(*clock, events);
}

/// The `PolicyAllow`, `PolicyDeny` and `CallLimitExceeded` events of a call.
fn check_events(events: &mut Outbox, clock: &mut u64, id: &str, run: &TaskRun) {
    for decision in &run.checks {
        *clock += 1;
        let node = Text::from(id);
        match decision {
            PolicyCheck::Allow { checks } => Event::PolicyAllow {
                node,
                checks: checks.iter().map(|&c| Text::from(c)).collect(),
            },
            PolicyCheck::Deny {
                code,
                detail,
                enforced,
            } => Event::PolicyDeny(ev::PolicyDeny {
                node,
                reason: (*code).into(),
                detail: detail.as_str().into(),
                enforced: *enforced,
            }),
            PolicyCheck::Limit {
                key,
                limit,
                enforced,
            } => Event::CallLimitExceeded(ev::CallLimitExceeded {
                node,
                reason: if key == super::gate::LLM_CALLS_KEY {
                    effective::codes::BUDGET_EXCEEDED
                } else {
                    effective::codes::CALL_LIMIT_EXCEEDED
                }
                .into(),
                key: key.as_str().into(),
                limit: *limit,
                enforced: *enforced,
            }),
        }
        .write(*clock, events);
    }
}

/// Per attempt, `ToolOutput` (noop has none unless it failed) and `Retry` before the next.
fn attempt_events(events: &mut Outbox, clock: &mut u64, id: &str, tool: &ToolSpec, run: &TaskRun) {
    for (k, attempt) in run.attempts.iter().enumerate() {
        let o = &attempt.outcome;
        // A tool without keys succeeds with nothing to record (see `ToolSpec::keys`).
        if !tool.keys.is_empty() || o.error.is_some() {
            *clock += 1;
            let mcp_tools = o
                .listing
                .as_ref()
                .filter(|l| events.listed.insert(l.server.clone()))
                .map(|l| {
                    std::borrow::Cow::Owned(serde_json::json!({
                        "server": l.server,
                        "tools": l.tools,
                    }))
                });
            Event::ToolOutput(
                ev::ToolOutput {
                    exit_code: o.exit_code.map(i64::from),
                    error: o.error.as_deref().map(Text::from),
                    mcp_tools,
                    ..ev::ToolOutput::new(id, k as u64 + 1, std::borrow::Cow::Borrowed(&o.output))
                }
                .with_stream(ev::StreamName::Stdout, stream(&o.stdout))
                .with_stream(ev::StreamName::Stderr, stream(&o.stderr)),
            )
            .write(*clock, events);
        }
        if let Some(delay) = attempt.delay_ms {
            *clock += 1;
            Event::Retry(ev::Retry {
                node: id.into(),
                attempt: k as u64 + 2,
                delay_ms: delay,
                reason: o.error.as_deref().map(Text::from),
            })
            .write(*clock, events);
        }
    }
}

/// A captured stream as an event records it.
fn stream(c: &Option<tools::Captured>) -> Option<ev::Stream<'_>> {
    c.as_ref().map(|c| ev::Stream {
        text: c.text.as_str().into(),
        truncated: c
            .truncated
            .then(|| (c.bytes, c.sha256.as_deref().map(Text::from))),
    })
}

/// Writes `ApprovalResolved` (`ApprovalRequested` took the node's first clock tick when it was
/// written) and returns the clock for the node's next event.
pub(super) fn approval_resolved(
    events: &mut Outbox,
    start: u64,
    id: &str,
    d: &ApprovalDecision,
) -> u64 {
    Event::ApprovalResolved(ev::ApprovalResolved {
        node: id.into(),
        decision: ev::Verdict::of(d.approve),
        approver: d.approver.as_deref().map(Text::from),
        reason: d.reason.as_deref().map(Text::from),
    })
    .write(start + 1, events);
    start + 2
}
