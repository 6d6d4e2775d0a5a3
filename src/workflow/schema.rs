//! The JSON Schema of workflow files, for editors (`# yaml-language-server: $schema=...`).
//!
//! These types exist only to describe the file format; the reader in [`super::validate`] is
//! the authority. A unit test keeps the two in step: every object's property names must equal
//! the reader's key list, and the tool, capability and preset names come from their tables.

#![allow(dead_code)]

use crate::policy::{Capability, Preset};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::collections::BTreeMap;

const DURATION: &str = r"^([0-9]+(ms|s|m|h))+$";

/// A kairos workflow: a graph of tasks, branches, forks, joins and approvals.
#[derive(JsonSchema)]
#[schemars(title = "kairos workflow", deny_unknown_fields)]
pub struct WorkflowDoc {
    /// Workflow format version.
    #[schemars(range(min = 1, max = 1))]
    version: u8,
    /// Workflow name: lowercase letters, digits, `_` and `-`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    name: String,
    description: Option<String>,
    /// Default RNG seed; `kairos run --seed N` overrides it.
    seed: Option<u64>,
    /// Inputs, overridable with `--input key=value`.
    inputs: Option<BTreeMap<String, InputEntry>>,
    /// Apply to every task node unless it says otherwise.
    defaults: Option<DefaultsDoc>,
    policy: Option<PolicyDoc>,
    /// The nodes, in declaration order (which breaks ties in scheduling).
    #[schemars(length(min = 1))]
    nodes: Vec<NodeDoc>,
    /// Workflow outputs: templates rendered when the run ends.
    outputs: Option<BTreeMap<String, String>>,
}

/// An input: a declaration, or just its default value.
#[derive(JsonSchema)]
#[serde(untagged)]
enum InputEntry {
    Declared(InputDoc),
    Default(serde_json::Value),
}

/// An input declaration.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct InputDoc {
    default: Option<serde_json::Value>,
    description: Option<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct DefaultsDoc {
    #[schemars(regex(pattern = DURATION))]
    timeout: Option<String>,
    retry: Option<RetryDoc>,
}

/// Re-run a failed task with exponential backoff (jitter from the node's RNG).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct RetryDoc {
    /// Total attempts, the first included.
    #[schemars(range(min = 1))]
    attempts: u32,
    /// Wait before the second attempt (default 1s).
    #[schemars(regex(pattern = DURATION))]
    backoff: Option<String>,
    /// Multiplier per attempt (default 2).
    #[schemars(range(min = 1.0))]
    factor: Option<f64>,
    #[schemars(regex(pattern = DURATION))]
    max_backoff: Option<String>,
}

/// A node: exactly one of `run`, `tool`, `branch`, `fork`, `join`, `approval`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct NodeDoc {
    /// Unique id: a letter or `_`, then letters, digits, `_` or `-`.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"))]
    id: String,
    description: Option<String>,
    /// Nodes that must succeed first.
    needs: Option<Vec<String>>,
    /// Expression; when false the node is skipped.
    #[serde(rename = "if")]
    condition: Option<String>,
    #[schemars(regex(pattern = DURATION))]
    timeout: Option<String>,
    retry: Option<RetryDoc>,
    /// Record a failure and go on; dependents run.
    continue_on_error: Option<bool>,
    /// Higher runs first when more nodes are ready than workers.
    priority: Option<i64>,
    /// Fan-out: a list, or an expression giving a list; `item` and `index` are in scope.
    for_each: Option<ForEachDoc>,
    /// Node-level policy: can only narrow the workflow policy.
    policy: Option<PolicyDoc>,
    /// Shell command (shorthand for `tool: shell`).
    run: Option<String>,
    #[schemars(schema_with = "tool_name")]
    tool: Option<String>,
    /// The tool's arguments.
    with: Option<BTreeMap<String, serde_json::Value>>,
    branch: Option<BranchDoc>,
    /// Nodes spawned in parallel.
    fork: Option<Vec<String>>,
    /// Waits for all listed nodes; runs when at least one succeeded.
    join: Option<Vec<String>>,
    approval: Option<ApprovalDoc>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
enum ForEachDoc {
    Items(Vec<serde_json::Value>),
    Expression(String),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct BranchDoc {
    /// Expression choosing the arm.
    #[serde(rename = "if")]
    condition: String,
    then: Vec<String>,
    #[serde(rename = "else")]
    otherwise: Option<Vec<String>>,
}

/// A human decision.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ApprovalDoc {
    prompt: String,
}

/// What the workflow's tools may do (SPEC section 4).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PolicyDoc {
    #[schemars(schema_with = "preset_name")]
    preset: Option<String>,
    #[schemars(schema_with = "capability_list")]
    allow: Option<Vec<String>>,
    #[schemars(schema_with = "capability_list")]
    deny: Option<Vec<String>>,
    /// Call limits per tool name or node id.
    max_calls: Option<BTreeMap<String, u64>>,
    /// Regexes whose matches become [REDACTED].
    redact: Option<Vec<String>>,
    /// Environment variables whose values are masked everywhere.
    secrets: Option<Vec<String>>,
    paths: Option<PathsDoc>,
    hosts: Option<Vec<String>>,
    commands: Option<Vec<String>>,
    #[schemars(schema_with = "capability_list")]
    require_approval: Option<Vec<String>>,
    approvers: Option<Vec<String>>,
    enforcement: Option<EnforcementDoc>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct PathsDoc {
    read: Option<Vec<String>>,
    write: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
enum EnforcementDoc {
    Enforce,
    Audit,
}

fn tool_name(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = crate::tools::names().collect();
    json_schema!({ "type": "string", "enum": names })
}

fn preset_name(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
    json_schema!({ "type": "string", "enum": names })
}

fn capability_list(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = Capability::ALL.iter().map(|c| c.name()).collect();
    json_schema!({ "type": "array", "items": { "type": "string", "enum": names } })
}

/// The workflow schema as pretty JSON with a trailing newline.
pub fn workflow_schema() -> String {
    let schema = schemars::schema_for!(WorkflowDoc);
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::POLICY_KEYS;
    use crate::workflow::validate::*;
    use serde_json::Value;

    fn properties(schema: &Value, def: Option<&str>) -> Vec<String> {
        let object = match def {
            Some(name) => &schema["$defs"][name],
            None => schema,
        };
        let mut keys: Vec<String> = object["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn schema_keys_match_the_reader() {
        let schema: Value = serde_json::from_str(&workflow_schema()).unwrap();
        assert_eq!(properties(&schema, None), sorted(WORKFLOW_KEYS));
        assert_eq!(properties(&schema, Some("NodeDoc")), sorted(NODE_KEYS));
        assert_eq!(properties(&schema, Some("PolicyDoc")), sorted(POLICY_KEYS));
        assert_eq!(properties(&schema, Some("InputDoc")), sorted(INPUT_KEYS));
        assert_eq!(
            properties(&schema, Some("DefaultsDoc")),
            sorted(DEFAULTS_KEYS)
        );
        assert_eq!(properties(&schema, Some("RetryDoc")), sorted(RETRY_KEYS));
        assert_eq!(properties(&schema, Some("BranchDoc")), sorted(BRANCH_KEYS));
        assert_eq!(
            properties(&schema, Some("ApprovalDoc")),
            sorted(APPROVAL_KEYS)
        );
    }
}
