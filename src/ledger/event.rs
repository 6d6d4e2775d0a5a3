//! Every ledger event and its fields, in one place (the format is described in
//! `docs/ledger.md`).
//!
//! The engine builds an [`Event`] and [`Event::write`]s it; every reader (replay, resume,
//! state, diff, signing) gets the same type back from [`Event::parse`]. A field renamed or
//! reordered here changes both sides at once, and the round-trip tests below catch a writer
//! and a reader that disagree.
//!
//! Writing goes through the byte encoder of `ledger/encode.rs`, not through serde, so lines are
//! built without a JSON tree and their bytes never change for the same content: fields are
//! written in the order they are declared here, optional fields only when present.
//!
//! Strings borrow from the line where they can ([`Cow`]), so reading a ledger does not copy
//! what it does not keep.
//!
//! The same types derive `JsonSchema`: the schema of a ledger line
//! (`schemas/ledger-line.schema.json`, built in `ledger/schema.rs`) comes from them, and a test
//! below checks that it names exactly the fields [`Event::write`] writes.

use super::encode::{Body, Sink};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// Text that borrows from the line when it has no escapes.
pub type Text<'a> = Cow<'a, str>;

/// A node's final status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Succeeded,
    Failed,
    Skipped,
    Denied,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Succeeded,
        Status::Failed,
        Status::Skipped,
        Status::Denied,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Denied => "denied",
        }
    }
}

/// How a finished run ended (`RunEnd.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    /// An enforced policy denied a call.
    Denied,
}

impl RunOutcome {
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Denied => "denied",
        }
    }
}

/// Node counts by status, in `RunEnd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Counts {
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub denied: u64,
}

impl Counts {
    pub fn add(&mut self, status: Status) {
        *self.get_mut(status) += 1;
    }

    pub fn get(&self, status: Status) -> u64 {
        match status {
            Status::Succeeded => self.succeeded,
            Status::Failed => self.failed,
            Status::Skipped => self.skipped,
            Status::Denied => self.denied,
        }
    }

    fn get_mut(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::Succeeded => &mut self.succeeded,
            Status::Failed => &mut self.failed,
            Status::Skipped => &mut self.skipped,
            Status::Denied => &mut self.denied,
        }
    }

    /// The counts as a JSON object, keys in status order.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for s in Status::ALL {
            map.insert(s.name().into(), Value::from(self.get(s)));
        }
        Value::Object(map)
    }
}

/// Which arm a branch chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    Then,
    Else,
}

impl Arm {
    pub fn of(value: bool) -> Self {
        if value { Arm::Then } else { Arm::Else }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arm::Then => "then",
            Arm::Else => "else",
        }
    }
}

/// Why a loop ended (`LoopIteration.ended`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoopEnd {
    /// `until` was true.
    Until,
    /// `max_iterations` ran without `until` becoming true.
    MaxIterations,
    /// A node of the body failed, or `update` or `until` could not be evaluated.
    Failed,
}

impl LoopEnd {
    pub fn name(self) -> &'static str {
        match self {
            LoopEnd::Until => "until",
            LoopEnd::MaxIterations => "max_iterations",
            LoopEnd::Failed => "failed",
        }
    }
}

/// A person's decision (`ApprovalResolved.decision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approved,
    Rejected,
}

impl Verdict {
    pub fn of(approve: bool) -> Self {
        if approve {
            Verdict::Approved
        } else {
            Verdict::Rejected
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Rejected => "rejected",
        }
    }
}

/// Why a run stopped early (`RunPaused.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PauseReason {
    /// Waiting for a person's decision.
    Approval,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

impl PauseReason {
    pub fn name(self) -> &'static str {
        match self {
            PauseReason::Approval => "approval",
            PauseReason::Interrupted => "interrupted",
        }
    }
}

/// JSON text written into the line as it is (a call's rendered input, whose digest is taken
/// over exactly these bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson<'a>(pub Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de serde_json::value::RawValue>::deserialize(d)?;
        Ok(RawJson(Cow::Borrowed(raw.get())))
    }
}

/// Any JSON value: the text is written into the line as it is.
impl JsonSchema for RawJson<'_> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "RawJson".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "description": "A JSON value, written as it was rendered." })
    }
}

impl RawJson<'_> {
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// `RunStart`, line 0: what the run was asked to do.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RunStart<'a> {
    #[serde(borrow)]
    pub format: Text<'a>,
    #[serde(borrow)]
    pub kairos_version: Text<'a>,
    #[serde(borrow)]
    pub workflow: Text<'a>,
    #[serde(borrow)]
    pub workflow_sha256: Text<'a>,
    /// The source text, with secret values masked.
    #[serde(borrow)]
    pub workflow_source: Text<'a>,
    pub inputs: Cow<'a, Value>,
    pub seed: u64,
    /// The effective policy (with the organisation policy's source, when there is one).
    pub policy: Cow<'a, Value>,
    #[serde(borrow)]
    pub policy_sha256: Text<'a>,
    /// The revision of run semantics the run follows (see `engine::Rules`); absent in
    /// ledgers of the first release.
    #[serde(default)]
    pub rules: Option<u64>,
}

/// The key of `RunStart.policy` that holds the organisation policy's text, when the run had
/// one.
pub const ORGANISATION_SOURCE: &str = "organisation_source";

