//! Admission: what is settled about a run before its first node starts. The policy layers
//! (organisation, workflow) are combined into the effective policy, the static capability
//! check runs, the tools are checked to be runnable here, and the inputs are resolved.
//!
//! `kairos run`, `validate` and `replay` all go through here, so a run and its replay are
//! admitted by the same rules.

use crate::ledger::event::RunStart;
use crate::policy::effective::{Effective, Layer};
use crate::policy::{CapSet, Capability, PolicySpec};
use crate::syntax::LoadError;
use crate::syntax::diag::{WorkflowError, ss};
use crate::syntax::yaml::Node as Yaml;
use crate::workflow::{NodeKind, Workflow};
use serde_json::{Map, Value};
use std::path::Path;

/// Why a run cannot be admitted.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("unknown input `{name}`")]
    #[diagnostic(code(kairos::unknown_input), help("{help}"))]
    UnknownInput { name: String, help: String },
    #[error("input `{name}` has no default and was not given")]
    #[diagnostic(
        code(kairos::missing_input),
        help("pass it with `--input {name}=VALUE`")
    )]
    MissingInput { name: String },
    #[error("input `{name}` is {bytes} bytes long, more than the limit of {limit} bytes")]
    #[diagnostic(
        code(kairos::input_too_long),
        help("large data belongs in a file that a task reads; see docs/workflow.md#limits")
    )]
    InputTooLong {
        name: String,
        bytes: usize,
        limit: usize,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Redaction(#[from] crate::policy::redact::RedactError),
}

/// Checks that the redaction the policy asks for (its `redact` patterns and the values of its
/// `secrets`, as set now) can be built: a run without it would write secrets in clear, so
/// `kairos run` and `kairos validate` refuse such a policy.
pub fn check_redaction(policy: &Effective) -> Result<(), PlanError> {
    let (patterns, secrets) = policy.redaction();
    crate::policy::redact::Redactor::new(&patterns, &secrets)?;
    Ok(())
}

/// An organisation policy: the file it was read from (named in diagnostics), what it says, and
/// its text, which `RunStart` records so that a replay rebuilds the same effective policy.
#[derive(Clone, Debug)]
pub struct Organisation {
    pub file: String,
    pub spec: PolicySpec,
    /// Its `executor:` settings (none when the file has no such block).
    pub executor: crate::exec::ExecutorSpec,
    pub source: String,
}

impl Organisation {
    /// Reads `--policy ORG.yaml`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let (spec, executor, source) = crate::policy::load_file(path)?;
        Ok(Organisation {
            file: path.display().to_string(),
            spec,
            executor,
            source,
        })
    }

    /// The organisation policy a run recorded, if it had one; `Err` holds why its text is
    /// not YAML.
    pub fn recorded(start: &RunStart<'_>) -> Result<Option<Self>, String> {
        let Some(source) = start.organisation_source() else {
            return Ok(None);
        };
        let node = crate::syntax::yaml::parse(source).map_err(|e| e.message)?;
        // The run was admitted under this text; what it got wrong was reported then, and the
        // replay must have the policy the run had, not a corrected one.
        let (node, executor) = crate::policy::split_executor(node);
        let spec = PolicySpec::read(&node, &mut Vec::new());
        let executor = executor
            .map(|e| crate::exec::ExecutorSpec::read(&e, &mut Vec::new()))
            .unwrap_or_default();
        Ok(Some(Organisation {
            file: "organisation policy".into(),
            spec,
            executor,
            source: source.to_string(),
        }))
    }
}

/// The policy a run is admitted under: the organisation policy, when there is one, narrows the
/// workflow's. A run and its replay get theirs from here.
pub fn effective_policy(workflow: &Workflow, org: Option<&Organisation>) -> Effective {
    Effective::new(layers(
        workflow,
        org.map(|o| (o.file.as_str(), &o.spec, o.source.as_str())),
    ))
    .with_key_envs(crate::tools::llm_secret_names(workflow))
    .with_nested_redaction(nested_patterns(workflow), nested_secrets(workflow))
}

