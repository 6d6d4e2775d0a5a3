//! Stage two: from the YAML tree to a validated [`Workflow`].
//!
//! Reading and checking happen in passes over the node list, each linear in the file: ids
//! first (so references can be resolved in one look-up each), then every node's keys,
//! expressions and references, then the graph (cycles, by Kahn's algorithm, iteratively).
//! Errors are collected, sorted by position, and returned together.

use super::expr::{self, Form, Scope};
use super::limits;
use super::model::{
    Defaults, ForEach, Input, Network, Node, NodeIdx, NodeKind, Retry, Task, Workflow,
};
use super::servers::{self, McpServer};
use crate::policy::PolicySpec;
use crate::syntax::diag::{Diagnostics, WorkflowError, did_you_mean, ss};
use crate::syntax::duration;
use crate::syntax::read::{self, Errors, Fields, Sp};
use crate::syntax::yaml::{self, Span, Value};
use crate::tools::{self, KeyKind, ToolSpec};
use miette::{LabeledSpan, NamedSource};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use subgraph::{combined, split_outer};

mod agent;
mod subgraph;
use std::time::Duration;

pub const WORKFLOW_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "seed",
    "inputs",
    "defaults",
    "policy",
    "mcp_servers",
    "network",
    "executor",
    "nodes",
    "outputs",
];
pub const NODE_KEYS: &[&str] = &[
    "id",
    "description",
    "needs",
    "if",
    "timeout",
    "retry",
    "continue_on_error",
    "priority",
    "for_each",
    "policy",
    "run",
    "tool",
    "with",
    "branch",
    "fork",
    "join",
    "approval",
    "loop",
    "workflow",
    "agent",
];
pub const KIND_KEYS: &[&str] = &[
    "run", "tool", "branch", "fork", "join", "approval", "loop", "workflow", "agent",
];
pub const LOOP_KEYS: &[&str] = &[
    "max_iterations",
    "until",
    "state",
    "update",
    "on_max",
    "output",
    "nodes",
];
pub const CALL_KEYS: &[&str] = &["file", "inputs"];
pub const INPUT_KEYS: &[&str] = &["default", "description"];
pub const DEFAULTS_KEYS: &[&str] = &["timeout", "retry"];
pub const NETWORK_KEYS: &[&str] = &["max_concurrent", "per_host"];
pub const RETRY_KEYS: &[&str] = &["attempts", "backoff", "factor", "max_backoff"];
pub const BRANCH_KEYS: &[&str] = &["if", "then", "else"];
pub const APPROVAL_KEYS: &[&str] = &["prompt"];
/// `with:` keys of a `run:` shorthand node.
pub const SHORTHAND_WITH_KEYS: &[&str] = &["env", "cwd", "stdin"];

/// Reads and checks a workflow. `file` is the name diagnostics show.
pub fn load(file: &str, source: String) -> Result<Workflow, Diagnostics> {
    load_with(file, source, tools::Toolbox::BUILTIN)
}

/// [`load`], with the tools of `toolbox` (tests add fake tools).
pub fn load_with(
    file: &str,
    source: String,
    toolbox: tools::Toolbox,
) -> Result<Workflow, Diagnostics> {
    let stack = std::fs::canonicalize(file).into_iter().collect();
    load_called(file, source, toolbox, stack, None, Rc::default())
}

/// [`load`] for a workflow recorded in a ledger: the files it calls are taken from
/// `recorded` (their text by path as written, from the ledger's `WorkflowCall` lines), never
/// from the disk.
pub fn load_recorded(
    file: &str,
    source: String,
    recorded: Arc<HashMap<String, String>>,
) -> Result<Workflow, Diagnostics> {
    load_called(
        file,
        source,
        tools::Toolbox::BUILTIN,
        Vec::new(),
        Some(recorded),
        Rc::default(),
    )
}

/// [`load_with`] for a file reached through `workflow:` calls: `stack` holds the files of
/// the calls that led here (canonical paths, outermost first), to refuse a cycle.
fn load_called(
    file: &str,
    source: String,
    toolbox: tools::Toolbox,
    stack: Vec<PathBuf>,
    recorded: Option<Arc<HashMap<String, String>>>,
    calls: Rc<Cell<usize>>,
) -> Result<Workflow, Diagnostics> {
    let mut errors = Vec::new();
    let workflow = match yaml::parse(&source) {
        Ok(root) => Checker {
            source: &source,
            errors: &mut errors,
            tools: toolbox,
            servers: Vec::new(),
            file,
            stack,
            calls,
            defaults: Defaults::default(),
            body_ids: Vec::new(),
            recorded,
        }
        .workflow(&root),
        Err(e) => {
            errors.push(WorkflowError::Syntax {
                message: e.message,
                span: ss(e.span),
            });
            None
        }
    };
    match workflow {
        Some(mut w) if errors.is_empty() => {
            adopt(&mut w, file, source.into());
            Ok(w)
        }
        _ => {
            errors.sort_by_key(primary_offset);
            Err(Diagnostics {
                source: Arc::new(NamedSource::new(file, source)),
                errors,
            })
        }
    }
}

/// Where the diagnostic is (its primary label), for sorting.
fn primary_offset(e: &WorkflowError) -> usize {
    crate::syntax::diag::labels_primary_first(e)
        .first()
        .map_or(0, LabeledSpan::offset)
}

