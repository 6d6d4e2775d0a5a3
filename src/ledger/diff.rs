//! Comparing two ledgers (`kairos diff`): where and how two runs differ, node by node.
//!
//! [`compare`] streams both files through the shared [`reader`] in step, so each ledger's own
//! chain, sequence and format are checked as it goes (a damaged ledger is an error, never a
//! difference), and keeps only what the report needs: the two `RunStart` lines until they
//! are compared, a small summary of each node whose last event has been read in one ledger
//! but not yet in the other (matched summaries are compared and dropped at once), and the
//! differences found ([`compare_limited`] keeps only the first ones). Unified diffs are
//! computed when asked for ([`Difference::diff`]).
//!
//! # Rules
//!
//! - **Identical**: the two files have the same bytes. This is checked first (sizes, then the
//!   bytes in chunks); A is still read through the reader, so an identical pair of damaged
//!   ledgers is reported as damaged.
//! - **Equivalent**: every line has the same event body (the line without `seq` and `prev`),
//!   except `kairos_version` in `RunStart`. Ledgers of the same workflow bytes, inputs, seed,
//!   policy and tool results written by two kairos versions are equivalent; their chain hashes
//!   differ only because line 0 does. Anything else that differs (workflow, seed, inputs,
//!   policy, any node's events, the run's end) makes the ledgers differ.
//! - **First divergent seq** ([`Comparison::first_divergent_seq`]): the first `seq` whose
//!   event bodies differ (line 0: ignoring `kairos_version`), or the length of the shorter
//!   ledger when one is a prefix of the other. It is 0 whenever a `RunStart` field differs,
//!   so [`Comparison::first_divergence`] is the first line *after* `RunStart` whose bodies
//!   differ, with both events (`None` for a ledger that had ended): where the two runs
//!   started doing different things.
//! - **Run differences** come first, in this order: `workflow` (name), `workflow_sha256` (with
//!   a unified diff of the workflow sources), `seed`, `inputs.NAME` (per input, A's order, then
//!   inputs only B has), `policy_sha256` (with a unified diff of the pretty-printed policies);
//!   then the run's end: `status` (`RunEnd.status`, `paused` for a `RunPaused` trailer,
//!   `unfinished` without either), `counts`, `outputs.NAME` (with a unified diff), `pending`
//!   (the approvals a paused run waits for). `kairos_version` is not a difference; it is
//!   reported with each ledger ([`LedgerInfo::kairos_version`]).
//! - **Nodes** are aligned by their `node` field (fan-out instances are nodes of their own,
//!   `id[3]`), in the order they first appear in A, then the nodes only B has. Per node the
//!   fields compared are, in this order ([`NODE_FIELDS`]): `status` (from `End`, `skipped` from
//!   `Skipped`, `awaiting_approval` from an `ApprovalRequested` with no `End`), `skip_reason`,
//!   `branch` (the arm of a `BranchDecision`, `then` or `else`), `attempts`, `instances`
//!   (fan-out), `tool`, `input_sha256`, `input` (the rendered input), `output`, `stdout`,
//!   `stderr`, `exit_code` (the last attempt's `ToolOutput`), `error` (`End.error`, or the
//!   message of an `Error` event), `mcp_tools` (an MCP server's `tools/list`, recorded with
//!   the first call to it: a changed tool schema), and for a loop `iterations` and `ended` (from
//!   its last `LoopIteration`; its `output` is the state that line records). `stdout` is left out when `output` differs too and on
//!   both sides `output` is the trimmed `stdout` (a shell node), as it would repeat `output`.
//!   When none of these differ but the node's events do (an earlier attempt's output, a retry
//!   delay), the difference is `events`, with `{"count", "sha256"}` of the node's event
//!   bodies on each side (without `clock`, which shifts with everything upstream).
//!   A node that ran on one side only (only one ledger has it, `only_in`; or it is skipped on
//!   one side only) is compared on its result only: `status`, `skip_reason`, `branch`,
//!   `output`, `error` (an absent value being `None`), not on its inputs, tool or attempts
//!   (and on `events` if it has none of these).
//! - **Model calls**: for a node that calls `llm` on both sides, four more fields follow,
//!   read from its input and output (`calls.rs`): `prompt` (the messages as `role: content`
//!   lines), `answer` (the text, and a line per tool call), `model` (the one that answered,
//!   else the one asked for) and `tokens` (`15 (12 in, 3 out)`, B with its change: `, +4`).
//! - **Unified diffs** (`--- A`/`+++ B`, two lines of context) accompany differences of text:
//!   `output`, `stdout`, `stderr`, `prompt`, `answer` and run `outputs.NAME` when both values are present and are
//!   strings (or lists/objects, pretty-printed), node `input` (pretty-printed JSON), the
//!   workflow source (on `workflow_sha256`) and the policy (on `policy_sha256`). Numbers and
//!   booleans get none.