/// The `redact` patterns of the workflows this one calls (its own are a layer already), and
/// of its nodes' own policies: a pattern masks what it matches wherever it appears.
fn nested_patterns(workflow: &Workflow) -> Vec<String> {
    let mut patterns = Vec::new();
    workflow.each_nested(&mut |w| {
        if !std::ptr::eq(w, workflow) {
            patterns.extend(w.policy.redact.iter().map(|p| p.value.clone()));
        }
        for spec in w.nodes.iter().filter_map(|n| n.policy.as_deref()) {
            patterns.extend(spec.redact.iter().map(|p| p.value.clone()));
        }
    });
    patterns
}

/// The secrets of the workflows nested in this one: called files' `secrets`, those of every
/// node's own policy, and the variables every `mcp_servers:` entry passes from kairos's
/// environment (`{ env: NAME }`).
fn nested_secrets(workflow: &Workflow) -> Vec<String> {
    let mut secrets = Vec::new();
    workflow.each_nested(&mut |w| {
        if !std::ptr::eq(w, workflow) {
            secrets.extend(w.policy.secrets.iter().map(|s| s.value.clone()));
        }
        for spec in w.nodes.iter().filter_map(|n| n.policy.as_deref()) {
            secrets.extend(spec.secrets.iter().map(|s| s.value.clone()));
        }
        secrets.extend(crate::workflow::servers::secret_env(&w.mcp_servers));
    });
    secrets.sort();
    secrets.dedup();
    secrets
}

/// What is known about an approval a decision names by its instance id (`ship`, `review#2/ok`,
/// `notes/publish`): the `approvers` lists of the called files on the way, which a decision's
/// approver must be in as much as the run's (`docs/policy.md#approvals`).
#[derive(Debug, Default)]
pub struct ApprovalSite {
    approvers: Vec<Vec<String>>,
}