struct Checker<'s, 'e> {
    source: &'s str,
    errors: &'e mut Errors,
    tools: tools::Toolbox,
    /// `mcp_servers:`, read before the nodes that name them.
    servers: Vec<McpServer>,
    /// The file's name as given (`workflow:` paths are relative to its directory).
    file: &'s str,
    /// The files of the calls that led to this one, this one last (canonical paths).
    stack: Vec<PathBuf>,
    /// Calls read so far in the whole tree of calls from the top file: each call site reads
    /// its file again, so a few files calling each other several times would grow without
    /// bound (docs/workflow.md, "Limits").
    calls: Rc<Cell<usize>>,
    defaults: Defaults,
    /// Ids declared in loop bodies, with their loop's id (for messages and `max_calls`).
    body_ids: Vec<(String, String)>,
    /// Called files' text by path as written, when the workflow comes from a ledger.
    recorded: Option<Arc<HashMap<String, String>>>,
}

/// Bit set in a scope's node index for a node of an enclosing level (read by a loop's body):
/// the rest is its position in that scope's list of outer ids.
const OUTER: u32 = 1 << 31;

/// Gives the file name and source to a workflow and the bodies of its loops (which share
/// them); a called workflow keeps its own.
fn adopt(w: &mut Workflow, file: &str, source: Arc<str>) {
    w.file = file.to_string();
    w.source = source;
    for node in &mut w.nodes {
        if let NodeKind::Loop(l) = &mut node.kind {
            adopt(&mut l.body, file, w.source.clone());
            l.body.name = w.name.clone();
        }
    }
}

/// What pass one learns about a node (kept small: there is one per node).
struct Head<'n> {
    item: &'n yaml::Node,
    id: &'n str,
    valid_id: bool,
    span: Span,
}

