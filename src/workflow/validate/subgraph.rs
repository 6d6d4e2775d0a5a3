//! Reading the node kinds that hold a sub-graph: a `loop:` (its body read as a graph of its
//! own with [`Checker::graph`], and its loop-level keys) and a `workflow:` call (the called
//! file read and validated with the calls that led to it), and the rules about what a
//! sub-graph may hold (`docs/workflow.md#loops`, `docs/workflow.md#calls`).

use super::{CALL_KEYS, Checker, LOOP_KEYS, OUTER, load_called, primary_offset};
use crate::policy::PolicySpec;
use crate::syntax::diag::{WorkflowError, did_you_mean, ss};
use crate::syntax::read::{self, Fields, Sp};
use crate::syntax::yaml::{self, Value};
use crate::workflow::expr::{Form, Scope};
use crate::workflow::limits;
use crate::workflow::model::{Call, Defaults, Loop, Node, NodeIdx, NodeKind, OnMax, Workflow};
use std::collections::HashMap;
use std::path::Path;

impl Checker<'_, '_> {
    /// Reads a `loop:` node's block: its body as a graph of its own, and its loop-level
    /// expressions, which see the body's nodes (this iteration's) and `loop`. What the body
    /// reads from outside it is added to `used`: the loop waits for those nodes.
    pub(super) fn loop_kind(
        &mut self,
        id: &str,
        value: &yaml::Node,
        scope: &Scope<'_>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<Box<Loop>> {
        let f = Fields::new(value, "loop", LOOP_KEYS, self.errors)?;
        let max_iterations = self.max_iterations(&f);
        let on_max = self.on_max(&f);
        let items: &[yaml::Node] = match f.require("nodes", self.errors).map(|n| (n, &n.value)) {
            Some((_, Value::Seq(items))) if !items.is_empty() => items,
            Some((n, _)) => {
                self.errors
                    .push(read::wrong_type(n, "a non-empty list of nodes"));
                &[]
            }
            None => &[],
        };
        let (nodes, own, outer_reads) = self.graph(items, scope.nodes, scope.inputs, true);
        for (child, _) in &own {
            self.body_ids.push((child.to_string(), id.to_string()));
        }
        let ids: HashMap<&str, NodeIdx> = own.iter().copied().collect();
        let (body_scope, outer) = combined(&ids, scope.nodes);
        let inner = Scope {
            nodes: &body_scope,
            inputs: scope.inputs,
            loop_vars: false,
            in_loop: true,
        };
        let mut reads = Vec::new();
        // `state` is rendered once, before the loop, where the loop node sits.
        let state = self.named_values(&f, "state", scope, used);
        let update = self.named_values(&f, "update", &inner, &mut reads);
        if let Some((name, _)) = update
            .iter()
            .find(|(n, _)| !state.iter().any(|(s, _)| s == n))
        {
            self.errors.push(WorkflowError::InvalidValue {
                message: format!("`update` sets `{name}`, which `state` does not declare"),
                span: ss(f.key_span("update").unwrap_or(value.span)),
                label: "not in `state`".into(),
                help: Some(
                    "declare every loop-carried value with its first value under `state`".into(),
                ),
            });
        }
        let until = f
            .get("until")
            .and_then(|n| read::expression(n, self.errors));
        if let Some(u) = &until {
            self.expr(u, Form::Expression, &inner, &mut reads);
        }
        let output = f.get("output").cloned();
        if let Some(o) = &output {
            self.value_templates(o, &inner, &mut reads);
        }
        // The body's reads of enclosing nodes, and the loop-level expressions' ones.
        used.extend(outer_reads);
        for r in reads.iter().filter(|&&r| r & OUTER != 0) {
            used.push(scope.nodes[outer[(r & !OUTER) as usize]]);
        }
        let n = nodes.len() as NodeIdx;
        Some(Box::new(Loop {
            body: Workflow {
                file: String::new(),
                source: "".into(),
                version: 1,
                name: String::new(),
                description: None,
                seed: 0,
                inputs: Vec::new(),
                defaults: Defaults::default(),
                policy: PolicySpec::default(),
                // The run's servers, network limits and executor serve the body too: its
                // `mcp` tasks hold their server's definition, and its calls go to the run's
                // lanes.
                mcp_servers: Vec::new(),
                network: Default::default(),
                executor: Default::default(),
                nodes,
                outputs: Vec::new(),
                // Every body node's value is kept: `loop.previous`, `update`, `until` read them.
                output_reads: (0..n).collect(),
            },
            max_iterations: max_iterations?,
            until,
            state,
            update,
            on_max: on_max?,
            output,
            agent: false,
        }))
    }