impl ApprovalSite {
    /// Checks who decides against the run's `approvers` and those of the called files.
    pub fn check_approver(&self, policy: &Effective, approver: Option<&str>) -> Result<(), String> {
        policy.check_approver(approver)?;
        for list in &self.approvers {
            match approver {
                Some(name) if list.iter().any(|a| a == name) => {}
                Some(name) => {
                    return Err(format!(
                        "`{name}` may not approve: the called workflow's policy allows {}",
                        list.join(", ")
                    ));
                }
                None => {
                    return Err(
                        "the called workflow's policy lists who may approve: give `--approver NAME`"
                            .into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The approval `id` names in `workflow`, under `policy`: an approval node, or a task whose
/// call waits for one (`require_approval` of the run, of the called files and of the loop,
/// call and task nodes on the way); `None` when `id` names no such node. Inside loops and
/// calls `id` is an instance id: `LOOP#N/` for iteration N (at most `max_iterations`), `CALL/`
/// for a call.
pub fn approval_site(workflow: &Workflow, id: &str, policy: &Effective) -> Option<ApprovalSite> {
    let parsed = crate::ledger::id::parse(id)?;
    if parsed.last.item.is_some() || parsed.last.iteration.is_some() {
        return None;
    }
    let mut required = policy.require_approval;
    let mut site = ApprovalSite::default();
    let mut at = workflow;
    for segment in &parsed.scopes {
        let node = at.nodes.iter().find(|n| n.id == segment.node)?;
        if let Some(own) = node.policy.as_deref() {
            required = own.requiring(required);
        }
        at = match (&node.kind, segment.iteration, segment.item) {
            (NodeKind::Loop(l), Some(n), None) if n >= 1 && n <= l.max_iterations => &l.body,
            (NodeKind::Call(c), None, None) => {
                let callee = &c.callee.policy;
                required = callee.requiring(required);
                if !callee.approvers.is_empty() {
                    site.approvers
                        .push(callee.approvers.iter().map(|a| a.value.clone()).collect());
                }
                &c.callee
            }
            _ => return None,
        };
    }
    let node = at.nodes.iter().find(|n| n.id == parsed.last.node)?;
    let waits = match &node.kind {
        NodeKind::Approval { .. } => true,
        NodeKind::Task(t) => {
            let required = node
                .policy
                .as_deref()
                .map_or(required, |p| p.requiring(required));
            !t.capabilities().intersect(required).is_empty()
        }
        _ => false,
    };
    waits.then_some(site)
}

/// The layers of a run's policy: the organisation's (if any), then the workflow's.
pub fn layers(
    workflow: &crate::workflow::Workflow,
    org: Option<(&str, &PolicySpec, &str)>,
) -> Vec<Layer> {
    let mut out = Vec::new();
    if let Some((file, spec, source)) = org {
        out.push(Layer {
            name: "the organisation policy".into(),
            spec: spec.clone(),
            file: file.to_string(),
            source: source.into(),
            narrows: true,
        });
    }
    out.push(Layer {
        name: "the workflow policy".into(),
        spec: workflow.policy.clone(),
        file: workflow.file.clone(),
        source: workflow.source.clone(),
        narrows: false,
    });
    out
}

/// The static check: every task's tool capabilities against the policy. Returns one
/// diagnostic per missing capability, whose help says which layer withholds it and what line
/// to add or change where.
pub fn check_capabilities(
    workflow: &crate::workflow::Workflow,
    policy: &Effective,
) -> Vec<WorkflowError> {
    let mut out = Vec::new();
    // Parsed again only to find where keys are, and only once a violation is found (a file
    // with violations is rare, and parsing a large one takes most of the loading time).
    let tree = std::cell::OnceCell::new();
    let tree = || {
        tree.get_or_init(|| {
            (!workflow.source.is_empty())
                .then(|| crate::syntax::yaml::parse(&workflow.source).ok())
                .flatten()
        })
    };
    for (index, node) in workflow.nodes.iter().enumerate() {
        let task = match &node.kind {
            NodeKind::Task(task) => task,
            // A loop's body is in this file: its tasks are checked where they are written,
            // under the loop node's own policy too.
            NodeKind::Loop(l) => {
                let narrowed = node
                    .policy
                    .as_deref()
                    .map(|spec| policy.narrowed_by(&node.id, spec));
                out.extend(check_capabilities(
                    &l.body,
                    narrowed.as_ref().unwrap_or(policy),
                ));
                continue;
            }
            // A called file's tasks need the caller's grant too (its policy only narrows):
            // what they lack is reported at the call, which is in this file.
            NodeKind::Call(c) => {
                // Under the call node's own policy and the called file's, as the call runs.
                let callee = c.policy(policy, &node.id, node.policy.as_deref());
                // The called file's tasks (its loops' and its own calls' included), each
                // reported at this call, which is in this file: one error per capability.
                let mut reported = Vec::new();
                for inner in check_capabilities(&c.callee, &callee) {
                    let WorkflowError::CapabilityNotGranted {
                        id,
                        capability,
                        help,
                        ..
                    } = inner
                    else {
                        continue;
                    };
                    if reported.contains(&capability) {
                        continue;
                    }
                    out.push(WorkflowError::CapabilityNotGranted {
                        id: node.id.to_string(),
                        capability: capability.clone(),
                        span: ss(c.file.span),
                        tool: c.file.value.clone(),
                        help: Some(format!(
                            "node `{id}` of `{}` needs `{capability}`; {}",
                            c.file.value,
                            help.unwrap_or_default()
                        )),
                    });
                    reported.push(capability);
                }
                continue;
            }
            _ => continue,
        };
        let granted = policy.granted_for(node.policy.as_deref());
        for cap in task.capabilities().iter().filter(|c| !granted.contains(*c)) {
            let places = Places {
                workflow,
                tree: tree().as_ref(),
                node: index,
            };
            out.push(WorkflowError::CapabilityNotGranted {
                id: node.id.to_string(),
                capability: cap.name().to_string(),
                span: ss(task.span),
                tool: task.tool.spec().name.to_string(),
                help: Some(refusal_help(&places, policy, node.policy.as_deref(), cap)),
            });
        }
    }
    out
}

/// What a layer grants by itself: its preset (or, when it has none, everything for a layer
/// that narrows the one around it), plus `allow`, minus `deny`.
fn grants(spec: &PolicySpec, narrows: bool) -> CapSet {
    let base = match &spec.preset {
        Some(p) => p.value.capabilities(),
        None if narrows => CapSet::ALL,
        None => CapSet::EMPTY,
    };
    let allowed = spec.allow.iter().fold(base, |s, c| s.with(c.value));
    spec.deny.iter().fold(allowed, |s, c| s.without(c.value))
}

/// Where the policy keys of a workflow file are, for "add this line there".
struct Places<'a> {
    workflow: &'a Workflow,
    tree: Option<&'a Yaml>,
    /// The node the diagnostic is about (its index in `nodes`).
    node: usize,
}

impl Places<'_> {
    /// `FILE:LINE` of a byte offset.
    fn at(&self, offset: usize) -> String {
        let source = &self.workflow.source;
        let line = source[..offset.min(source.len())].matches('\n').count() + 1;
        format!("{}:{line}", self.workflow.file)
    }

    /// The `policy:` mapping of the workflow (`node: false`) or of the node: its key's
    /// offset, and the offsets of its `allow` and `deny` keys.
    fn policy(&self, of_node: bool) -> Option<(usize, Option<usize>, Option<usize>)> {
        let mut map = self.tree?;
        if of_node {
            let (_, nodes) = entry(map, "nodes")?;
            let crate::syntax::yaml::Value::Seq(items) = &nodes.value else {
                return None;
            };
            map = items.get(self.node)?;
        }
        let (key, policy) = entry(map, "policy")?;
        let offset = |k| entry(policy, k).map(|(key, _)| key.span.offset());
        Some((key.span.offset(), offset("allow"), offset("deny")))
    }

    /// How to grant `cap` in one layer (the workflow's or the node's) that withholds it.
    fn fix(&self, spec: &PolicySpec, narrows: bool, cap: Capability, of_node: bool) -> String {
        let whose = if of_node {
            "the node's"
        } else {
            "the workflow's"
        };
        let keys = self.policy(of_node);
        let mut steps = Vec::new();
        if let Some(d) = spec.deny.iter().find(|d| d.value == cap) {
            steps.push(format!(
                "remove `{cap}` from {whose} `deny` at {}",
                self.at(d.span.offset())
            ));
        }
        let without_deny = PolicySpec {
            deny: Vec::new(),
            ..spec.clone()
        };
        if !grants(&without_deny, narrows).contains(cap) {
            steps.push(match keys {
                Some((_, Some(allow), _)) => {
                    format!("add `{cap}` to {whose} `allow` at {}", self.at(allow))
                }
                Some((policy, None, _)) => format!(
                    "add `allow: [{cap}]` under {whose} `policy:` at {}",
                    self.at(policy)
                ),
                None if of_node => format!("add `policy: {{ allow: [{cap}] }}` to the node"),
                None => format!(
                    "add a `policy:` block with `allow: [{cap}]` at the top level of {}",
                    self.workflow.file
                ),
            });
        }
        steps.join(" and ")
    }
}

/// The value of `key` in a mapping, with its key node.
fn entry<'a>(map: &'a Yaml, key: &str) -> Option<(&'a Yaml, &'a Yaml)> {
    let crate::syntax::yaml::Value::Map(entries) = &map.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(k, v)| (k, v))
}

/// The help of a capability refusal: which layer withholds `cap` and, when the workflow can
/// grant it, what to add or change where. An organisation policy cannot be widened by a
/// workflow, so then the help names the organisation's line instead.
fn refusal_help(
    places: &Places<'_>,
    policy: &Effective,
    node: Option<&PolicySpec>,
    cap: Capability,
) -> String {
    let withholds = |l: &&Layer| !grants(&l.spec, l.narrows).contains(cap);
    if let Some(org) = policy.layers.iter().filter(|l| l.narrows).find(withholds) {
        let why = policy.withheld_by(cap, None, true);
        if Effective::is_node_layer(org) {
            return format!("{why}; a node's policy applies to everything the node runs");
        }
        return format!(
            "{why}; a workflow can only narrow {}, so only a change to {} can grant `{cap}`",
            org.name, org.file
        );
    }
    let mut fixes = Vec::new();
    let workflow = policy.layers.iter().find(|l| !l.narrows);
    if let Some(layer) = workflow.filter(withholds) {
        fixes.push(places.fix(&layer.spec, false, cap, false));
    }
    let node = node.filter(|spec| !grants(spec, true).contains(cap));
    if let Some(spec) = node {
        fixes.push(places.fix(spec, true, cap, true));
    }
    // The layer named is the one the first fix is about.
    let why = policy.withheld_by(cap, if fixes.len() == 1 { node } else { None }, true);
    if fixes.is_empty() {
        return why;
    }
    format!("{why}; to grant it, {}", fixes.join(", and "))
}

/// Reads `--input` values: YAML scalars (`5` is a number, `true` a boolean), else text.
fn parse_input_value(text: &str) -> Value {
    match crate::syntax::yaml::parse(text) {
        Ok(node)
            if !matches!(
                node.value,
                crate::syntax::yaml::Value::Seq(_) | crate::syntax::yaml::Value::Map(_)
            ) =>
        {
            match node.value {
                crate::syntax::yaml::Value::Null => Value::String(text.to_string()),
                _ => node.to_json(),
            }
        }
        _ => Value::String(text.to_string()),
    }
}

/// The run's inputs: declared defaults, overridden by `--input`.
pub fn resolve_inputs(
    workflow: &Workflow,
    given: &[(String, String)],
) -> Result<Map<String, Value>, PlanError> {
    let mut inputs = Map::new();
    for (name, _) in given {
        if !workflow.inputs.iter().any(|i| &i.name == name) {
            let names: Vec<&str> = workflow.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(PlanError::UnknownInput {
                name: name.clone(),
                help: if names.is_empty() {
                    "this workflow declares no inputs".into()
                } else {
                    format!("declared inputs: {}", names.join(", "))
                },
            });
        }
    }
    for input in &workflow.inputs {
        let value = match given.iter().rev().find(|(n, _)| n == &input.name) {
            // A value given once may be copied into every call that reads it.
            Some((_, v)) if v.len() > crate::workflow::limits::LITERAL_BYTES => {
                return Err(PlanError::InputTooLong {
                    name: input.name.clone(),
                    bytes: v.len(),
                    limit: crate::workflow::limits::LITERAL_BYTES,
                });
            }
            Some((_, v)) => parse_input_value(v),
            None => input
                .default
                .clone()
                .ok_or_else(|| PlanError::MissingInput {
                    name: input.name.clone(),
                })?,
        };
        inputs.insert(input.name.clone(), value);
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_over_a_mebibyte_is_refused() {
        let wf = crate::workflow::load_str(
            "wf.yaml",
            "version: 1\nname: big\ninputs:\n  text: { default: small }\nnodes:\n  - id: a\n    tool: echo\n    with: { message: \"{{ inputs.text }}\" }\n",
        )
        .unwrap();
        let big = "x".repeat(crate::workflow::limits::LITERAL_BYTES + 1);
        let err = resolve_inputs(&wf, &[("text".into(), big)]).unwrap_err();
        assert!(
            err.to_string().contains(
                "input `text` is 1048577 bytes long, more than the limit of 1048576 bytes"
            ),
            "{err}"
        );
        let fits = "x".repeat(crate::workflow::limits::LITERAL_BYTES);
        assert!(resolve_inputs(&wf, &[("text".into(), fits)]).is_ok());
    }
}