impl Checker<'_, '_> {
    fn workflow(&mut self, root: &yaml::Node) -> Option<Workflow> {
        read::check_duplicate_keys(root, self.errors);
        self.check_literal_sizes(root);
        let f = Fields::new(root, "workflow", WORKFLOW_KEYS, self.errors)?;

        let version = f
            .require("version", self.errors)
            .and_then(|n| self.version(n));
        let name = f
            .require("name", self.errors)
            .and_then(|n| read::string(n, self.errors));
        if let Some(name) = &name
            && !valid_name(name)
        {
            self.errors.push(WorkflowError::InvalidName {
                name: name.value.clone(),
                span: ss(name.span),
            });
        }
        let description = f
            .get("description")
            .and_then(|n| read::string(n, self.errors))
            .map(|s| s.value);
        let seed = f
            .get("seed")
            .and_then(|n| read::non_negative(n, self.errors))
            .map_or(0, |s| s.value);
        let inputs = f.get("inputs").map(|n| self.inputs(n)).unwrap_or_default();
        let defaults = f
            .get("defaults")
            .map(|n| self.defaults(n))
            .unwrap_or_default();
        let policy = f
            .get("policy")
            .map(|n| PolicySpec::read(n, self.errors))
            .unwrap_or_default();
        let network = f
            .get("network")
            .map(|n| self.network(n))
            .unwrap_or_default();

        self.servers = f
            .get("mcp_servers")
            .map(|n| servers::read(n, self.errors))
            .unwrap_or_default();
        let executor = f
            .get("executor")
            .map(|n| crate::exec::ExecutorSpec::read(n, self.errors))
            .unwrap_or_default();

        let items: &[yaml::Node] = match f.require("nodes", self.errors).map(|n| (n, &n.value)) {
            Some((_, Value::Seq(items))) if !items.is_empty() => items,
            Some((n, Value::Seq(_))) => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: "a workflow needs at least one node".into(),
                    span: ss(n.span),
                    label: "empty".into(),
                    help: None,
                });
                &[]
            }
            Some((n, _)) => {
                self.errors.push(read::wrong_type(n, "a list of nodes"));
                &[]
            }
            None => &[],
        };

        let input_names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        self.defaults = defaults.clone();
        let top = HashMap::new();
        let (nodes, own, _) = self.graph(items, &top, &input_names, false);
        let ids: HashMap<&str, NodeIdx> = own.iter().map(|(id, i)| (*id, *i)).collect();
        let (outputs, output_reads) = f
            .get("outputs")
            .map(|n| self.outputs(n, &ids, &input_names))
            .unwrap_or_default();
        let body_ids = std::mem::take(&mut self.body_ids);
        let mut known = ids.clone();
        for (child, _) in &body_ids {
            known.entry(child.as_str()).or_insert(0);
        }
        self.max_call_keys(&policy, &known);
        for node in &nodes {
            if let Some(p) = &node.policy {
                self.max_call_keys(p, &known);
            }
        }
        self.explain_body_references(&body_ids);

        Some(Workflow {
            file: String::new(),
            source: "".into(),
            version: version?,
            name: name?.value,
            description,
            seed,
            inputs,
            defaults,
            policy,
            mcp_servers: std::mem::take(&mut self.servers),
            network,
            executor,
            nodes,
            outputs,
            output_reads,
        })
    }

    fn version(&mut self, n: &yaml::Node) -> Option<u64> {
        match n.value {
            Value::Int(1) => Some(1),
            Value::Int(_) | Value::Float(_) => {
                self.errors.push(WorkflowError::UnsupportedVersion {
                    found: n.scalar_text(),
                    span: ss(n.span),
                });
                None
            }
            _ => {
                self.errors.push(read::wrong_type(n, "the integer 1"));
                None
            }
        }
    }

    fn inputs(&mut self, n: &yaml::Node) -> Vec<Input> {
        let Value::Map(entries) = &n.value else {
            self.errors.push(read::wrong_type(
                n,
                "a mapping of input names to declarations",
            ));
            return Vec::new();
        };
        let mut inputs = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Some(name) = read::string(key, self.errors) else {
                continue;
            };
            if !valid_input_name(&name) {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!("invalid input name `{}`", name.value),
                    span: ss(name.span),
                    label: "not a valid input name".into(),
                    help: Some(
                        "input names are identifiers (letters, digits, `_`), used as `inputs.NAME`"
                            .into(),
                    ),
                });
            }
            let (default, description) = match &value.value {
                Value::Map(_) => {
                    let Some(f) = Fields::new(value, "input", INPUT_KEYS, self.errors) else {
                        continue;
                    };
                    (
                        f.get("default").map(yaml::Node::to_json),
                        f.get("description")
                            .and_then(|d| read::string(d, self.errors))
                            .map(|s| s.value),
                    )
                }
                Value::Seq(_) => {
                    self.errors.push(read::wrong_type(
                        value,
                        "a mapping with `default` and `description`, or a default value",
                    ));
                    continue;
                }
                Value::Null => (None, None),
                _ => (Some(value.to_json()), None),
            };
            inputs.push(Input {
                name: name.value,
                default,
                description,
                span: name.span,
            });
        }
        inputs
    }

    fn defaults(&mut self, n: &yaml::Node) -> Defaults {
        let Some(f) = Fields::new(n, "defaults", DEFAULTS_KEYS, self.errors) else {
            return Defaults::default();
        };
        Defaults {
            timeout: f.get("timeout").and_then(|n| self.timeout(n)),
            retry: f.get("retry").and_then(|n| self.retry(n)),
        }
    }

    fn network(&mut self, n: &yaml::Node) -> Network {
        let Some(f) = Fields::new(n, "network", NETWORK_KEYS, self.errors) else {
            return Network::default();
        };
        let max_concurrent = f.get("max_concurrent").and_then(|n| self.count(n));
        let mut per_host = std::collections::BTreeMap::new();
        match f.get("per_host").map(|n| (n, &n.value)) {
            None => {}
            Some((_, Value::Map(entries))) => {
                for (host, limit) in entries {
                    let name = host.scalar_text().to_ascii_lowercase();
                    let bad_name = name.is_empty()
                        || name.contains(['/', ':', '*', '@'])
                        || name.chars().any(char::is_whitespace);
                    if bad_name {
                        self.errors.push(WorkflowError::InvalidValue {
                            message: format!("`{name}` is not a host name"),
                            span: ss(host.span),
                            label: "not a host".into(),
                            help: Some(
                                "a host as a URL names it, without scheme or port: api.example.com"
                                    .into(),
                            ),
                        });
                    } else if let Some(limit) = self.count(limit) {
                        per_host.insert(name, limit);
                    }
                }
            }
            Some((n, _)) => self
                .errors
                .push(read::wrong_type(n, "a mapping of host names to limits")),
        }
        Network {
            max_concurrent,
            per_host,
        }
    }

    /// A positive count of calls.
    fn count(&mut self, n: &yaml::Node) -> Option<usize> {
        let value = read::non_negative(n, self.errors)?;
        if value.value == 0 {
            self.errors.push(WorkflowError::InvalidValue {
                message: "a limit of 0 would let no call run".into(),
                span: ss(n.span),
                label: "zero".into(),
                help: Some("give 1 or more".into()),
            });
            return None;
        }
        Some(usize::try_from(value.value).unwrap_or(usize::MAX))
    }

    /// A call's time limit: a duration, and more than none.
    fn timeout(&mut self, n: &yaml::Node) -> Option<Duration> {
        let limit = self.duration(n)?;
        if limit.is_zero() {
            self.errors.push(zero_timeout(n.span));
            return None;
        }
        Some(limit)
    }

    fn duration(&mut self, n: &yaml::Node) -> Option<Duration> {
        match &n.value {
            Value::Str(s) => {
                match duration::check(s) {
                    Ok(d) => Some(d),
                    Err(duration::Invalid::Syntax) => {
                        self.errors.push(WorkflowError::InvalidDuration {
                            text: s.to_string(),
                            span: ss(n.span),
                        });
                        None
                    }
                    Err(duration::Invalid::TooLong) => {
                        self.errors.push(WorkflowError::InvalidValue {
                            message: format!(
                                "duration `{}` is longer than the longest allowed, {}",
                                // The text may be any number of digits long.
                                s.chars().take(40).collect::<String>()
                                    + if s.chars().count() > 40 { "…" } else { "" },
                                duration::format(duration::MAX)
                            ),
                            span: ss(n.span),
                            label: "too long".into(),
                            help: Some(
                                "a run waits at most 7 days (`168h`) at a time; see docs/workflow.md"
                                    .into(),
                            ),
                        });
                        None
                    }
                }
            }
            Value::Int(_) | Value::Float(_) => {
                self.errors.push(WorkflowError::InvalidDuration {
                    text: n.scalar_text(),
                    span: ss(n.span),
                });
                None
            }
            _ => {
                self.errors
                    .push(read::wrong_type(n, "a duration such as `30s`"));
                None
            }
        }
    }

    fn retry(&mut self, n: &yaml::Node) -> Option<Retry> {
        let f = Fields::new(n, "retry", RETRY_KEYS, self.errors)?;
        let attempts = f
            .require("attempts", self.errors)
            .and_then(|a| read::integer(a, self.errors));
        let attempts = attempts.and_then(|a| match u32::try_from(a.value) {
            Ok(v) if v >= 1 => Some(v),
            _ => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!("retry attempts must be at least 1, found {}", a.value),
                    span: ss(a.span),
                    label: "out of range".into(),
                    help: Some("`attempts` counts every attempt, the first included".into()),
                });
                None
            }
        });
        let backoff = f
            .get("backoff")
            .map_or(Some(Duration::from_secs(1)), |b| self.duration(b));
        let factor = match f.get("factor") {
            None => Some(2.0),
            Some(n) => read::number(n, self.errors).and_then(|x| {
                if x.value >= 1.0 && x.value.is_finite() {
                    Some(x.value)
                } else {
                    self.errors.push(WorkflowError::InvalidValue {
                        message: format!("backoff factor must be at least 1, found {}", x.value),
                        span: ss(x.span),
                        label: "out of range".into(),
                        help: None,
                    });
                    None
                }
            }),
        };
        let max_backoff = match f.get("max_backoff") {
            None => None,
            Some(n) => Some(self.duration(n)?),
        };
        Some(Retry {
            attempts: attempts?,
            backoff: backoff?,
            factor: factor?,
            max_backoff,
        })
    }

    /// Reads a list of nodes as one graph: the workflow's, or a loop's body (`visible`: the
    /// ids of the enclosing levels, which the body's expressions may read). Gives the nodes
    /// (their `deps`, `after` and `reads` in this graph's indices), this level's ids, and the
    /// enclosing nodes the body reads (as `visible` has them: the loop waits for those; see
    /// [`split_outer`]).
    fn graph<'n>(
        &mut self,
        items: &'n [yaml::Node],
        visible: &HashMap<&'n str, NodeIdx>,
        inputs: &[&str],
        in_loop: bool,
    ) -> (Vec<Node>, Vec<(&'n str, NodeIdx)>, Vec<NodeIdx>) {
        // Pass one: ids.
        let heads: Vec<Head<'n>> = items.iter().map(|item| self.head(item)).collect();
        let mut ids: HashMap<&'n str, NodeIdx> = HashMap::with_capacity(heads.len());
        let mut own = Vec::with_capacity(heads.len());
        for (i, head) in heads.iter().enumerate() {
            if head.id.is_empty() || !head.valid_id {
                continue;
            }
            if let Some(&first) = ids.get(head.id) {
                self.errors.push(WorkflowError::DuplicateId {
                    id: head.id.to_string(),
                    first: ss(heads[first as usize].span),
                    second: ss(head.span),
                });
            } else if visible.contains_key(head.id) {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!("node id `{}` is already used outside this loop", head.id),
                    span: ss(head.span),
                    label: "used again here".into(),
                    help: Some("ids are unique in the whole file, loop bodies included".into()),
                });
            } else {
                ids.insert(head.id, i as NodeIdx);
                own.push((head.id, i as NodeIdx));
            }
        }
        // What expressions here see: this level's nodes, then the enclosing ones.
        let (scope_nodes, outer) = combined(&ids, visible);
        // Pass two: every node. A node that could not be read stands in as a kind-less
        // placeholder so that the graph checks still run and report their errors too; a
        // Workflow with errors is never returned.
        let mut nodes = Vec::with_capacity(heads.len());
        let mut outer_reads = Vec::new();
        for head in &heads {
            let node = self.node(head, &ids, &scope_nodes, inputs, in_loop);
            let mut node = node.unwrap_or_else(|| placeholder(head));
            if !outer.is_empty() {
                outer_reads.extend(split_outer(&mut node, &outer, visible));
            }
            nodes.push(node);
        }
        link(&mut nodes);
        self.check_acyclic(&nodes);
        (nodes, own, outer_reads)
    }

    fn head<'n>(&mut self, item: &'n yaml::Node) -> Head<'n> {
        let fields = Fields::new(item, "node", NODE_KEYS, self.errors);
        let mut head = Head {
            id: "",
            valid_id: true,
            span: item.span,
            item,
        };
        if let Some(f) = &fields
            && let Some(id) = f
                .require("id", self.errors)
                .and_then(|n| read::str(n, self.errors))
        {
            if !valid_id(&id) {
                self.errors.push(WorkflowError::InvalidId {
                    id: id.value.to_string(),
                    span: ss(id.span),
                });
                head.valid_id = false;
            }
            head.id = id.value;
            head.span = id.span;
        }
        head
    }

    /// Resolves a list of node ids.
    fn refs(
        &mut self,
        n: &yaml::Node,
        role: &'static str,
        ids: &HashMap<&str, NodeIdx>,
    ) -> Vec<Sp<NodeIdx>> {
        read::string_list(n, self.errors)
            .into_iter()
            .filter_map(|id| match ids.get(id.as_str()) {
                Some(&idx) => Some(Sp::new(idx, id.span)),
                None => {
                    self.errors.push(WorkflowError::UnknownNode {
                        help: did_you_mean(&id, ids.keys().copied()),
                        id: id.value,
                        role,
                        span: ss(id.span),
                    });
                    None
                }
            })
            .collect()
    }

    fn expr(&mut self, text: &Sp<String>, form: Form, scope: &Scope<'_>, used: &mut Vec<NodeIdx>) {
        used.extend(expr::check(text, form, scope, self.source, self.errors));
    }

    /// Checks every string inside a structured value as a template.
    fn value_templates(&mut self, n: &yaml::Node, scope: &Scope<'_>, used: &mut Vec<NodeIdx>) {
        let mut stack = vec![n];
        while let Some(n) = stack.pop() {
            match &n.value {
                Value::Str(s) => {
                    self.expr(&Sp::new(s.to_string(), n.span), Form::Template, scope, used)
                }
                Value::Seq(items) => stack.extend(items),
                Value::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
                _ => {}
            }
        }
    }

    fn node(
        &mut self,
        head: &Head<'_>,
        ids: &HashMap<&str, NodeIdx>,
        visible: &HashMap<&str, NodeIdx>,
        inputs: &[&str],
        in_loop: bool,
    ) -> Option<Node> {
        let defaults = &self.defaults.clone();
        let f = &Fields::checked(head.item, "node", NODE_KEYS)?;
        let needs: Vec<NodeIdx> = f
            .get("needs")
            .map(|n| self.refs(n, "needs", ids))
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect();
        let scope = Scope {
            nodes: visible,
            inputs,
            loop_vars: f.get("for_each").is_some(),
            in_loop,
        };
        let mut used = Vec::new();

        let condition = f.get("if").and_then(|n| read::expression(n, self.errors));
        if let Some(c) = &condition {
            self.expr(c, Form::Expression, &scope, &mut used);
        }
        let for_each = f
            .get("for_each")
            .and_then(|n| self.for_each(n, &scope, &mut used));
        let timeout = f
            .get("timeout")
            .and_then(|n| self.timeout(n))
            .or(defaults.timeout);
        let retry = match f.get("retry") {
            Some(n) => self.retry(n),
            None => defaults.retry.clone(),
        };
        let continue_on_error = f
            .get("continue_on_error")
            .and_then(|n| read::boolean(n, self.errors))
            .is_some_and(|b| b.value);
        let priority = f
            .get("priority")
            .and_then(|n| read::integer(n, self.errors))
            .map_or(0, |p| p.value);
        let policy = f
            .get("policy")
            .map(|n| Box::new(PolicySpec::read(n, self.errors)));
        if let Some(fields) = f.get("policy").and_then(|p| {
            read::Fields::new(p, "policy", crate::policy::POLICY_KEYS, &mut Vec::new())
        }) {
            // What is the whole run's to decide cannot differ from one node to the next.
            for (key, what) in [
                ("budget", "`budget` caps the run's model calls"),
                (
                    "enforcement",
                    "`enforcement` says how the whole run treats a denial",
                ),
                (
                    "approvers",
                    "`approvers` says who may decide any of the run's approvals",
                ),
            ] {
                if let Some(span) = fields.key_span(key) {
                    self.errors.push(WorkflowError::InvalidValue {
                        message: format!("a node's policy cannot set `{key}`"),
                        span: ss(span),
                        label: "the whole run's".into(),
                        help: Some(format!(
                            "{what}: set it in the workflow's `policy:` (or the organisation policy)"
                        )),
                    });
                }
            }
        }
        let description = f
            .get("description")
            .and_then(|n| read::string(n, self.errors))
            .map(|s| s.value);

        let kind = self.node_kind(head, f, &scope, ids, &mut used);
        self.scope_rules(f, kind.as_ref());

        used.sort_unstable();
        used.dedup();
        Some(Node {
            id: head.id.into(),
            span: head.span,
            kind: kind.unwrap_or(NodeKind::Fork(Box::default())),
            deps: needs.into(),
            reads: used.as_slice().into(),
            after: used.into(),
            condition: condition.map(Box::new),
            timeout,
            retry: retry.map(Box::new),
            continue_on_error,
            priority,
            for_each: for_each.map(Box::new),
            policy,
            description: description.map(String::into_boxed_str),
        })
    }

    /// Refuses every string in the file longer than [`limits::LITERAL_BYTES`].
    fn check_literal_sizes(&mut self, root: &yaml::Node) {
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            match &n.value {
                Value::Str(s) if s.len() > limits::LITERAL_BYTES => {
                    self.errors.push(WorkflowError::InvalidValue {
                        message: format!(
                            "this string is {} bytes long, more than the limit of {} bytes",
                            s.len(),
                            limits::LITERAL_BYTES
                        ),
                        span: ss(n.span),
                        label: "too long".into(),
                        help: Some(
                            "large data belongs in a file that a task reads; see docs/workflow.md#limits"
                                .into(),
                        ),
                    });
                }
                Value::Seq(items) => stack.extend(items.iter()),
                Value::Map(entries) => stack.extend(entries.iter().flat_map(|(k, v)| [k, v])),
                _ => {}
            }
        }
    }

    /// Reads `for_each`: a list, or an expression that gives one (which cannot use the loop's
    /// own `item` and `index`).
    fn for_each(
        &mut self,
        n: &yaml::Node,
        scope: &Scope<'_>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<ForEach> {
        match &n.value {
            Value::Seq(items) if items.len() > limits::FOR_EACH_ITEMS => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!(
                        "`for_each` lists {} items, more than the limit of {}",
                        items.len(),
                        limits::FOR_EACH_ITEMS
                    ),
                    span: ss(n.span),
                    label: "too many items".into(),
                    help: Some(
                        "split the work over several nodes; see docs/workflow.md#limits".into(),
                    ),
                });
                None
            }
            Value::Seq(items) => Some(ForEach::Items(
                items.iter().map(yaml::Node::to_json).collect(),
            )),
            Value::Str(s) => {
                let text = Sp::new(s.to_string(), n.span);
                let outer = Scope {
                    loop_vars: false,
                    ..*scope
                };
                self.expr(&text, Form::Expression, &outer, used);
                Some(ForEach::Expression(text))
            }
            _ => {
                self.errors.push(read::wrong_type(
                    n,
                    "a list, or an expression that gives a list",
                ));
                None
            }
        }
    }

    /// Reads the node's kind: its one key of [`KIND_KEYS`] (none, or two, is an error) and
    /// its `with`, which only task nodes have.
    fn node_kind(
        &mut self,
        head: &Head<'_>,
        f: &Fields<'_>,
        scope: &Scope<'_>,
        ids: &HashMap<&str, NodeIdx>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<NodeKind> {
        let mut kinds: Vec<(&'static str, Span)> = KIND_KEYS
            .iter()
            .filter_map(|&k| f.key_span(k).map(|s| (k, s)))
            .collect();
        kinds.sort_by_key(|(_, span)| span.offset());
        let with = f.get("with");
        match kinds.as_slice() {
            [] => {
                self.errors.push(WorkflowError::NoKind {
                    id: head.id.to_string(),
                    span: ss(head.span),
                });
                None
            }
            [(first_kind, first), (second_kind, second), ..] => {
                self.errors.push(WorkflowError::TwoKinds {
                    id: head.id.to_string(),
                    first_kind,
                    second_kind,
                    first: ss(*first),
                    second: ss(*second),
                });
                None
            }
            [(kind, _)] => {
                if with.is_some() && !matches!(*kind, "run" | "tool") {
                    self.errors.push(WorkflowError::InvalidValue {
                        message: format!("`with` belongs to task nodes, not to a `{kind}` node"),
                        span: ss(f.key_span("with").unwrap_or(head.span)),
                        label: "not used by this node".into(),
                        help: None,
                    });
                }
                let value = f.get(kind).expect("kind key present");
                self.kind(head.id, kind, value, with, scope, ids, used)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn kind(
        &mut self,
        id: &str,
        kind: &str,
        value: &yaml::Node,
        with: Option<&yaml::Node>,
        scope: &Scope<'_>,
        ids: &HashMap<&str, NodeIdx>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<NodeKind> {
        match kind {
            "run" => {
                let run = read::string(value, self.errors)?;
                self.expr(&run, Form::Template, scope, used);
                let tool = tools::find("shell").expect("shell is a built-in tool");
                let mut args = vec![("run".to_string(), value.clone())];
                args.extend(self.with(
                    tool.spec(),
                    with,
                    SHORTHAND_WITH_KEYS,
                    value.span,
                    scope,
                    used,
                )?);
                Some(NodeKind::Task(Task {
                    tool,
                    shorthand: true,
                    with: args.into(),
                    span: value.span,
                }))
            }
            "tool" => {
                let name = read::string(value, self.errors)?;
                let Some(tool) = self.tools.find(&name) else {
                    self.errors.push(WorkflowError::UnknownTool {
                        help: did_you_mean(&name, self.tools.names()).or_else(|| {
                            Some(format!(
                                "built-in tools: {}",
                                self.tools.names().collect::<Vec<_>>().join(", ")
                            ))
                        }),
                        name: name.value,
                        span: ss(name.span),
                    });
                    return None;
                };
                let mut keys: Vec<&'static str> = tool.spec().key_names().collect();
                if let Some(Value::Map(entries)) = with.map(|w| &w.value) {
                    tool.check_with(entries, self.errors);
                    // Reported by the tool's own check, not again as unknown.
                    keys.extend(tool.refused_keys());
                }
                let mut with = self.with(tool.spec(), with, &keys, name.span, scope, used)?;
                // The one tool whose argument names something declared elsewhere in the file.
                if tool.spec().name == "mcp"
                    && !servers::resolve(&mut with, &self.servers, self.errors)
                {
                    return None;
                }
                Some(NodeKind::Task(Task {
                    tool,
                    shorthand: false,
                    with: with.into(),
                    span: name.span,
                }))
            }
            "branch" => {
                let f = Fields::new(value, "branch", BRANCH_KEYS, self.errors)?;
                let condition = f
                    .require("if", self.errors)
                    .and_then(|n| read::expression(n, self.errors));
                if let Some(c) = &condition {
                    self.expr(c, Form::Expression, scope, used);
                }
                let then = f
                    .require("then", self.errors)
                    .map(|n| self.refs(n, "then", ids))
                    .unwrap_or_default();
                let otherwise = f
                    .get("else")
                    .map(|n| self.refs(n, "else", ids))
                    .unwrap_or_default();
                for e in &otherwise {
                    if let Some(t) = then.iter().find(|t| t.value == e.value) {
                        let arm = self
                            .source
                            .get(e.span.offset()..e.span.end())
                            .unwrap_or_default();
                        self.errors.push(WorkflowError::BothArms {
                            id: arm.trim_matches(['"', '\'']).to_string(),
                            branch: id.to_string(),
                            then_span: ss(t.span),
                            else_span: ss(e.span),
                        });
                    }
                }
                Some(NodeKind::Branch {
                    condition: Box::new(condition?),
                    then: then.into_iter().map(|s| s.value).collect(),
                    otherwise: otherwise.into_iter().map(|s| s.value).collect(),
                })
            }
            "fork" => Some(NodeKind::Fork(
                self.refs(value, "fork", ids)
                    .into_iter()
                    .map(|s| s.value)
                    .collect(),
            )),
            "join" => Some(NodeKind::Join(
                self.refs(value, "join", ids)
                    .into_iter()
                    .map(|s| s.value)
                    .collect(),
            )),
            "loop" => self.loop_kind(id, value, scope, used).map(NodeKind::Loop),
            "workflow" => self.call_kind(value, scope, used).map(NodeKind::Call),
            "agent" => self.agent_kind(id, value, scope, used).map(NodeKind::Loop),
            "approval" => {
                let f = Fields::new(value, "approval", APPROVAL_KEYS, self.errors)?;
                let prompt = f
                    .require("prompt", self.errors)
                    .and_then(|n| read::string(n, self.errors))?;
                self.expr(&prompt, Form::Template, scope, used);
                Some(NodeKind::Approval {
                    prompt: prompt.value,
                })
            }
            _ => unreachable!("KIND_KEYS covers every kind"),
        }
    }

    /// Reads and checks a task's `with:` against its tool.
    fn with(
        &mut self,
        tool: &'static ToolSpec,
        with: Option<&yaml::Node>,
        allowed: &[&'static str],
        tool_span: Span,
        scope: &Scope<'_>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<Vec<(String, yaml::Node)>> {
        let entries: &[(yaml::Node, yaml::Node)] = match with.map(|w| (w, &w.value)) {
            None | Some((_, Value::Null)) => &[],
            Some((_, Value::Map(entries))) => entries,
            Some((w, _)) => {
                self.errors.push(read::wrong_type(
                    w,
                    &format!("a mapping of `{}` arguments", tool.name),
                ));
                return None;
            }
        };
        let context = format!("`with` of tool `{}`", tool.name);
        let mut ok = true;
        let mut args = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = key.scalar_text();
            let spec = tool.key(&name).filter(|_| allowed.contains(&name.as_str()));
            if spec.is_none() && allowed.contains(&name.as_str()) {
                // A key the tool refuses, reported by its own check.
                ok = false;
                continue;
            }
            let Some(spec) = spec else {
                self.errors.push(WorkflowError::UnknownKey {
                    help: did_you_mean(&name, allowed.iter().copied()).or_else(|| {
                        Some(if allowed.is_empty() {
                            format!("tool `{}` takes no arguments", tool.name)
                        } else {
                            format!("`{}` takes: {}", tool.name, allowed.join(", "))
                        })
                    }),
                    key: name,
                    context: context.clone(),
                    span: ss(key.span),
                });
                ok = false;
                continue;
            };
            match spec.kind {
                KeyKind::Template | KeyKind::ShellLine => match &value.value {
                    Value::Str(s) => self.expr(
                        &Sp::new(s.to_string(), value.span),
                        Form::Template,
                        scope,
                        used,
                    ),
                    Value::Seq(_) | Value::Map(_) | Value::Null => {
                        self.errors.push(read::wrong_type(value, "a string"));
                        ok = false;
                    }
                    _ => {}
                },
                KeyKind::Expression => match read::expression(value, self.errors) {
                    Some(s) => self.expr(&s, Form::Expression, scope, used),
                    None => ok = false,
                },
                KeyKind::Value => self.value_templates(value, scope, used),
                KeyKind::Duration => ok &= self.duration(value).is_some(),
            }
            args.push((name, value.clone()));
        }
        let given = |k: &str| entries.iter().any(|(key, _)| key.as_str() == Some(k));
        for spec in tool
            .keys
            .iter()
            .filter(|k| k.required && allowed.contains(&k.name))
        {
            if !given(spec.name) {
                self.errors.push(WorkflowError::MissingKey {
                    key: spec.name.to_string(),
                    context: context.clone(),
                    span: ss(with.map_or(tool_span, |w| w.span)),
                    help: Some(format!("`{}`: {}", spec.name, spec.doc)),
                });
                ok = false;
            }
        }
        for group in tool.one_of {
            let group: Vec<&str> = group
                .iter()
                .copied()
                .filter(|k| allowed.contains(k))
                .collect();
            if group.len() < 2 {
                continue;
            }
            let count = group.iter().filter(|k| given(k)).count();
            if count != 1 {
                let list = group
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.errors.push(WorkflowError::InvalidValue {
                    message: if count == 0 {
                        format!("tool `{}` needs one of {list}", tool.name)
                    } else {
                        format!("tool `{}` takes only one of {list}", tool.name)
                    },
                    span: ss(with.map_or(tool_span, |w| w.span)),
                    label: if count == 0 {
                        "missing argument"
                    } else {
                        "conflicting arguments"
                    }
                    .into(),
                    help: None,
                });
                ok = false;
            }
        }
        ok.then_some(args)
    }

    /// What only the tool knows about a `with:` (`Tool::check_with`), from the values as
    /// written.
    fn outputs(
        &mut self,
        n: &yaml::Node,
        ids: &HashMap<&str, NodeIdx>,
        inputs: &[&str],
    ) -> (Vec<(String, Sp<String>)>, Vec<NodeIdx>) {
        let Value::Map(entries) = &n.value else {
            self.errors.push(read::wrong_type(
                n,
                "a mapping of output names to templates",
            ));
            return (Vec::new(), Vec::new());
        };
        let scope = Scope {
            nodes: ids,
            inputs,
            loop_vars: false,
            in_loop: false,
        };
        let mut outputs = Vec::new();
        let mut reads = Vec::new();
        for (key, value) in entries {
            let (Some(name), Some(template)) = (
                read::scalar_text(key, self.errors),
                read::scalar_text(value, self.errors),
            ) else {
                continue;
            };
            self.expr(&template, Form::Template, &scope, &mut reads);
            outputs.push((name.value, template));
        }
        reads.sort_unstable();
        reads.dedup();
        (outputs, reads)
    }

    fn max_call_keys(&mut self, policy: &PolicySpec, ids: &HashMap<&str, NodeIdx>) {
        for (key, _) in &policy.max_calls {
            if self.tools.find(key).is_none()
                && !ids.contains_key(key.as_str())
                && !servers::is_limit_key(key, &self.servers)
            {
                self.errors.push(WorkflowError::UnknownNode {
                    help: did_you_mean(
                        key,
                        ids.keys()
                            .copied()
                            .chain(self.tools.names().map(|n| -> &str { n })),
                    )
                    .or_else(|| {
                        Some("`max_calls` limits a tool (by name), a node (by id) or an MCP server's tool (`mcp:SERVER/TOOL`)".into())
                    }),
                    id: key.value.clone(),
                    role: "max_calls",
                    span: ss(key.span),
                });
            }
        }
    }

    /// Reports every dependency cycle. Linear: Kahn's algorithm, then one walk back along
    /// the unfinished nodes' dependencies, which must close a cycle.
    fn check_acyclic(&mut self, nodes: &[Node]) {
        let n = nodes.len();
        let preds = |i: usize| {
            nodes[i]
                .deps
                .iter()
                .chain(&nodes[i].after)
                .map(|&d| d as usize)
        };
        let mut indegree: Vec<u32> = (0..n).map(|i| preds(i).count() as u32).collect();
        let mut succ_start = vec![0usize; n + 1];
        for i in 0..n {
            for p in preds(i) {
                succ_start[p + 1] += 1;
            }
        }
        for i in 0..n {
            succ_start[i + 1] += succ_start[i];
        }
        let mut fill = succ_start.clone();
        let mut succs = vec![0usize; succ_start[n]];
        for i in 0..n {
            for p in preds(i) {
                succs[fill[p]] = i;
                fill[p] += 1;
            }
        }
        let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut done = vec![false; n];
        while let Some(i) = queue.pop() {
            done[i] = true;
            for &s in &succs[succ_start[i]..succ_start[i + 1]] {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    queue.push(s);
                }
            }
        }
        // 0 = not visited, 1 = on the current walk (position + 2 stored in `at`), 2 = finished.
        let mut state = vec![0u8; n];
        let mut at = vec![0usize; n];
        for start in 0..n {
            if done[start] || state[start] != 0 {
                continue;
            }
            let mut walk = Vec::new();
            let mut v = start;
            loop {
                if state[v] == 2 {
                    break;
                }
                if state[v] == 1 {
                    let cycle = &walk[at[v]..];
                    self.errors.push(cycle_error(nodes, cycle));
                    break;
                }
                state[v] = 1;
                at[v] = walk.len();
                walk.push(v);
                v = preds(v)
                    .find(|&p| !done[p])
                    .expect("an unfinished node waits for an unfinished node");
            }
            for w in walk {
                state[w] = 2;
            }
        }
    }
}

fn placeholder(head: &Head<'_>) -> Node {
    Node {
        id: head.id.into(),
        span: head.span,
        kind: NodeKind::Fork(Box::default()),
        deps: Box::default(),
        after: Box::default(),
        reads: Box::default(),
        condition: None,
        timeout: None,
        retry: None,
        continue_on_error: false,
        priority: 0,
        for_each: None,
        policy: None,
        description: None,
    }
}

fn cycle_error(nodes: &[Node], cycle: &[usize]) -> WorkflowError {
    let mut path: Vec<&str> = cycle.iter().map(|&i| nodes[i].id.as_str()).collect();
    path.push(&nodes[cycle[0]].id);
    let labels = cycle
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let next = &nodes[cycle[(k + 1) % cycle.len()]].id;
            LabeledSpan::new_with_span(
                Some(format!("`{}` waits for `{next}`", nodes[i].id)),
                ss(nodes[i].span),
            )
        })
        .collect();
    WorkflowError::Cycle {
        path: path.join(" -> "),
        labels,
    }
}

/// Adds the implied dependencies: branch arms need the branch, fork children need the fork,
/// a join needs what it joins. `after` keeps only what `deps` does not already cover.
fn link(nodes: &mut [Node]) {
    let mut implied: Vec<(usize, NodeIdx)> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Branch {
                then, otherwise, ..
            } => {
                implied.extend(
                    then.iter()
                        .chain(otherwise)
                        .map(|&c| (c as usize, i as NodeIdx)),
                );
            }
            NodeKind::Fork(children) => {
                implied.extend(children.iter().map(|&c| (c as usize, i as NodeIdx)))
            }
            NodeKind::Join(parents) => implied.extend(parents.iter().map(|&p| (i, p))),
            _ => {}
        }
    }
    implied.sort_unstable();
    let mut implied = implied.as_slice();
    for (i, node) in nodes.iter_mut().enumerate() {
        let extra = implied.partition_point(|&(child, _)| child == i);
        let (mine, rest) = implied.split_at(extra);
        implied = rest;
        let sorted = node.deps.windows(2).all(|w| w[0] < w[1]);
        if !mine.is_empty() || !sorted {
            let mut deps = node.deps.to_vec();
            deps.extend(mine.iter().map(|&(_, parent)| parent));
            deps.sort_unstable();
            deps.dedup();
            node.deps = deps.into();
        }
        let deps = &node.deps;
        if node.after.iter().any(|a| deps.binary_search(a).is_ok()) {
            let after: Vec<NodeIdx> = node
                .after
                .iter()
                .copied()
                .filter(|a| deps.binary_search(a).is_err())
                .collect();
            node.after = after.into();
        }
    }
}

fn valid_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Node ids: a letter or `_`, then letters, digits, `_` or `-`; at most 64 bytes. No `.`,
/// `[` or `]`, which expressions and `for_each` instance ids (`id[3]`) use.
pub fn valid_id(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 64
        && matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_input_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The error of a time limit of 0, which would stop every call before it starts.
pub fn zero_timeout(span: yaml::Span) -> WorkflowError {
    WorkflowError::InvalidValue {
        message: "a timeout of 0 would stop every call before it starts".into(),
        span: ss(span),
        label: "zero".into(),
        help: Some("give a positive duration such as `30s`, or leave `timeout` out".into()),
    }
}
