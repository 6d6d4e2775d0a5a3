//! The validated workflow: what the engine runs and the reports describe.
//!
//! A [`Workflow`] can only be built by [`super::load`], after every check has passed, so its
//! graph references only existing nodes and is acyclic; `nodes` is in declaration order.

use crate::policy::{CapSet, PolicySpec};
use crate::syntax::read::Sp;
use crate::syntax::yaml::{self, Span, Str};
use crate::tools::Tool;
use std::time::Duration;

/// Index of a node in [`Workflow::nodes`].
pub type NodeIdx = u32;

#[derive(Debug)]
pub struct Workflow {
    /// The file name as given on the command line.
    pub file: String,
    /// The exact source text (shared with the policy layers that quote it).
    pub source: std::sync::Arc<str>,
    pub version: u64,
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub inputs: Vec<Input>,
    pub defaults: Defaults,
    pub policy: PolicySpec,
    /// `mcp_servers:`, in file order (each `mcp` task holds its server's definition).
    pub mcp_servers: Vec<super::servers::McpServer>,
    /// `network:`: how many network calls run at once.
    pub network: Network,
    /// Where `shell` calls run and how (`docs/executors.md`); never changes the ledger.
    pub executor: crate::exec::ExecutorSpec,
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, Sp<String>)>,
    /// Nodes the output templates read.
    pub output_reads: Vec<NodeIdx>,
}

#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
    pub span: Span,
}

/// The workflow's `network:` limits (docs/workflow.md, "Network"). They decide only how many
/// calls wait on the network at once, never a result, so they are not part of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    /// Network calls running at once, at most (`--net-jobs` may lower it further).
    pub max_concurrent: Option<usize>,
    /// Calls running at once to one host (lower-case name).
    pub per_host: std::collections::BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Total attempts, the first included.
    pub attempts: u32,
    pub backoff: Duration,
    pub factor: f64,
    pub max_backoff: Option<Duration>,
}

/// One node of the graph. Large workflows hold a million of these, so fields that most nodes
/// leave unset are boxed and lists are boxed slices.
#[derive(Debug)]
pub struct Node {
    /// Short ids (up to 22 bytes) are stored inline.
    pub id: Str,
    /// The span of the id value.
    pub span: Span,
    pub kind: NodeKind,
    /// Every node this one waits for and is skipped with: `needs`, plus the branch, fork or
    /// join that implies it. Sorted, no duplicates.
    pub deps: Box<[NodeIdx]>,
    /// Nodes whose values this node's expressions read but does not otherwise depend on:
    /// it waits for them to resolve, without being skipped when they are. Sorted.
    pub after: Box<[NodeIdx]>,
    /// Every node this one's expressions read (whether or not also in `deps`). Sorted.
    pub reads: Box<[NodeIdx]>,
    pub condition: Option<Box<Sp<String>>>,
    pub timeout: Option<Duration>,
    pub retry: Option<Box<Retry>>,
    pub continue_on_error: bool,
    pub priority: i64,
    pub for_each: Option<Box<ForEach>>,
    pub policy: Option<Box<PolicySpec>>,
    pub description: Option<Box<str>>,
}

const _: () = assert!(std::mem::size_of::<Node>() <= 208);

#[derive(Debug)]
pub enum NodeKind {
    Task(Task),
    Branch {
        condition: Box<Sp<String>>,
        then: Box<[NodeIdx]>,
        otherwise: Box<[NodeIdx]>,
    },
    Fork(Box<[NodeIdx]>),
    Join(Box<[NodeIdx]>),
    Approval {
        prompt: String,
    },
    /// A bounded loop over a body sub-graph (`docs/workflow.md#loops`).
    Loop(Box<Loop>),
    /// Another workflow file run as a sub-graph of this run (`docs/workflow.md#calls`).
    Call(Box<Call>),
}

/// A `loop:` node: its body runs once per iteration, one iteration after another.
#[derive(Debug)]
pub struct Loop {
    /// The body as a graph of its own: node indices are the body's, `nodes` in declaration
    /// order; `file`, `source`, `name` are the enclosing workflow's, `inputs` and `outputs`
    /// empty (the body sees the run's inputs).
    pub body: Workflow,
    pub max_iterations: u32,
    pub until: Option<Sp<String>>,
    /// The initial loop-carried state: name, value (templates rendered once, before the
    /// first iteration).
    pub state: Vec<(String, yaml::Node)>,
    /// After each iteration: name, new value (templates that read this iteration's nodes).
    pub update: Vec<(String, yaml::Node)>,
    pub on_max: OnMax,
    /// What `nodes.LOOP.output` is; the final state when absent.
    pub output: Option<yaml::Node>,
    /// Written as an `agent:` (docs/agents.md), which this loop is the expansion of.
    pub agent: bool,
}