use super::calls;
use super::event::{self, Event, Kind, Status};
use super::reader::{self, Line, ReadError};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::time::Duration;

/// The outcome of comparing two ledgers.
#[derive(Debug)]
pub struct Comparison {
    /// The two files have the same bytes.
    pub identical: bool,
    pub a: LedgerInfo,
    pub b: LedgerInfo,
    /// Differences of the run as a whole: `RunStart` fields first, then the run's end.
    pub run: Vec<Difference>,
    /// Nodes that differ, aligned as described in the module documentation (with
    /// [`compare_limited`], the first of them).
    pub nodes: Vec<NodeDiff>,
    /// How many nodes differ (can be more than `nodes` holds).
    pub nodes_differing: u64,
    /// The first line whose event bodies differ (0 when the `RunStart` lines do).
    pub first_divergent_seq: Option<u64>,
    /// The first line after `RunStart` whose event bodies differ, with both events.
    pub first_divergence: Option<Divergence>,
}

impl Comparison {
    /// Equivalent: every event body is the same (ignoring `kairos_version`).
    pub fn equivalent(&self) -> bool {
        self.first_divergent_seq.is_none() && self.run.is_empty() && self.nodes.is_empty()
    }
}

/// One ledger of the pair.
#[derive(Debug)]
pub struct LedgerInfo {
    pub path: String,
    /// Number of lines (events).
    pub events: u64,
    /// SHA-256 of the last line (the chain head).
    pub head: String,
    /// `RunStart.kairos_version`, when it is a string.
    pub kairos_version: Option<String>,
}

/// One field that differs. `a`/`b` are `None` where the ledger has no such value.
#[derive(Debug)]
pub struct Difference {
    pub field: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
    /// What [`Difference::diff`] compares.
    texts: Texts,
}

/// The texts behind a difference's unified diff.
#[derive(Debug)]
enum Texts {
    None,
    /// `a` and `b` themselves (strings; lists and objects pretty-printed).
    Values,
    /// Texts that are not the values shown (the workflow sources, the policies).
    Own(String, String),
}

impl Difference {
    fn new(field: impl Into<String>, a: Option<Value>, b: Option<Value>) -> Self {
        Self {
            field: field.into(),
            a,
            b,
            texts: Texts::None,
        }
    }

    /// Whether [`Difference::diff`] may give a diff (cheap, computes nothing).
    pub fn has_diff(&self) -> bool {
        match &self.texts {
            Texts::None => false,
            Texts::Values => is_text(self.a.as_ref()) && is_text(self.b.as_ref()),
            Texts::Own(..) => true,
        }
    }

    /// A unified diff (`--- A`, `+++ B`, two lines of context) for text values; computed on
    /// each call, so a report that shows few diffs computes few.
    pub fn diff(&self) -> Option<String> {
        match &self.texts {
            Texts::None => None,
            Texts::Values => unified(&as_text(self.a.as_ref()?)?, &as_text(self.b.as_ref()?)?),
            Texts::Own(a, b) => unified(a, b),
        }
    }
}

/// Which ledger of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    A,
    B,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::A => "a",
            Which::B => "b",
        }
    }
}

/// A node that differs.
#[derive(Debug)]
pub struct NodeDiff {
    pub node: String,
    /// Set when only one ledger has the node.
    pub only_in: Option<Which>,
    pub differences: Vec<Difference>,
    /// (first appearance in A, first appearance in B); sorts the report.
    order: (u64, u64),
}

