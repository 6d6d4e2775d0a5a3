//! Admission: what is settled about a run before its first node starts. The policy layers
//! (organisation, workflow) are combined into the effective policy, the static capability
//! check runs, the tools are checked to be runnable here, and the inputs are resolved.
//!
//! `kairos run`, `validate` and `replay` all go through here, so a run and its replay are
//! admitted by the same rules.

use crate::ledger::event::RunStart;
use crate::policy::effective::{Effective, Layer};
use crate::policy::{CapSet, PolicySpec};
use crate::syntax::LoadError;
use crate::syntax::diag::{WorkflowError, ss};
use crate::tools::Placement;
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
    #[error("node `{node}` uses tool `{tool}`, which this version of kairos cannot run yet")]
    #[diagnostic(code(kairos::tool_unavailable))]
    ToolUnavailable { node: String, tool: String },
}

/// An organisation policy: the file it was read from (named in diagnostics), what it says, and
/// its text, which `RunStart` records so that a replay rebuilds the same effective policy.
#[derive(Clone, Debug)]
pub struct Organisation {
    pub file: String,
    pub spec: PolicySpec,
    pub source: String,
}

impl Organisation {
    /// Reads `--policy ORG.yaml`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let (spec, source) = crate::policy::load_file(path)?;
        Ok(Organisation {
            file: path.display().to_string(),
            spec,
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
        let spec = PolicySpec::read(&node, &mut Vec::new());
        Ok(Some(Organisation {
            file: "organisation policy".into(),
            spec,
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
/// diagnostic per missing capability.
pub fn check_capabilities(
    workflow: &crate::workflow::Workflow,
    policy: &Effective,
) -> Vec<WorkflowError> {
    let mut out = Vec::new();
    for node in &workflow.nodes {
        let NodeKind::Task(task) = &node.kind else {
            continue;
        };
        let granted = policy.granted_for(node.policy.as_deref());
        for cap in CapSet::of(task.tool.spec().capabilities)
            .iter()
            .filter(|c| !granted.contains(*c))
        {
            out.push(WorkflowError::CapabilityNotGranted {
                id: node.id.to_string(),
                capability: cap.name().to_string(),
                span: ss(task.span),
                tool: task.tool.spec().name.to_string(),
                help: Some(policy.withheld_by(cap, node.policy.as_deref(), true)),
            });
        }
    }
    out
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

/// Checks that every tool the workflow uses can run here.
pub fn check_tools(workflow: &Workflow) -> Result<(), PlanError> {
    for node in &workflow.nodes {
        if let NodeKind::Task(t) = &node.kind
            && t.tool.placement() == Placement::Unavailable
        {
            return Err(PlanError::ToolUnavailable {
                node: node.id.to_string(),
                tool: t.tool.spec().name.to_string(),
            });
        }
    }
    Ok(())
}