/// What a loop that reached `max_iterations` without `until` becoming true ends as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMax {
    Fail,
    Succeed,
}

/// A `workflow:` node: the called file, read and validated with the caller.
#[derive(Debug)]
pub struct Call {
    /// The path as written, relative to the caller's file (what the ledger records).
    pub file: Sp<String>,
    /// SHA-256 of the called file's bytes.
    pub sha256: String,
    pub callee: Workflow,
    /// The callee's inputs: name, value (templates in the caller's scope).
    pub inputs: Vec<(String, yaml::Node)>,
}

impl Call {
    /// What the called graph runs under: `caller`, narrowed by the call node's own `policy:`
    /// (`own`, of the node `id`) and then by the called file's (layers only ever narrow).
    pub fn policy(
        &self,
        caller: &crate::policy::effective::Effective,
        id: &str,
        own: Option<&PolicySpec>,
    ) -> crate::policy::effective::Effective {
        use crate::policy::effective::{Effective, Layer};
        let mut layers = match own {
            Some(spec) => caller.narrowed_by(id, spec).layers,
            None => caller.layers.clone(),
        };
        layers.push(Layer {
            name: format!("the policy of the called workflow {}", self.file.value),
            spec: self.callee.policy.clone(),
            file: self.callee.file.clone(),
            source: self.callee.source.clone(),
            narrows: false,
        });
        Effective::new(layers)
    }
}

#[derive(Debug)]
pub struct Task {
    pub tool: &'static dyn Tool,
    /// Written as `run:` rather than `tool: shell`.
    pub shorthand: bool,
    /// The tool's arguments, `run:` included for the shorthand.
    pub with: Box<[(String, yaml::Node)]>,
    /// The span of the `run:` or `tool:` value, for policy diagnostics.
    pub span: Span,
}

impl Task {
    /// The capabilities its calls need (a tool may need less than its spec lists, depending
    /// on the call: see `Tool::capabilities_of`).
    pub fn capabilities(&self) -> CapSet {
        self.tool.capabilities_of(&self.with)
    }

    /// The `max_calls` key its calls count against besides the tool and the node.
    pub fn limit_key(&self) -> Option<String> {
        self.tool.limit_key(&self.with)
    }
}

#[derive(Debug)]
pub enum ForEach {
    Items(Vec<serde_json::Value>),
    Expression(Sp<String>),
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Task(_) => "task",
            NodeKind::Branch { .. } => "branch",
            NodeKind::Fork(_) => "fork",
            NodeKind::Join(_) => "join",
            NodeKind::Approval { .. } => "approval",
            NodeKind::Loop(_) => "loop",
            NodeKind::Call(_) => "workflow",
        }
    }
}

impl Node {
    /// "shell", "echo", ... for tasks; the kind for the others.
    pub fn label(&self) -> &'static str {
        match &self.kind {
            NodeKind::Task(t) => t.tool.spec().name,
            other => other.name(),
        }
    }
}

impl Workflow {
    /// Number of dependency edges (`deps` and `after`).
    pub fn edge_count(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.deps.len() + n.after.len())
            .sum()
    }

    /// The capabilities the workflow's tools need.
    pub fn capabilities_needed(&self) -> CapSet {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Task(t) => Some(t.capabilities()),
                NodeKind::Loop(l) => Some(l.body.capabilities_needed()),
                // A callee's calls are checked against its own (narrower) policy at run
                // time; statically, the caller must grant what they need as well.
                NodeKind::Call(c) => Some(c.callee.capabilities_needed()),
                _ => None,
            })
            .fold(CapSet::EMPTY, CapSet::union)
    }

    /// This workflow and every workflow nested in it (loop bodies, called files, and theirs),
    /// depth first: what the run's redaction must know of before anything runs.
    pub fn each_nested<'a>(&'a self, f: &mut impl FnMut(&'a Workflow)) {
        f(self);
        for node in &self.nodes {
            match &node.kind {
                NodeKind::Loop(l) => l.body.each_nested(f),
                NodeKind::Call(c) => c.callee.each_nested(f),
                _ => {}
            }
        }
    }

    pub fn node_index(&self, id: &str) -> Option<NodeIdx> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .map(|i| i as NodeIdx)
    }
}