    /// A loop's `max_iterations`: required, from 1 to [`limits::LOOP_ITERATIONS`].
    fn max_iterations(&mut self, f: &Fields<'_>) -> Option<u32> {
        let n = f
            .require("max_iterations", self.errors)
            .and_then(|n| read::non_negative(n, self.errors))?;
        if n.value == 0 || n.value > limits::LOOP_ITERATIONS {
            self.errors.push(WorkflowError::InvalidValue {
                message: format!(
                    "`max_iterations` must be from 1 to {}",
                    limits::LOOP_ITERATIONS
                ),
                span: ss(n.span),
                label: "out of range".into(),
                help: Some("see docs/workflow.md#limits".into()),
            });
            return None;
        }
        Some(n.value as u32)
    }

    /// A loop's `on_max`: `fail` (the default) or `succeed`.
    fn on_max(&mut self, f: &Fields<'_>) -> Option<OnMax> {
        let Some(n) = f.get("on_max") else {
            return Some(OnMax::Fail);
        };
        let v = read::string(n, self.errors)?;
        match v.value.as_str() {
            "fail" => Some(OnMax::Fail),
            "succeed" => Some(OnMax::Succeed),
            _ => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!("`on_max` is `fail` or `succeed`, not `{}`", v.value),
                    span: ss(v.span),
                    label: "unknown value".into(),
                    help: None,
                });
                None
            }
        }
    }

    /// A mapping of names to values whose strings are templates in `scope` (a loop's `state`
    /// and `update`).
    fn named_values(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        scope: &Scope<'_>,
        reads: &mut Vec<NodeIdx>,
    ) -> Vec<(String, yaml::Node)> {
        let Some(n) = f.get(key) else {
            return Vec::new();
        };
        let Value::Map(map) = &n.value else {
            self.errors
                .push(read::wrong_type(n, "a mapping of names to values"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            if let Some(name) = read::scalar_text(k, self.errors) {
                self.value_templates(v, scope, reads);
                out.push((name.value, v.clone()));
            }
        }
        out
    }

    /// Reads a `workflow:` node's block: the called file is read and validated here, with
    /// the calls that led to it (a cycle is refused), and its inputs checked against what
    /// it declares.
    pub(super) fn call_kind(
        &mut self,
        value: &yaml::Node,
        scope: &Scope<'_>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<Box<Call>> {
        let f = Fields::new(value, "workflow", CALL_KEYS, self.errors)?;
        let file = f
            .require("file", self.errors)
            .and_then(|n| read::string(n, self.errors))?;
        let mut inputs = Vec::new();
        if let Some(n) = f.get("inputs") {
            match &n.value {
                Value::Map(map) => {
                    for (k, v) in map {
                        if let Some(name) = read::scalar_text(k, self.errors) {
                            self.value_templates(v, scope, used);
                            inputs.push((name, v.clone()));
                        }
                    }
                }
                _ => self
                    .errors
                    .push(read::wrong_type(n, "a mapping of input names to values")),
            }
        }
        let (callee, sha256) = self.called_file(&file)?;
        for (name, _) in &inputs {
            if !callee.inputs.iter().any(|i| i.name == name.value) {
                self.errors.push(WorkflowError::UnknownReference {
                    what: "input of the called workflow",
                    name: name.value.clone(),
                    span: ss(name.span),
                    help: did_you_mean(&name.value, callee.inputs.iter().map(|i| i.name.as_str())),
                });
            }
        }
        for input in callee.inputs.iter().filter(|i| i.default.is_none()) {
            if !inputs.iter().any(|(n, _)| n.value == input.name) {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!("the called workflow needs input `{}`", input.name),
                    span: ss(file.span),
                    label: "called here".into(),
                    help: Some("give it under `inputs:`".into()),
                });
            }
        }
        Some(Box::new(Call {
            file,
            sha256,
            callee,
            inputs: inputs.into_iter().map(|(n, v)| (n.value, v)).collect(),
        }))
    }

    /// Reads and validates the file a `workflow:` node calls (`file` as written): relative to
    /// this file, not absolute, not one of the calls that led here, not too deep. Its errors
    /// become one diagnostic at the call, each line naming the called file, line and column.
    fn called_file(&mut self, file: &Sp<String>) -> Option<(Workflow, String)> {
        let invalid = |message: String, help: Option<String>| WorkflowError::InvalidValue {
            message,
            span: ss(file.span),
            label: "called here".into(),
            help,
        };
        if Path::new(&file.value).is_absolute() || file.value.is_empty() {
            self.errors.push(invalid(
                "a called workflow's `file` is a path relative to the calling file".into(),
                Some(
                    "the ledger records it; an absolute path would tie the run to this host".into(),
                ),
            ));
            return None;
        }
        let path = Path::new(self.file)
            .parent()
            .unwrap_or(Path::new(""))
            .join(&file.value);
        let shown = path.display().to_string();
        // From a ledger, the file is the recorded text (its path as the call wrote it).
        let canonical = match &self.recorded {
            Some(_) => Some(path.clone()),
            None => std::fs::canonicalize(&path).ok(),
        };
        if let Some(c) = &canonical
            && self.stack.contains(c)
        {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain([c])
                .map(|p| {
                    p.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                })
                .collect();
            self.errors.push(invalid(
                format!("this call makes a cycle: {}", chain.join(" -> ")),
                Some("a workflow cannot call itself, directly or through others".into()),
            ));
            return None;
        }
        if self.stack.len() >= limits::CALL_DEPTH {
            self.errors.push(invalid(
                format!("calls nest deeper than {} files", limits::CALL_DEPTH),
                Some("see docs/workflow.md#limits".into()),
            ));
            return None;
        }
        let source = match &self.recorded {
            Some(recorded) => match recorded.get(&file.value) {
                Some(s) => s.clone(),
                None => {
                    self.errors.push(invalid(
                        "the ledger records no called file by this path".into(),
                        None,
                    ));
                    return None;
                }
            },
            // Only a regular file: a FIFO or a device would block or never end.
            None if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) => {
                self.errors.push(invalid(
                    format!("`{shown}` is not a workflow file (not found, or not a regular file)"),
                    None,
                ));
                return None;
            }
            None => match crate::syntax::read_text(&path) {
                Ok(s) => s,
                Err(e) => {
                    self.errors.push(invalid(
                        format!("cannot read the called workflow: {e}"),
                        None,
                    ));
                    return None;
                }
            },
        };
        let read = self.calls.get() + 1;
        if read > limits::CALLS {
            self.errors.push(invalid(
                format!(
                    "the calls of this workflow and the files it calls read more than {} files in all",
                    limits::CALLS
                ),
                Some("see docs/workflow.md#limits".into()),
            ));
            return None;
        }
        self.calls.set(read);
        let mut stack = self.stack.clone();
        stack.extend(canonical);
        let sha256 = crate::ledger::sha256_hex(source.as_bytes());
        let calls = std::rc::Rc::clone(&self.calls);
        match load_called(
            &shown,
            source,
            self.tools,
            stack,
            self.recorded.clone(),
            calls,
        ) {
            Ok(w) => Some((w, sha256)),
            Err(d) => {
                let text = d.source.inner();
                let index = crate::syntax::diag::LineIndex::new(text);
                let lines: Vec<String> = d
                    .errors
                    .iter()
                    .map(|e| {
                        let (line, col) = index.line_column(text, primary_offset(e));
                        format!("{shown}:{line}:{col}: {e}")
                    })
                    .collect();
                self.errors.push(invalid(
                    format!("the called workflow `{}` is invalid", file.value),
                    Some(lines.join("\n")),
                ));
                None
            }
        }
    }

    /// What a loop and a call cannot have yet: `for_each` on the loop or call node itself; nor
    /// can an approval, branch, fork or join node.
    pub(super) fn scope_rules(&mut self, f: &Fields<'_>, kind: Option<&NodeKind>) {
        let at = |key: &str| ss(f.key_span(key).unwrap_or_default());
        match kind {
            Some(NodeKind::Loop(_) | NodeKind::Call(_)) if f.get("for_each").is_some() => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: "`for_each` is for task nodes; a loop or a call runs once".into(),
                    span: at("for_each"),
                    label: "not on this node".into(),
                    help: Some("put the `for_each` on a node inside the loop's body".into()),
                });
            }
            // An approval, a branch, a fork or a join is decided once: there is no `item`.
            Some(kind) if !matches!(kind, NodeKind::Task(_)) && f.get("for_each").is_some() => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: "`for_each` is for task nodes; this node is decided once".into(),
                    span: at("for_each"),
                    label: "not on this node".into(),
                    help: Some(
                        "fan out over the items in a task node, and decide on its result".into(),
                    ),
                });
            }
            _ => {}
        }
    }

    /// A reference from outside a loop to a node of its body is an unknown node there; say
    /// where the node is and what to read instead.
    pub(super) fn explain_body_references(&mut self, body_ids: &[(String, String)]) {
        for e in self.errors.iter_mut() {
            let (WorkflowError::UnknownReference { name, help, .. }
            | WorkflowError::UnknownNode { id: name, help, .. }) = e
            else {
                continue;
            };
            if let Some((_, l)) = body_ids.iter().find(|(child, _)| child == name) {
                *help = Some(format!(
                    "`{name}` is a node of the body of loop `{l}`, which only its body sees; read `nodes.{l}.output` instead"
                ));
            }
        }
    }
}