/// The first line after `RunStart` whose event bodies differ; the events are bodies as
/// [`reader::body`] gives them (`None`: that ledger had ended).
#[derive(Debug)]
pub struct Divergence {
    pub seq: u64,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// The node fields compared, in report order.
pub const NODE_FIELDS: [&str; 16] = [
    "status",
    "skip_reason",
    "branch",
    "attempts",
    "instances",
    "tool",
    "input_sha256",
    "input",
    "output",
    "stdout",
    "stderr",
    "exit_code",
    "error",
    "mcp_tools",
    "iterations",
    "ended",
];
const STATUS: usize = 0;
const SKIP_REASON: usize = 1;
const BRANCH: usize = 2;
const ATTEMPTS: usize = 3;
const INSTANCES: usize = 4;
const TOOL: usize = 5;
const INPUT_SHA256: usize = 6;
const INPUT: usize = 7;
const OUTPUT: usize = 8;
const STDOUT: usize = 9;
const STDERR: usize = 10;
const EXIT_CODE: usize = 11;
const ERROR: usize = 12;
const MCP_TOOLS: usize = 13;
const ITERATIONS: usize = 14;
const ENDED: usize = 15;
/// Fields whose differences get a unified diff.
const TEXTUAL: [usize; 5] = [INPUT, OUTPUT, STDOUT, STDERR, MCP_TOOLS];
/// The fields compared for a node that ran on one side only (only there, or skipped on the
/// other side).
const RESULT: [usize; 6] = [STATUS, SKIP_REASON, BRANCH, OUTPUT, ERROR, ITERATIONS];

/// How long one unified diff may take before it settles for an approximation.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// Compares the ledgers at `a` and `b`. A ledger that cannot be read, or whose chain,
/// sequence or format is wrong, is an error (the first one met, reading both in step).
pub fn compare(a: &Path, b: &Path) -> Result<Comparison, ReadError> {
    compare_limited(a, b, usize::MAX)
}

/// [`compare`], keeping only the first `max_nodes` nodes that differ (in report order), so
/// that a report that shows a few does not hold them all; [`Comparison::nodes_differing`]
/// counts them all.
pub fn compare_limited(a: &Path, b: &Path, max_nodes: usize) -> Result<Comparison, ReadError> {
    let mut ra = reader::open(a)?;
    let mut rb = reader::open(b)?;
    if same_bytes(a, b)? {
        return identical(&mut ra, a, b);
    }

    let mut sides = [Side::default(), Side::default()];
    let mut versions = [None, None];
    let mut run = Vec::new();
    let mut nodes = Kept::new(max_nodes);
    let mut start_differs = false;
    let mut divergence: Option<Divergence> = None;
    let mut ended = [false, false];
    loop {
        let la = if ended[0] { None } else { ra.next_line()? };
        let lb = if ended[1] { None } else { rb.next_line()? };
        ended = [la.is_none(), lb.is_none()];
        let (la, lb) = match (la, lb) {
            (None, None) => break,
            (Some(x), Some(y)) if x.seq == 0 => {
                // Both line 0s (the reader has checked they are RunStart lines).
                let (mut sa, mut sb) = (run_start(&x)?, run_start(&y)?);
                versions = [
                    Some(std::mem::take(&mut sa.kairos_version).into_owned()),
                    Some(std::mem::take(&mut sb.kairos_version).into_owned()),
                ];
                start_differs = x.head.clock != y.head.clock || sa != sb;
                run_start_differences(&mut run, sa, sb);
                continue;
            }
            pair => pair,
        };
        if divergence.is_none() {
            divergence = divergence_at(la.as_ref(), lb.as_ref());
        }
        for (k, line) in [la, lb].into_iter().enumerate() {
            if let Some(line) = line {
                take_line(&mut sides, k, &line, &mut nodes)?;
            }
        }
    }

    // Nodes not matched while streaming: unfinished ones, and those only one ledger has.
    let [trailer_a, trailer_b] = add_unmatched(sides, &mut nodes);
    let nodes_differing = nodes.total;
    let nodes = nodes.into_sorted();
    run_end_differences(&mut run, trailer_a, trailer_b);

    let [va, vb] = versions;
    Ok(Comparison {
        identical: false,
        a: ledger_info(a, &ra, va),
        b: ledger_info(b, &rb, vb),
        run,
        nodes,
        nodes_differing,
        first_divergent_seq: if start_differs {
            Some(0)
        } else {
            divergence.as_ref().map(|d| d.seq)
        },
        first_divergence: divergence,
    })
}

/// The comparison of two files with the same bytes: reading A checks both.
fn identical<R: BufRead>(
    ra: &mut reader::Reader<R>,
    a: &Path,
    b: &Path,
) -> Result<Comparison, ReadError> {
    // One pass of the reader checks both.
    let mut version = None;
    while let Some(line) = ra.next_line()? {
        if line.seq == 0 {
            version = Some(run_start(&line)?.kairos_version.into_owned());
        } else {
            line.kind()?;
        }
    }
    let info = |path: &Path| LedgerInfo {
        path: path.display().to_string(),
        events: ra.lines(),
        head: ra.head().to_string(),
        kairos_version: version.clone(),
    };
    Ok(Comparison {
        identical: true,
        a: info(a),
        b: info(b),
        run: Vec::new(),
        nodes: Vec::new(),
        nodes_differing: 0,
        first_divergent_seq: None,
        first_divergence: None,
    })
}

/// The divergence at a pair of lines (after `RunStart`), when their event bodies differ.
fn divergence_at(la: Option<&Line<'_>>, lb: Option<&Line<'_>>) -> Option<Divergence> {
    let ba = la.map(|l| reader::body(l.text));
    let bb = lb.map(|l| reader::body(l.text));
    if ba != bb {
        let seq = la.or(lb).map_or(0, |l| l.seq);
        return Some(Divergence {
            seq,
            a: ba.map(str::to_string),
            b: bb.map(str::to_string),
        });
    }
    None
}

/// Takes in a line of ledger `k` (0: A, 1: B): the node whose last event it is is compared
/// with the other ledger's summary when that has been read, or waits for it.
fn take_line(
    sides: &mut [Side; 2],
    k: usize,
    line: &Line<'_>,
    nodes: &mut Kept,
) -> Result<(), ReadError> {
    let [mine, theirs] = if k == 0 {
        let [x, y] = sides;
        [x, y]
    } else {
        let [x, y] = sides;
        [y, x]
    };
    let Some((id, summary)) = mine.process(line)? else {
        return Ok(());
    };
    match theirs.done.remove(&id) {
        Some(other) => {
            let (sa, sb) = if k == 0 {
                (summary, other)
            } else {
                (other, summary)
            };
            nodes.add(compare_nodes(id, Some(sa), Some(sb)));
        }
        None => {
            mine.done.insert(id, summary);
        }
    }
    Ok(())
}

/// Compares the nodes not matched while streaming (A's order, then those only B has);
/// returns how each run ended.
fn add_unmatched(sides: [Side; 2], nodes: &mut Kept) -> [Trailer; 2] {
    let [side_a, side_b] = sides;
    let mut rest_b: HashMap<String, Summary> = side_b.open.into_iter().chain(side_b.done).collect();
    for (id, sa) in side_a.open.into_iter().chain(side_a.done) {
        let sb = rest_b.remove(&id);
        nodes.add(compare_nodes(id, Some(sa), sb));
    }
    for (id, sb) in rest_b {
        nodes.add(compare_nodes(id, None, Some(sb)));
    }
    [side_a.trailer, side_b.trailer]
}

/// What the report says of a ledger read to its end.
fn ledger_info<R: BufRead>(
    path: &Path,
    reader: &reader::Reader<R>,
    kairos_version: Option<String>,
) -> LedgerInfo {
    LedgerInfo {
        path: path.display().to_string(),
        events: reader.lines(),
        head: reader.head().to_string(),
        kairos_version,
    }
}

/// The differing nodes kept for the report: the first `max` in report order.
struct Kept {
    heap: std::collections::BinaryHeap<ByOrder>,
    max: usize,
    total: u64,
}

/// A node difference ordered by its place in the report.
struct ByOrder(NodeDiff);

impl PartialEq for ByOrder {
    fn eq(&self, other: &Self) -> bool {
        self.0.order == other.0.order
    }
}
impl Eq for ByOrder {}
impl PartialOrd for ByOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.order.cmp(&other.0.order)
    }
}

