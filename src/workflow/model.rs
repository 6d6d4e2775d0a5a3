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

#[derive(Debug, Default)]
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
                _ => None,
            })
            .fold(CapSet::EMPTY, CapSet::union)
    }

    pub fn node_index(&self, id: &str) -> Option<NodeIdx> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .map(|i| i as NodeIdx)
    }
}