impl RunStart<'_> {
    /// The organisation policy's text as the run recorded it: with it, a replay rebuilds the
    /// effective policy the run had, whatever file it came from.
    pub fn organisation_source(&self) -> Option<&str> {
        self.policy.get(ORGANISATION_SOURCE).and_then(Value::as_str)
    }
}

/// A call's rendered input and its digest (see `input_digest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input<'a> {
    pub sha256: Text<'a>,
    pub json: RawJson<'a>,
}

/// `Start`: a task (or one `for_each` instance) begins; a fan-out node's own `Start` has
/// `for_each` (the number of instances) and no input.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Start<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    #[serde(borrow)]
    pub tool: Text<'a>,
    #[serde(borrow, default)]
    pub input_sha256: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub input: Option<RawJson<'a>>,
    #[serde(default)]
    pub for_each: Option<u64>,
}

impl<'a> Start<'a> {
    pub fn input(&self) -> Option<Input<'a>> {
        match (&self.input_sha256, &self.input) {
            (Some(sha256), Some(json)) => Some(Input {
                sha256: sha256.clone(),
                json: json.clone(),
            }),
            _ => None,
        }
    }
}

/// A captured output stream as the ledger records it: the text kept, and for a stream past the
/// capture limit its full size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream<'a> {
    pub text: Text<'a>,
    pub truncated: Option<(u64, Option<Text<'a>>)>,
}

/// `ToolOutput`: one attempt's result.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ToolOutput<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    pub attempt: u64,
    #[serde(default)]
    pub output: Cow<'a, Value>,
    /// An MCP server's tools (`{"server": NAME, "tools": [...]}`), with the first call to it
    /// that the run commits.
    #[serde(default)]
    pub mcp_tools: Option<Cow<'a, Value>>,
    #[serde(borrow, default)]
    pub stdout: Option<Text<'a>>,
    #[serde(default)]
    pub stdout_bytes: Option<u64>,
    #[serde(borrow, default)]
    pub stdout_sha256: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub stderr: Option<Text<'a>>,
    #[serde(default)]
    pub stderr_bytes: Option<u64>,
    #[serde(borrow, default)]
    pub stderr_sha256: Option<Text<'a>>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(borrow, default)]
    pub error: Option<Text<'a>>,
}

impl<'a> ToolOutput<'a> {
    /// Attempt `attempt` of `node` gave `output`; streams, exit code and error are added with
    /// the fields (and [`ToolOutput::with_stream`]).
    pub fn new(node: impl Into<Text<'a>>, attempt: u64, output: Cow<'a, Value>) -> Self {
        ToolOutput {
            node: node.into(),
            attempt,
            output,
            mcp_tools: None,
            stdout: None,
            stdout_bytes: None,
            stdout_sha256: None,
            stderr: None,
            stderr_bytes: None,
            stderr_sha256: None,
            exit_code: None,
            error: None,
        }
    }

    /// Sets a stream's fields from what was captured.
    pub fn with_stream(mut self, which: StreamName, s: Option<Stream<'a>>) -> Self {
        let Some(s) = s else { return self };
        let (bytes, sha) = match s.truncated {
            Some((bytes, sha)) => (Some(bytes), sha),
            None => (None, None),
        };
        match which {
            StreamName::Stdout => {
                self.stdout = Some(s.text);
                self.stdout_bytes = bytes;
                self.stdout_sha256 = sha;
            }
            StreamName::Stderr => {
                self.stderr = Some(s.text);
                self.stderr_bytes = bytes;
                self.stderr_sha256 = sha;
            }
        }
        self
    }

    pub fn stream(&self, which: StreamName) -> Option<Stream<'a>> {
        let (text, bytes, sha) = match which {
            StreamName::Stdout => (&self.stdout, self.stdout_bytes, &self.stdout_sha256),
            StreamName::Stderr => (&self.stderr, self.stderr_bytes, &self.stderr_sha256),
        };
        text.as_ref().map(|text| Stream {
            text: text.clone(),
            truncated: bytes.map(|b| (b, sha.clone())),
        })
    }
}

/// stdout or stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamName {
    Stdout,
    Stderr,
}

/// `End`: a node (or instance) is done. `attempts` for tasks, `instances` for a fan-out node,
/// `error` when it failed or was denied.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct End<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    pub status: Status,
    #[serde(default)]
    pub attempts: Option<u64>,
    #[serde(default)]
    pub instances: Option<u64>,
    #[serde(borrow, default)]
    pub error: Option<Text<'a>>,
}

impl<'a> End<'a> {
    /// An `End` with nothing to add to its status.
    pub fn plain(node: impl Into<Text<'a>>, status: Status) -> Self {
        End {
            node: node.into(),
            status,
            attempts: None,
            instances: None,
            error: None,
        }
    }
}

/// `BranchDecision`: the condition, its value, the chosen arm and the nodes each arm named.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BranchDecision<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    #[serde(rename = "if", borrow)]
    pub condition: Text<'a>,
    pub value: bool,
    pub arm: Arm,
    #[serde(borrow)]
    pub chosen: Vec<Text<'a>>,
    #[serde(borrow)]
    pub skipped: Vec<Text<'a>>,
}