/// The ids expressions see at one level: its own (their indices), then the enclosing ones
/// (`OUTER` with their position in the second list, sorted so the scope does not depend on
/// hash order).
pub(super) fn combined<'a>(
    own: &HashMap<&'a str, NodeIdx>,
    visible: &HashMap<&'a str, NodeIdx>,
) -> (HashMap<&'a str, NodeIdx>, Vec<&'a str>) {
    let mut outer: Vec<&'a str> = visible.keys().copied().collect();
    outer.sort_unstable();
    let mut all: HashMap<&'a str, NodeIdx> = own.clone();
    for (k, id) in outer.iter().enumerate() {
        all.entry(id).or_insert(OUTER | k as NodeIdx);
    }
    (all, outer)
}

/// Takes a body node's reads of enclosing nodes out of its lists (the loop waits for them
/// instead) and gives them as the enclosing level's scope values.
pub(super) fn split_outer(
    node: &mut Node,
    outer: &[&str],
    visible: &HashMap<&str, NodeIdx>,
) -> Vec<NodeIdx> {
    let local = |v: &NodeIdx| v & OUTER == 0;
    if node.reads.iter().all(local) {
        return Vec::new();
    }
    let extern_ = node
        .reads
        .iter()
        .filter(|v| !local(v))
        .map(|&v| visible[outer[(v & !OUTER) as usize]])
        .collect();
    node.reads = node.reads.iter().copied().filter(local).collect();
    node.after = node.after.iter().copied().filter(local).collect();
    extern_
}