impl Kept {
    fn new(max: usize) -> Self {
        Self {
            heap: std::collections::BinaryHeap::new(),
            max,
            total: 0,
        }
    }

    fn add(&mut self, node: Option<NodeDiff>) {
        let Some(node) = node else { return };
        self.total += 1;
        self.heap.push(ByOrder(node));
        if self.heap.len() > self.max {
            // The last in report order goes.
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<NodeDiff> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|n| n.0)
            .collect()
    }
}

/// Whether the two files have the same bytes (streaming, stops at the first difference).
fn same_bytes(a: &Path, b: &Path) -> Result<bool, ReadError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReadError::Io { path, source }
    };
    let mut fa = std::fs::File::open(a).map_err(io(a))?;
    let mut fb = std::fs::File::open(b).map_err(io(b))?;
    let (ma, mb) = (fa.metadata().map_err(io(a))?, fb.metadata().map_err(io(b))?);
    if !ma.is_file() || !mb.is_file() || ma.len() != mb.len() {
        // The reader reports what is not a regular file; a size difference is a difference.
        return Ok(false);
    }
    let mut ba = vec![0u8; 1 << 16];
    let mut bb = vec![0u8; 1 << 16];
    loop {
        let na = fill(&mut fa, &mut ba).map_err(io(a))?;
        let nb = fill(&mut fb, &mut bb).map_err(io(b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn fill(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Line 0 read whole (the reader has checked it is a `RunStart`).
fn run_start<'a>(line: &Line<'a>) -> Result<event::RunStart<'a>, ReadError> {
    match line.event()? {
        Event::RunStart(start) => Ok(start),
        _ => unreachable!("the reader checks that line 0 is a RunStart"),
    }
}

/// A text field as a value to compare.
fn text(t: event::Text<'_>) -> Value {
    Value::String(t.into_owned())
}

/// What one ledger says about one node, kept until the other ledger's is read.
struct Summary {
    /// Index of the node's first appearance in its ledger.
    order: u64,
    values: [Option<Value>; NODE_FIELDS.len()],
    events: u64,
    /// SHA-256 of the node's event bodies without `clock`.
    hasher: Sha256,
}

impl Summary {
    fn new(order: u64) -> Self {
        Self {
            order,
            values: Default::default(),
            events: 0,
            hasher: Sha256::new(),
        }
    }

    fn events_value(&self) -> Value {
        serde_json::json!({
            "count": self.events,
            "sha256": hex::encode(self.hasher.clone().finalize()),
        })
    }

    fn skipped(&self) -> bool {
        self.values[STATUS].as_ref().and_then(Value::as_str) == Some("skipped")
    }

    /// Whether `stdout` says nothing `output` does not: the output is the trimmed stdout.
    fn stdout_is_output(&self) -> bool {
        match (&self.values[OUTPUT], &self.values[STDOUT]) {
            (_, None) => true,
            (Some(Value::String(o)), Some(Value::String(s))) => o == s.trim(),
            _ => false,
        }
    }
}

/// How the run ended, from its last line.
#[derive(Default)]
struct Trailer {
    status: Option<Value>,
    counts: Option<Value>,
    outputs: Option<Value>,
    pending: Option<Value>,
}

/// The state kept for one ledger while streaming.
#[derive(Default)]
struct Side {
    /// Nodes whose last event has not been read yet.
    open: HashMap<String, Summary>,
    /// Nodes read completely, waiting for the other ledger's summary.
    done: HashMap<String, Summary>,
    next_order: u64,
    trailer: Trailer,
}

impl Side {
    /// Takes in one line (seq > 0); returns a node's summary once its last event (`End` or
    /// `Skipped`) has been read.
    fn process(&mut self, line: &Line<'_>) -> Result<Option<(String, Summary)>, ReadError> {
        let kind = line.kind()?;
        match kind {
            Kind::RunEnd => {
                if let Event::RunEnd(e) = line.event()? {
                    self.trailer = Trailer {
                        status: Some(Value::from(e.status.name())),
                        counts: Some(e.counts.to_json()),
                        outputs: Some(e.outputs.into_owned()),
                        pending: None,
                    };
                }
                return Ok(None);
            }
            Kind::RunPaused => {
                if let Event::RunPaused(e) = line.event()? {
                    self.trailer = Trailer {
                        status: Some(Value::from("paused")),
                        counts: None,
                        outputs: None,
                        pending: Some(e.pending.into_iter().map(text).collect()),
                    };
                }
                return Ok(None);
            }
            _ => {}
        }
        let Some(id) = line.head.node else {
            return Ok(None);
        };
        if !self.open.contains_key(id) {
            // A node seen again after its end (not written by kairos today) is reopened.
            let summary = match self.done.remove(id) {
                Some(s) => s,
                None => {
                    self.next_order += 1;
                    Summary::new(self.next_order - 1)
                }
            };
            self.open.insert(id.to_string(), summary);
        }
        let Some(s) = self.open.get_mut(id) else {
            return Ok(None);
        };
        s.events += 1;
        let (before, after) = without_clock(reader::body(line.text));
        s.hasher.update(before.as_bytes());
        s.hasher.update(after.as_bytes());
        let relevant = matches!(
            kind,
            Kind::Start
                | Kind::ToolOutput
                | Kind::End
                | Kind::Error
                | Kind::Skipped
                | Kind::BranchDecision
                | Kind::ApprovalRequested
                | Kind::LoopIteration
        );
        if !relevant {
            return Ok(None);
        }
        let v = &mut s.values;
        // A field the event does not have leaves what an earlier event of the node set.
        let mut set = |i: usize, x: Option<Value>| {
            if x.is_some() {
                v[i] = x;
            }
        };
        match line.event()? {
            Event::Start(e) => {
                set(TOOL, Some(text(e.tool)));
                set(INPUT_SHA256, e.input_sha256.map(text));
                set(INPUT, e.input.map(|json| json.to_value()));
                set(INSTANCES, e.for_each.map(Value::from));
            }
            Event::ToolOutput(e) => {
                // An MCP server's tools, recorded with the node's first attempt.
                set(MCP_TOOLS, e.mcp_tools.map(std::borrow::Cow::into_owned));
                // The last attempt's result counts: nothing an earlier attempt left stays.
                v[OUTPUT] = Some(e.output.into_owned());
                v[STDOUT] = e.stdout.map(text);
                v[STDERR] = e.stderr.map(text);
                v[EXIT_CODE] = e.exit_code.map(Value::from);
            }
            Event::Error { message, .. } => set(ERROR, Some(text(message))),
            Event::BranchDecision(e) => set(BRANCH, Some(Value::from(e.arm.name()))),
            Event::LoopIteration(e) => {
                // The loop's state as of its last iteration is what it gives.
                set(OUTPUT, Some(e.state.into_owned()));
                set(ITERATIONS, Some(Value::from(e.iteration)));
                set(ENDED, e.ended.map(|x| Value::from(x.name())));
            }
            Event::ApprovalRequested { .. } => set(STATUS, Some(Value::from("awaiting_approval"))),
            Event::Skipped { reason, .. } => {
                set(SKIP_REASON, Some(text(reason)));
                set(STATUS, Some(Value::from(Status::Skipped.name())));
            }
            Event::End(e) => {
                set(STATUS, Some(Value::from(e.status.name())));
                set(ATTEMPTS, e.attempts.map(Value::from));
                set(INSTANCES, e.instances.map(Value::from));
                set(ERROR, e.error.map(text));
            }
            _ => {}
        }
        if matches!(kind, Kind::End | Kind::Skipped) {
            return Ok(self.open.remove_entry(id));
        }
        Ok(None)
    }
}

/// Splits a body around its `"clock":N` so the rest can be hashed without it.
fn without_clock(body: &str) -> (&str, &str) {
    const KEY: &str = ",\"clock\":";
    match body.find(KEY) {
        Some(i) => {
            let rest = &body[i + KEY.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            (&body[..i], &rest[digits..])
        }
        None => (body, ""),
    }
}

/// Compares one node's summaries; `None` when they do not differ.
fn compare_nodes(id: String, a: Option<Summary>, b: Option<Summary>) -> Option<NodeDiff> {
    let order = (
        a.as_ref().map_or(u64::MAX, |s| s.order),
        b.as_ref().map_or(0, |s| s.order),
    );
    let only_in = match (&a, &b) {
        (Some(_), None) => Some(Which::A),
        (None, Some(_)) => Some(Which::B),
        _ => None,
    };
    let empty = || Summary::new(0);
    let (a, b) = (a.unwrap_or_else(empty), b.unwrap_or_else(empty));
    // Where the node ran on one side only, what it did there is the difference: its result,
    // not its inputs, tool or attempts compared with nothing.
    let one_sided = only_in.is_some() || a.skipped() != b.skipped();
    let skip_stdout =
        a.stdout_is_output() && b.stdout_is_output() && a.values[OUTPUT] != b.values[OUTPUT];
    let (ea, eb) = (a.events_value(), b.events_value());
    let llm = if one_sided {
        Vec::new()
    } else {
        llm_differences(&a, &b)
    };
    let mut differences = Vec::new();
    for (i, (x, y)) in a.values.into_iter().zip(b.values).enumerate() {
        if x == y || (i == STDOUT && skip_stdout) || (one_sided && !RESULT.contains(&i)) {
            continue;
        }
        let textual = only_in.is_none() && TEXTUAL.contains(&i);
        differences.push(difference(NODE_FIELDS[i].to_string(), x, y, textual));
    }
    differences.extend(llm);
    if differences.is_empty() && ea != eb {
        let side = |which, v: Value| (only_in != Some(which)).then_some(v);
        differences.push(Difference::new(
            "events",
            side(Which::B, ea),
            side(Which::A, eb),
        ));
    }
    (!differences.is_empty()).then_some(NodeDiff {
        node: id,
        only_in,
        differences,
        order,
    })
}

/// The differences of two `llm` calls as people read them (`calls.rs`): `prompt` and
/// `answer` as text with a unified diff, `model`, and `tokens` with the change.
fn llm_differences(a: &Summary, b: &Summary) -> Vec<Difference> {
    let is_llm = |s: &Summary| s.values[TOOL].as_ref().and_then(Value::as_str) == Some("llm");
    if !is_llm(a) || !is_llm(b) {
        return Vec::new();
    }
    let (ia, ib) = (a.values[INPUT].as_ref(), b.values[INPUT].as_ref());
    let (oa, ob) = (a.values[OUTPUT].as_ref(), b.values[OUTPUT].as_ref());
    let mut out = Vec::new();
    let mut textual = |field: &str, x: Option<String>, y: Option<String>| {
        if x != y {
            out.push(difference(
                field.into(),
                x.map(Value::from),
                y.map(Value::from),
                true,
            ));
        }
    };
    textual(
        "prompt",
        ia.and_then(calls::prompt_text),
        ib.and_then(calls::prompt_text),
    );
    textual(
        "answer",
        oa.and_then(calls::answer_text),
        ob.and_then(calls::answer_text),
    );
    let (ma, mb) = (calls::model(ia, oa), calls::model(ib, ob));
    if ma != mb {
        out.push(Difference::new("model", ma, mb));
    }
    let (ta, tb) = (calls::tokens(oa), calls::tokens(ob));
    if ta != tb {
        out.push(Difference::new(
            "tokens",
            ta.map(|t| calls::tokens_text(t, None).into()),
            tb.map(|t| calls::tokens_text(t, ta).into()),
        ));
    }
    out
}

/// A difference of two values, with a unified diff when `textual` and both are text.
fn difference(field: String, a: Option<Value>, b: Option<Value>, textual: bool) -> Difference {
    let mut d = Difference::new(field, a, b);
    if textual {
        d.texts = Texts::Values;
    }
    d
}

fn is_text(v: Option<&Value>) -> bool {
    matches!(
        v,
        Some(Value::String(_) | Value::Array(_) | Value::Object(_))
    )
}

/// A value as text for a line diff: a string as it is, a list or object pretty-printed.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => serde_json::to_string_pretty(v).ok(),
        _ => None,
    }
}

/// A unified diff of two texts (`None` when the line diff finds nothing to show).
pub fn unified(a: &str, b: &str) -> Option<String> {
    // Texts that both lack a final newline (most values) get one, so the diff does not say
    // `\ No newline at end of file` for both; when only one lacks it, that is shown.
    let (a, b) = if a.ends_with('\n') || b.ends_with('\n') {
        (a.to_string(), b.to_string())
    } else {
        (format!("{a}\n"), format!("{b}\n"))
    };
    let (a, b) = (a.as_str(), b.as_str());
    let diff = similar::TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(a, b);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header("A", "B")
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// Differences of the two `RunStart` lines (`kairos_version` already taken out). `format` is
/// not compared: the reader has checked that both are the one this kairos reads.
fn run_start_differences(
    out: &mut Vec<Difference>,
    a: event::RunStart<'_>,
    b: event::RunStart<'_>,
) {
    fn plain(out: &mut Vec<Difference>, key: &str, x: Value, y: Value) {
        if x != y {
            out.push(difference(key.to_string(), Some(x), Some(y), false));
        }
    }
    plain(out, "workflow", text(a.workflow), text(b.workflow));
    if a.workflow_sha256 != b.workflow_sha256 || a.workflow_source != b.workflow_source {
        let mut d = Difference::new(
            "workflow_sha256",
            Some(text(a.workflow_sha256)),
            Some(text(b.workflow_sha256)),
        );
        d.texts = Texts::Own(
            a.workflow_source.into_owned(),
            b.workflow_source.into_owned(),
        );
        out.push(d);
    }
    plain(out, "seed", Value::from(a.seed), Value::from(b.seed));
    keyed(
        out,
        "inputs",
        Some(a.inputs.into_owned()),
        Some(b.inputs.into_owned()),
        false,
    );
    if a.policy_sha256 != b.policy_sha256 || a.policy != b.policy {
        let mut d = Difference::new(
            "policy_sha256",
            Some(text(a.policy_sha256)),
            Some(text(b.policy_sha256)),
        );
        if let (Some(x), Some(y)) = (as_text(&a.policy), as_text(&b.policy)) {
            d.texts = Texts::Own(x, y);
        }
        out.push(d);
    }
}

/// Compares two objects key by key as `PREFIX.KEY` (A's keys first, then B's own); values
/// that are not both objects are compared whole as `PREFIX`.
fn keyed(
    out: &mut Vec<Difference>,
    prefix: &str,
    a: Option<Value>,
    b: Option<Value>,
    textual: bool,
) {
    match (a, b) {
        (Some(Value::Object(mut x)), Some(Value::Object(mut y))) => {
            let keys: Vec<String> = x.keys().cloned().collect();
            for key in keys {
                let (va, vb) = (x.remove(&key), y.remove(&key));
                if va != vb {
                    out.push(difference(format!("{prefix}.{key}"), va, vb, textual));
                }
            }
            for (key, vb) in y {
                out.push(difference(
                    format!("{prefix}.{key}"),
                    None,
                    Some(vb),
                    textual,
                ));
            }
        }
        (x, y) => {
            if x != y {
                out.push(difference(prefix.to_string(), x, y, textual));
            }
        }
    }
}

/// Differences of how the two runs ended.
fn run_end_differences(out: &mut Vec<Difference>, a: Trailer, b: Trailer) {
    let unfinished = || Some(Value::from("unfinished"));
    let (sa, sb) = (a.status.or_else(unfinished), b.status.or_else(unfinished));
    if sa != sb {
        out.push(difference("status".into(), sa, sb, false));
    }
    if a.counts != b.counts {
        out.push(difference("counts".into(), a.counts, b.counts, false));
    }
    keyed(out, "outputs", a.outputs, b.outputs, true);
    if a.pending != b.pending {
        out.push(difference("pending".into(), a.pending, b.pending, false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_left_out_of_the_node_digest() {
        assert_eq!(
            without_clock("\"event\":\"End\",\"clock\":12,\"node\":\"a\""),
            ("\"event\":\"End\"", ",\"node\":\"a\"")
        );
        assert_eq!(
            without_clock("\"event\":\"End\""),
            ("\"event\":\"End\"", "")
        );
    }

    #[test]
    fn unified_diff_of_single_lines() {
        let d = unified("hello alice", "hello bob").unwrap();
        assert!(d.starts_with("--- A\n+++ B\n"), "{d}");
        assert!(d.contains("-hello alice\n+hello bob\n"), "{d}");
        assert_eq!(unified("same\n", "same\n"), None);
    }
}