/// `LoopIteration`: an iteration of a loop has run (its body's events come before this line,
/// with ids `LOOP#N/CHILD`), `update` has given the loop-carried `state`, and `until` (when the
/// loop has one and the body succeeded) was evaluated. `ended` says why the loop ends here;
/// absent, the next iteration follows.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LoopIteration<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    pub iteration: u64,
    pub state: Cow<'a, Value>,
    #[serde(default)]
    pub until: Option<bool>,
    #[serde(default)]
    pub ended: Option<LoopEnd>,
}

/// `WorkflowCall`: a `workflow:` node calls another file (path relative to the caller's, as
/// written, the SHA-256 of its bytes, and its text, so that the ledger replays on its own as it
/// does with the caller's text in `RunStart`); the callee's events follow with ids
/// `CALL/CHILD`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WorkflowCall<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    #[serde(borrow)]
    pub file: Text<'a>,
    #[serde(borrow)]
    pub sha256: Text<'a>,
    #[serde(borrow)]
    pub source: Text<'a>,
}

/// `PolicyDeny`: a check failed (`enforced`: the call did not run).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PolicyDeny<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    /// The reason code, e.g. `PATH_NOT_PERMITTED`.
    #[serde(borrow)]
    pub reason: Text<'a>,
    #[serde(borrow)]
    pub detail: Text<'a>,
    pub enforced: bool,
}

/// `CallLimitExceeded`: a `max_calls` limit was reached.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CallLimitExceeded<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    #[serde(borrow)]
    pub reason: Text<'a>,
    #[serde(borrow)]
    pub key: Text<'a>,
    pub limit: u64,
    pub enforced: bool,
}

/// `Retry`: attempt `attempt` follows after `delay_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Retry<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    pub attempt: u64,
    pub delay_ms: u64,
    #[serde(borrow, default)]
    pub reason: Option<Text<'a>>,
}

/// `ApprovalResolved`: a person's decision, and who made it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ApprovalResolved<'a> {
    #[serde(borrow)]
    pub node: Text<'a>,
    pub decision: Verdict,
    #[serde(borrow, default)]
    pub approver: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub reason: Option<Text<'a>>,
}

/// `RunPaused`: the trailer of a run that stopped early; `--resume` replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RunPaused<'a> {
    pub reason: PauseReason,
    #[serde(borrow)]
    pub pending: Vec<Text<'a>>,
    #[serde(borrow)]
    pub resume: Text<'a>,
}

/// `RunEnd`: the last line of a finished run.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RunEnd<'a> {
    pub status: RunOutcome,
    pub counts: Counts,
    pub outputs: Cow<'a, Value>,
    /// Tokens spent by the run's `llm` calls, per model that answered (absent when the run
    /// made none, so the ledgers of runs without them are as before).
    #[serde(default)]
    pub usage: Option<std::collections::BTreeMap<String, ModelUsage>>,
}

/// The calls answered by one model and the tokens they spent, in `RunEnd.usage`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelUsage {
    /// Attempts answered by the model (failed ones that report usage included).
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

impl ModelUsage {
    pub fn add(&mut self, [input, output, total]: [u64; 3]) {
        self.calls += 1;
        self.input_tokens += input;
        self.output_tokens += output;
        self.total_tokens += total;
    }

    /// Adds another count of the same model's calls (a sub-graph's, at its end).
    pub fn merge(&mut self, other: &ModelUsage) {
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// One ledger event: the body of a line, without `seq` and `prev`.
///
/// Its JSON Schema, derived with the `event` field as the tag, is the core of the schema of a
/// ledger line (`ledger/schema.rs`).
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[schemars(tag = "event", deny_unknown_fields)]
pub enum Event<'a> {
    RunStart(RunStart<'a>),
    Start(Start<'a>),
    ToolOutput(ToolOutput<'a>),
    End(End<'a>),
    BranchDecision(BranchDecision<'a>),
    /// `ForkSpawn`: a fork node spawned its children.
    ForkSpawn {
        node: Text<'a>,
        children: Vec<Text<'a>>,
    },
    /// `JoinComplete`: the nodes a join waited for, and those of them that succeeded.
    JoinComplete {
        node: Text<'a>,
        joined: Vec<Text<'a>>,
        succeeded: Vec<Text<'a>>,
    },
    /// `Skipped`: a node that did not run, and why; its only line.
    Skipped {
        node: Text<'a>,
        reason: Text<'a>,
    },
    /// `PolicyAllow`: a call passed the policy's checks.
    PolicyAllow {
        node: Text<'a>,
        /// The checks that passed, in the order they were made.
        checks: Vec<Text<'a>>,
    },
    PolicyDeny(PolicyDeny<'a>),
    /// `ContentRedacted`: redaction replaced `count` matches in `field`.
    ContentRedacted {
        node: Text<'a>,
        /// `input`, `output`, `stdout`, `stderr` or `error`.
        field: Text<'a>,
        count: u64,
    },
    CallLimitExceeded(CallLimitExceeded<'a>),
    Retry(Retry<'a>),
    /// `Error`: why a node could not run (an expression or template that could not be
    /// evaluated).
    Error {
        node: Text<'a>,
        message: Text<'a>,
    },
    /// `ApprovalRequested`: the run reached an approval; `prompt` is rendered.
    ApprovalRequested {
        node: Text<'a>,
        prompt: Text<'a>,
    },
    ApprovalResolved(ApprovalResolved<'a>),
    RunPaused(RunPaused<'a>),
    RunEnd(RunEnd<'a>),
    LoopIteration(LoopIteration<'a>),
    WorkflowCall(WorkflowCall<'a>),
}

/// Every event kind, in the order of the format's description.
pub const KINDS: [&str; 20] = [
    "RunStart",
    "Start",
    "ToolOutput",
    "End",
    "BranchDecision",
    "ForkSpawn",
    "JoinComplete",
    "Skipped",
    "PolicyAllow",
    "PolicyDeny",
    "ContentRedacted",
    "CallLimitExceeded",
    "Retry",
    "Error",
    "ApprovalRequested",
    "ApprovalResolved",
    "RunPaused",
    "RunEnd",
    "LoopIteration",
    "WorkflowCall",
];

/// An event's kind without its fields: what a reader checks on the lines it does not read
/// whole, so that a kind this kairos does not know is refused wherever it appears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    RunStart,
    Start,
    ToolOutput,
    End,
    BranchDecision,
    ForkSpawn,
    JoinComplete,
    Skipped,
    PolicyAllow,
    PolicyDeny,
    ContentRedacted,
    CallLimitExceeded,
    Retry,
    Error,
    ApprovalRequested,
    ApprovalResolved,
    RunPaused,
    RunEnd,
    LoopIteration,
    WorkflowCall,
}

impl Kind {
    /// Every kind, in the order of [`KINDS`].
    pub const ALL: [Kind; 20] = [
        Kind::RunStart,
        Kind::Start,
        Kind::ToolOutput,
        Kind::End,
        Kind::BranchDecision,
        Kind::ForkSpawn,
        Kind::JoinComplete,
        Kind::Skipped,
        Kind::PolicyAllow,
        Kind::PolicyDeny,
        Kind::ContentRedacted,
        Kind::CallLimitExceeded,
        Kind::Retry,
        Kind::Error,
        Kind::ApprovalRequested,
        Kind::ApprovalResolved,
        Kind::RunPaused,
        Kind::RunEnd,
        Kind::LoopIteration,
        Kind::WorkflowCall,
    ];

    /// The kind named `name` (the `event` field); a name this kairos does not know is
    /// [`EventError::Unknown`]: a newer kairos wrote the line.
    pub fn of(name: &str) -> Result<Kind, EventError> {
        // A match rather than a search of `KINDS`: `verify` asks this of every line.
        Ok(match name {
            "RunStart" => Kind::RunStart,
            "Start" => Kind::Start,
            "ToolOutput" => Kind::ToolOutput,
            "End" => Kind::End,
            "BranchDecision" => Kind::BranchDecision,
            "ForkSpawn" => Kind::ForkSpawn,
            "JoinComplete" => Kind::JoinComplete,
            "Skipped" => Kind::Skipped,
            "PolicyAllow" => Kind::PolicyAllow,
            "PolicyDeny" => Kind::PolicyDeny,
            "ContentRedacted" => Kind::ContentRedacted,
            "CallLimitExceeded" => Kind::CallLimitExceeded,
            "Retry" => Kind::Retry,
            "Error" => Kind::Error,
            "ApprovalRequested" => Kind::ApprovalRequested,
            "ApprovalResolved" => Kind::ApprovalResolved,
            "RunPaused" => Kind::RunPaused,
            "RunEnd" => Kind::RunEnd,
            "LoopIteration" => Kind::LoopIteration,
            "WorkflowCall" => Kind::WorkflowCall,
            other => return Err(EventError::Unknown(other.to_string())),
        })
    }

    /// The name the `event` field has.
    pub fn name(self) -> &'static str {
        KINDS[self as usize]
    }
}

/// Why a line's body could not be read as its event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("unknown event `{0}` (written by a newer kairos?)")]
    Unknown(String),
    #[error("{kind}: {source}")]
    Fields {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

fn strs<'v>(v: &'v [Text<'_>]) -> impl Iterator<Item = &'v str> {
    v.iter().map(|s| s.as_ref())
}

impl<'a> Event<'a> {
    /// The event's name, as the `event` field has it.
    #[inline]
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStart(_) => "RunStart",
            Event::Start(_) => "Start",
            Event::ToolOutput(_) => "ToolOutput",
            Event::End(_) => "End",
            Event::BranchDecision(_) => "BranchDecision",
            Event::ForkSpawn { .. } => "ForkSpawn",
            Event::JoinComplete { .. } => "JoinComplete",
            Event::Skipped { .. } => "Skipped",
            Event::PolicyAllow { .. } => "PolicyAllow",
            Event::PolicyDeny(_) => "PolicyDeny",
            Event::ContentRedacted { .. } => "ContentRedacted",
            Event::CallLimitExceeded(_) => "CallLimitExceeded",
            Event::Retry(_) => "Retry",
            Event::Error { .. } => "Error",
            Event::ApprovalRequested { .. } => "ApprovalRequested",
            Event::ApprovalResolved(_) => "ApprovalResolved",
            Event::RunPaused(_) => "RunPaused",
            Event::RunEnd(_) => "RunEnd",
            Event::LoopIteration(_) => "LoopIteration",
            Event::WorkflowCall(_) => "WorkflowCall",
        }
    }

    /// The node (or instance) the event belongs to; `None` for the run's own events.
    #[inline]
    pub fn node(&self) -> Option<&str> {
        let node = match self {
            Event::RunStart(_) | Event::RunPaused(_) | Event::RunEnd(_) => return None,
            Event::Start(e) => &e.node,
            Event::ToolOutput(e) => &e.node,
            Event::End(e) => &e.node,
            Event::BranchDecision(e) => &e.node,
            Event::PolicyDeny(e) => &e.node,
            Event::CallLimitExceeded(e) => &e.node,
            Event::Retry(e) => &e.node,
            Event::ApprovalResolved(e) => &e.node,
            Event::LoopIteration(e) => &e.node,
            Event::WorkflowCall(e) => &e.node,
            Event::ForkSpawn { node, .. }
            | Event::JoinComplete { node, .. }
            | Event::Skipped { node, .. }
            | Event::PolicyAllow { node, .. }
            | Event::ContentRedacted { node, .. }
            | Event::Error { node, .. }
            | Event::ApprovalRequested { node, .. } => node,
        };
        Some(node)
    }

    /// Appends the event's body at logical time `clock`, followed by a newline.
    ///
    /// Inlined so that where the variant is known (everywhere the engine writes) the match
    /// folds away and writing costs what the hand-built line did.
    #[inline]
    pub fn write(&self, clock: u64, out: &mut (impl Sink + ?Sized)) {
        let b = Body::new(out, self.kind(), clock);
        let b = match self.node() {
            Some(node) => b.node(node),
            None => b,
        };
        let b = match self {
            Event::RunStart(e) => b
                .name("format", &e.format)
                .name("kairos_version", &e.kairos_version)
                .name("workflow", &e.workflow)
                .name("workflow_sha256", &e.workflow_sha256)
                .str("workflow_source", &e.workflow_source)
                .json("inputs", &e.inputs)
                .u64("seed", e.seed)
                .json("policy", &e.policy)
                .name("policy_sha256", &e.policy_sha256)
                .opt_u64("rules", e.rules),
            Event::Start(e) => {
                let b = b
                    .name("tool", &e.tool)
                    .opt_name("input_sha256", e.input_sha256.as_deref());
                let b = match &e.input {
                    Some(json) => b.raw("input", &json.0),
                    None => b,
                };
                match e.for_each {
                    Some(n) => b.u64("for_each", n),
                    None => b,
                }
            }
            Event::ToolOutput(e) => {
                let mut b = b.u64("attempt", e.attempt).json("output", &e.output);
                if let Some(tools) = &e.mcp_tools {
                    b = b.json("mcp_tools", tools);
                }
                for (name, text, bytes, sha) in [
                    ("stdout", &e.stdout, e.stdout_bytes, &e.stdout_sha256),
                    ("stderr", &e.stderr, e.stderr_bytes, &e.stderr_sha256),
                ] {
                    if let Some(text) = text {
                        b = b.str(name, text);
                        if let Some(bytes) = bytes {
                            b = b
                                .u64(&format!("{name}_bytes"), bytes)
                                .opt_name(&format!("{name}_sha256"), sha.as_deref());
                        }
                    }
                }
                if let Some(code) = e.exit_code {
                    b = b.i64("exit_code", code);
                }
                b.opt_str("error", e.error.as_deref())
            }
            Event::End(e) => {
                let mut b = b.name("status", e.status.name());
                if let Some(n) = e.attempts {
                    b = b.u64("attempts", n);
                }
                if let Some(n) = e.instances {
                    b = b.u64("instances", n);
                }
                b.opt_str("error", e.error.as_deref())
            }
            Event::BranchDecision(e) => b
                .str("if", &e.condition)
                .bool("value", e.value)
                .name("arm", e.arm.name())
                .strs("chosen", strs(&e.chosen))
                .strs("skipped", strs(&e.skipped)),
            Event::ForkSpawn { children, .. } => b.strs("children", strs(children)),
            Event::JoinComplete {
                joined, succeeded, ..
            } => b
                .strs("joined", strs(joined))
                .strs("succeeded", strs(succeeded)),
            Event::Skipped { reason, .. } => b.str("reason", reason),
            Event::PolicyAllow { checks, .. } => b.strs("checks", strs(checks)),
            Event::PolicyDeny(e) => b
                .name("reason", &e.reason)
                .str("detail", &e.detail)
                .bool("enforced", e.enforced),
            Event::ContentRedacted { field, count, .. } => {
                b.name("field", field).u64("count", *count)
            }
            Event::CallLimitExceeded(e) => b
                .name("reason", &e.reason)
                .name("key", &e.key)
                .u64("limit", e.limit)
                .bool("enforced", e.enforced),
            Event::Retry(e) => b
                .u64("attempt", e.attempt)
                .u64("delay_ms", e.delay_ms)
                .opt_str("reason", e.reason.as_deref()),
            Event::Error { message, .. } => b.str("message", message),
            Event::ApprovalRequested { prompt, .. } => b.str("prompt", prompt),
            Event::ApprovalResolved(e) => b
                .name("decision", e.decision.name())
                .opt_str("approver", e.approver.as_deref())
                .opt_str("reason", e.reason.as_deref()),
            Event::RunPaused(e) => b
                .name("reason", e.reason.name())
                .strs("pending", strs(&e.pending))
                .name("resume", &e.resume),
            Event::RunEnd(e) => {
                let b = b
                    .name("status", e.status.name())
                    .json("counts", &e.counts.to_json())
                    .json("outputs", &e.outputs);
                match &e.usage {
                    Some(usage) => {
                        b.json("usage", &serde_json::to_value(usage).unwrap_or_default())
                    }
                    None => b,
                }
            }
            Event::LoopIteration(e) => {
                let mut b = b.u64("iteration", e.iteration).json("state", &e.state);
                if let Some(u) = e.until {
                    b = b.bool("until", u);
                }
                b.opt_name("ended", e.ended.map(LoopEnd::name))
            }
            Event::WorkflowCall(e) => b
                .str("file", &e.file)
                .name("sha256", &e.sha256)
                .str("source", &e.source),
        };
        b.finish();
    }

    /// Reads the event of kind `kind` from a whole line (`seq`, `prev`, `event` and `clock`
    /// are there too, and ignored).
    pub fn parse(kind: &str, line: &'a str) -> Result<Event<'a>, EventError> {
        fn read<'a, T: Deserialize<'a>>(
            kind: &'static str,
            line: &'a str,
        ) -> Result<T, EventError> {
            serde_json::from_str(line).map_err(|source| EventError::Fields { kind, source })
        }
        #[derive(Deserialize)]
        struct ForkSpawn<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            children: Vec<Text<'a>>,
        }
        #[derive(Deserialize)]
        struct JoinComplete<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            joined: Vec<Text<'a>>,
            #[serde(borrow)]
            succeeded: Vec<Text<'a>>,
        }
        #[derive(Deserialize)]
        struct Skipped<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            reason: Text<'a>,
        }
        #[derive(Deserialize)]
        struct PolicyAllow<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            checks: Vec<Text<'a>>,
        }
        #[derive(Deserialize)]
        struct ContentRedacted<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            field: Text<'a>,
            count: u64,
        }
        #[derive(Deserialize)]
        struct Error<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            message: Text<'a>,
        }
        #[derive(Deserialize)]
        struct ApprovalRequested<'a> {
            #[serde(borrow)]
            node: Text<'a>,
            #[serde(borrow)]
            prompt: Text<'a>,
        }
        Ok(match Kind::of(kind)? {
            Kind::RunStart => Event::RunStart(read("RunStart", line)?),
            Kind::Start => Event::Start(read("Start", line)?),
            Kind::ToolOutput => Event::ToolOutput(read("ToolOutput", line)?),
            Kind::End => Event::End(read("End", line)?),
            Kind::BranchDecision => Event::BranchDecision(read("BranchDecision", line)?),
            Kind::LoopIteration => Event::LoopIteration(read("LoopIteration", line)?),
            Kind::WorkflowCall => Event::WorkflowCall(read("WorkflowCall", line)?),
            Kind::ForkSpawn => {
                let e: ForkSpawn = read("ForkSpawn", line)?;
                Event::ForkSpawn {
                    node: e.node,
                    children: e.children,
                }
            }
            Kind::JoinComplete => {
                let e: JoinComplete = read("JoinComplete", line)?;
                Event::JoinComplete {
                    node: e.node,
                    joined: e.joined,
                    succeeded: e.succeeded,
                }
            }
            Kind::Skipped => {
                let e: Skipped = read("Skipped", line)?;
                Event::Skipped {
                    node: e.node,
                    reason: e.reason,
                }
            }
            Kind::PolicyAllow => {
                let e: PolicyAllow = read("PolicyAllow", line)?;
                Event::PolicyAllow {
                    node: e.node,
                    checks: e.checks,
                }
            }
            Kind::PolicyDeny => Event::PolicyDeny(read("PolicyDeny", line)?),
            Kind::ContentRedacted => {
                let e: ContentRedacted = read("ContentRedacted", line)?;
                Event::ContentRedacted {
                    node: e.node,
                    field: e.field,
                    count: e.count,
                }
            }
            Kind::CallLimitExceeded => Event::CallLimitExceeded(read("CallLimitExceeded", line)?),
            Kind::Retry => Event::Retry(read("Retry", line)?),
            Kind::Error => {
                let e: Error = read("Error", line)?;
                Event::Error {
                    node: e.node,
                    message: e.message,
                }
            }
            Kind::ApprovalRequested => {
                let e: ApprovalRequested = read("ApprovalRequested", line)?;
                Event::ApprovalRequested {
                    node: e.node,
                    prompt: e.prompt,
                }
            }
            Kind::ApprovalResolved => Event::ApprovalResolved(read("ApprovalResolved", line)?),
            Kind::RunPaused => Event::RunPaused(read("RunPaused", line)?),
            Kind::RunEnd => Event::RunEnd(read("RunEnd", line)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::{BTreeMap, BTreeSet};

    fn t(s: &str) -> Text<'_> {
        Cow::Borrowed(s)
    }

    /// One of every event, with every optional field set where it has one.
    fn examples() -> Vec<Event<'static>> {
        vec![
            Event::RunStart(RunStart {
                format: t("kairos.ledger/1"),
                kairos_version: t("0.1.0"),
                workflow: t("wf"),
                workflow_sha256: t("ab"),
                workflow_source: t("version: 1\nname: \"wf\"\n"),
                inputs: Cow::Owned(json!({"n": 3})),
                seed: 7,
                policy: Cow::Owned(json!({"preset": "restrictive"})),
                policy_sha256: t("cd"),
                rules: Some(2),
            }),
            Event::Start(Start {
                node: t("a[2]"),
                tool: t("echo"),
                input_sha256: Some(t("ef")),
                input: Some(RawJson(t("{\"message\":\"hi\"}"))),
                for_each: None,
            }),
            Event::Start(Start {
                node: t("fan"),
                tool: t("echo"),
                input_sha256: None,
                input: None,
                for_each: Some(3),
            }),
            Event::ToolOutput(
                ToolOutput {
                    node: t("a"),
                    attempt: 1,
                    output: Cow::Owned(json!("out")),
                    mcp_tools: Some(Cow::Owned(
                        json!({"server": "fs", "tools": [{"name": "read"}]}),
                    )),
                    stdout: None,
                    stdout_bytes: None,
                    stdout_sha256: None,
                    stderr: None,
                    stderr_bytes: None,
                    stderr_sha256: None,
                    exit_code: Some(-1),
                    error: Some(t("boom")),
                }
                .with_stream(
                    StreamName::Stdout,
                    Some(Stream {
                        text: t("x\u{8}y"),
                        truncated: Some((9, Some(t("0f")))),
                    }),
                )
                .with_stream(
                    StreamName::Stderr,
                    Some(Stream {
                        text: t("e"),
                        truncated: None,
                    }),
                ),
            ),
            Event::ToolOutput(
                ToolOutput {
                    node: t("a[0]"),
                    attempt: 2,
                    output: Cow::Owned(json!({"k": [1, 2]})),
                    mcp_tools: None,
                    stdout: None,
                    stdout_bytes: None,
                    stdout_sha256: None,
                    stderr: None,
                    stderr_bytes: None,
                    stderr_sha256: None,
                    exit_code: None,
                    error: None,
                }
                .with_stream(
                    StreamName::Stdout,
                    Some(Stream {
                        text: t("o"),
                        truncated: None,
                    }),
                )
                .with_stream(
                    StreamName::Stderr,
                    Some(Stream {
                        text: t("big"),
                        truncated: Some((2_000_000, Some(t("1e")))),
                    }),
                ),
            ),
            Event::End(End {
                node: t("a"),
                status: Status::Failed,
                attempts: Some(2),
                instances: None,
                error: Some(t("boom")),
            }),
            Event::End(End {
                node: t("fan"),
                status: Status::Succeeded,
                attempts: None,
                instances: Some(3),
                error: None,
            }),
            Event::BranchDecision(BranchDecision {
                node: t("b"),
                condition: t("x > 1"),
                value: false,
                arm: Arm::Else,
                chosen: vec![t("c")],
                skipped: vec![t("d"), t("e")],
            }),
            Event::ForkSpawn {
                node: t("f"),
                children: vec![t("g")],
            },
            Event::JoinComplete {
                node: t("j"),
                joined: vec![t("g"), t("h")],
                succeeded: vec![],
            },
            Event::Skipped {
                node: t("s"),
                reason: t("`if` is false"),
            },
            Event::PolicyAllow {
                node: t("a"),
                checks: vec![t("capability"), t("command")],
            },
            Event::PolicyDeny(PolicyDeny {
                node: t("a"),
                reason: t("PATH_NOT_PERMITTED"),
                detail: t("/etc/passwd"),
                enforced: true,
            }),
            Event::ContentRedacted {
                node: t("a"),
                field: t("stdout"),
                count: 2,
            },
            Event::CallLimitExceeded(CallLimitExceeded {
                node: t("a"),
                reason: t("CALL_LIMIT_EXCEEDED"),
                key: t("shell"),
                limit: 1,
                enforced: false,
            }),
            Event::Retry(Retry {
                node: t("a"),
                attempt: 2,
                delay_ms: 5,
                reason: Some(t("exit 1")),
            }),
            Event::Error {
                node: t("a"),
                message: t("`text`: undefined"),
            },
            Event::ApprovalRequested {
                node: t("ship"),
                prompt: t("Ship it?"),
            },
            Event::ApprovalResolved(ApprovalResolved {
                node: t("ship"),
                decision: Verdict::Approved,
                approver: Some(t("alice")),
                reason: Some(t("looks good")),
            }),
            Event::RunPaused(RunPaused {
                reason: PauseReason::Approval,
                pending: vec![t("ship")],
                resume: t("kairos run WORKFLOW --resume LEDGER"),
            }),
            Event::RunEnd(RunEnd {
                status: RunOutcome::Denied,
                counts: Counts {
                    succeeded: 1,
                    failed: 2,
                    skipped: 3,
                    denied: 4,
                },
                outputs: Cow::Owned(json!({"x": null})),
                usage: Some(BTreeMap::from([(
                    "gpt-x".to_string(),
                    ModelUsage {
                        calls: 2,
                        input_tokens: 30,
                        output_tokens: 12,
                        total_tokens: 42,
                    },
                )])),
            }),
            Event::LoopIteration(LoopIteration {
                node: t("review"),
                iteration: 3,
                state: Cow::Owned(serde_json::json!({ "draft": "v3" })),
                until: Some(true),
                ended: Some(LoopEnd::Until),
            }),
            Event::LoopIteration(LoopIteration {
                node: t("outer#2/inner"),
                iteration: 1,
                state: Cow::Owned(serde_json::json!({})),
                until: None,
                ended: None,
            }),
            Event::WorkflowCall(WorkflowCall {
                node: t("sub"),
                file: t("lib/child.yaml"),
                sha256: t("ab"),
                source: t("version: 1\n"),
            }),
        ]
    }

    fn line(body: &str) -> String {
        format!("{{\"seq\":1,\"prev\":\"00\",{}}}", body.trim_end())
    }

    #[test]
    fn every_event_reads_back_as_written() {
        for event in examples() {
            let mut body = String::new();
            event.write(4, &mut body);
            assert!(body.ends_with('\n') && body.matches('\n').count() == 1);
            let text = line(&body);
            let back = Event::parse(event.kind(), &text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, event, "{text}");
            // The same bytes again from what was read.
            let mut again = String::new();
            back.write(4, &mut again);
            assert_eq!(again, body);
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["event"], event.kind());
            assert_eq!(v["clock"], 4);
            assert_eq!(v["node"].as_str(), event.node());
        }
    }

    /// A whole line of `event`, as the writer makes it (`seq` 1, the first line's `prev`).
    fn written(event: &Event) -> Value {
        let mut body = String::new();
        event.write(4, &mut body);
        let text = format!(
            "{{\"seq\":1,\"prev\":\"{}\",{}}}",
            crate::ledger::GENESIS,
            body.trim_end()
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The keys of an object, or the strings of an array.
    fn names(v: &Value) -> BTreeSet<String> {
        match v {
            Value::Object(map) => map.keys().cloned().collect(),
            Value::Array(items) => items
                .iter()
                .map(|s| s.as_str().expect("a name").to_string())
                .collect(),
            _ => panic!("neither an object nor an array: {v}"),
        }
    }

    #[test]
    fn the_line_schema_names_exactly_the_fields_written() {
        let text = crate::ledger::schema::ledger_line_schema();
        let schema: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(schema["properties"]["event"]["enum"], json!(KINDS));
        let defs = &schema["$defs"];
        for kind in KINDS {
            assert!(defs[kind].is_object(), "no definition for {kind}");
            assert_eq!(defs[kind]["properties"]["event"]["const"], kind);
            assert_eq!(defs[kind]["additionalProperties"], false, "{kind}");
        }
        let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
        let mut written_by_kind: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for event in examples() {
            let kind = event.kind();
            let line = written(&event);
            let keys = names(&line);
            let properties = names(&defs[kind]["properties"]);
            let required = names(&defs[kind]["required"]);
            assert!(
                keys.is_subset(&properties),
                "{kind} writes fields its definition lacks: {:?}",
                keys.difference(&properties).collect::<Vec<_>>()
            );
            assert!(
                required.is_subset(&keys),
                "{kind} does not write fields its definition requires: {:?}",
                required.difference(&keys).collect::<Vec<_>>()
            );
            assert_eq!(
                required.contains("node"),
                event.node().is_some(),
                "{kind}: `node` is required exactly on a node's events"
            );
            let errors: Vec<String> = validator
                .iter_errors(&line)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{line}: {errors:#?}");
            written_by_kind.entry(kind).or_default().extend(keys);
        }
        for kind in KINDS {
            assert_eq!(
                written_by_kind[kind],
                names(&defs[kind]["properties"]),
                "the fields written for {kind} (all its examples) and its definition's differ"
            );
        }
    }

    #[test]
    fn the_examples_cover_every_kind() {
        let mut kinds: Vec<&str> = examples().iter().map(Event::kind).collect();
        kinds.dedup();
        assert_eq!(kinds, KINDS);
    }

    #[test]
    fn fields_are_written_in_their_fixed_order() {
        let mut body = String::new();
        examples()[3].write(9, &mut body);
        assert_eq!(
            body,
            "\"event\":\"ToolOutput\",\"clock\":9,\"node\":\"a\",\"attempt\":1,\"output\":\"out\",\
             \"mcp_tools\":{\"server\":\"fs\",\"tools\":[{\"name\":\"read\"}]},\
             \"stdout\":\"x\\u0008y\",\"stdout_bytes\":9,\"stdout_sha256\":\"0f\",\"stderr\":\"e\",\
             \"exit_code\":-1,\"error\":\"boom\"}\n"
                .replace("}\n", "\n")
        );
    }

    #[test]
    fn kinds_and_their_names_agree() {
        for (kind, name) in Kind::ALL.into_iter().zip(KINDS) {
            assert_eq!(kind.name(), name);
            assert_eq!(Kind::of(name).unwrap(), kind);
        }
        for event in examples() {
            assert_eq!(Kind::of(event.kind()).unwrap().name(), event.kind());
        }
        assert!(matches!(Kind::of("Teleport"), Err(EventError::Unknown(k)) if k == "Teleport"));
    }

    #[test]
    fn the_organisation_policy_is_read_from_run_start() {
        let Event::RunStart(mut start) = examples().remove(0) else {
            unreachable!("the first example is RunStart")
        };
        assert_eq!(start.organisation_source(), None);
        start.policy = Cow::Owned(json!({"preset": "open", ORGANISATION_SOURCE: "preset: open\n"}));
        assert_eq!(start.organisation_source(), Some("preset: open\n"));
    }

    #[test]
    fn an_unknown_event_says_a_newer_kairos_wrote_it() {
        let e = Event::parse("Teleport", "{}").unwrap_err();
        assert!(e.to_string().contains("newer kairos"), "{e}");
    }

    #[test]
    fn a_missing_field_is_an_error_naming_the_event() {
        let e =
            Event::parse("End", &line("\"event\":\"End\",\"clock\":1,\"node\":\"a\"")).unwrap_err();
        assert!(
            e.to_string().starts_with("End: missing field `status`"),
            "{e}"
        );
    }
}
