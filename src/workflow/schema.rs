//! The JSON Schema of workflow files, for editors (`# yaml-language-server: $schema=...`) and
//! other checkers.
//!
//! These types exist only to describe the file format; the reader in [`super::validate`] is
//! the authority, and the schema says as much of what it checks as a schema can: keys, types,
//! names and patterns, ranges, exactly one kind per node, and each tool's `with:` keys. What
//! needs the whole file (duplicate keys or ids, references to nodes, cycles, expressions,
//! regexes and globs) is left to `kairos validate`. A unit test keeps the key lists in step
//! with the reader; tool, capability and preset names come from their tables; and
//! `tests/schema.rs` runs an independent validator on the examples and on invalid files.

#![allow(dead_code)]

use super::validate::{KIND_KEYS, SHORTHAND_WITH_KEYS};
use crate::policy::{Capability, Preset};
use crate::tools::{KeyKind, ToolSpec};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A duration: numbers with units that add up (`500ms`, `60s`, `1h30m`).
const DURATION: &str = r"^\s*([0-9]+(ms|s|m|h))+\s*$";
/// A node id: a letter or `_`, then letters, digits, `_` or `-`; at most 64 bytes.
const NODE_ID: &str = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$";

/// A kairos workflow: a graph of tasks, branches, forks, joins and approvals.
#[derive(JsonSchema)]
#[schemars(
    title = "kairos workflow",
    deny_unknown_fields,
    transform = absent_not_null
)]
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
    /// Inputs, overridable with `--input key=value`; used as `inputs.NAME`.
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" }))]
    inputs: Option<BTreeMap<String, InputEntry>>,
    /// Apply to every task node unless it says otherwise.
    defaults: Option<DefaultsDoc>,
    policy: Option<PolicyDoc>,
    /// MCP servers the `mcp` tasks name (`server: NAME`), started once per run.
    #[schemars(extend("propertyNames" = { "pattern": NODE_ID }))]
    mcp_servers: Option<BTreeMap<String, McpServerDoc>>,
    /// How many network calls run at once; never changes the ledger.
    network: Option<NetworkDoc>,
    /// Where `shell` calls run (docs/executors.md); never changes the ledger.
    executor: Option<ExecutorDoc>,
    /// The nodes, in declaration order (which breaks ties in scheduling).
    #[schemars(length(min = 1))]
    nodes: Vec<NodeDoc>,
    /// Workflow outputs: templates rendered when the run ends.
    outputs: Option<BTreeMap<String, Scalar>>,
}

/// An input: a declaration, or just its default value.
struct InputEntry;

impl JsonSchema for InputEntry {
    fn schema_name() -> Cow<'static, str> {
        "InputEntry".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An input: a declaration, or just its default value.",
            "anyOf": [
                generator.subschema_for::<InputDoc>(),
                { "type": ["string", "number", "boolean", "null"] }
            ]
        })
    }
}

/// An input declaration.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct InputDoc {
    default: Option<serde_json::Value>,
    description: Option<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct DefaultsDoc {
    timeout: Option<Duration>,
    retry: Option<RetryDoc>,
}

/// An MCP server: `command` (stdio) or `url` (Streamable HTTP).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null, transform = one_transport)]
struct McpServerDoc {
    /// The argv that starts a stdio server.
    #[schemars(length(min = 1))]
    command: Option<Vec<String>>,
    /// Its environment besides `PATH` and `HOME` (nothing else is inherited); a value may be
    /// `{ env: NAME }`, the value of kairos's variable NAME.
    env: Option<BTreeMap<String, PassedValue>>,
    /// Its working directory.
    cwd: Option<String>,
    /// The URL of a Streamable HTTP server.
    url: Option<String>,
    /// Headers sent with every request to it; a value may be `{ env: NAME }`.
    headers: Option<BTreeMap<String, PassedValue>>,
    /// How long starting it may take (default 60s).
    startup_timeout: Option<Duration>,
    /// Calls in flight to it at once, at most.
    #[schemars(range(min = 1))]
    max_concurrency: Option<u64>,
}

/// A value as written, or `{ env: NAME }`: the value of kairos's environment variable NAME.
#[derive(JsonSchema)]
#[serde(untagged)]
enum PassedValue {
    Value(Scalar),
    Env {
        /// The name of an environment variable of kairos.
        env: String,
    },
}

/// Exactly one of `command` and `url`.
fn one_transport(schema: &mut Schema) {
    schema.insert(
        "oneOf".into(),
        json!([{ "required": ["command"] }, { "required": ["url"] }]),
    );
}

/// How many network calls run at once.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct NetworkDoc {
    /// Network calls running at once, at most (`--net-jobs` may lower it).
    #[schemars(range(min = 1))]
    max_concurrent: Option<u64>,
    /// Calls running at once to a host, by host name.
    #[schemars(extend("additionalProperties" = { "type": "integer", "minimum": 1 }))]
    per_host: Option<BTreeMap<String, u64>>,
}

/// Re-run a failed task with exponential backoff (jitter from the node's RNG).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct RetryDoc {
    /// Total attempts, the first included.
    #[schemars(range(min = 1))]
    attempts: u32,
    /// Wait before the second attempt (default 1s).
    backoff: Option<Duration>,
    /// Multiplier per attempt (default 2).
    #[schemars(range(min = 1.0))]
    factor: Option<f64>,
    max_backoff: Option<Duration>,
}

/// A node: exactly one of `run`, `tool`, `branch`, `fork`, `join`, `approval`, `loop`,
/// `workflow`.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    transform = absent_not_null,
    transform = node_rules
)]
struct NodeDoc {
    id: NodeId,
    description: Option<String>,
    /// Nodes that must succeed first.
    needs: Option<Vec<NodeId>>,
    /// Expression; when false the node is skipped.
    #[serde(rename = "if")]
    condition: Option<Expression>,
    timeout: Option<Duration>,
    retry: Option<RetryDoc>,
    /// Record a failure and go on; dependents run.
    continue_on_error: Option<bool>,
    /// Higher runs first when more nodes are ready than workers.
    priority: Option<i64>,
    /// Fan-out: a list, or an expression giving a list; `item` and `index` are in scope.
    for_each: Option<ForEachDoc>,
    /// Node-level policy: can only narrow the workflow policy.
    policy: Option<PolicyDoc>,
    /// Shell command (shorthand for `tool: shell`); takes `env`, `cwd` and `stdin` under `with`.
    run: Option<String>,
    tool: Option<ToolName>,
    /// The tool's arguments.
    with: Option<WithDoc>,
    branch: Option<BranchDoc>,
    /// Nodes spawned in parallel.
    fork: Option<Vec<NodeId>>,
    /// Waits for all listed nodes; runs when at least one succeeded.
    join: Option<Vec<NodeId>>,
    approval: Option<ApprovalDoc>,
    #[serde(rename = "loop")]
    loop_: Option<LoopDoc>,
    workflow: Option<CallDoc>,
    agent: Option<AgentDoc>,
}

/// A tool-using agent, run as a loop of turns (`docs/agents.md`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct AgentDoc {
    /// The `llm` tool's keys, except `messages`, `prompt`, `tools` and `tool_choice`.
    llm: BTreeMap<String, serde_json::Value>,
    /// The first user message (or give `messages`).
    prompt: Option<String>,
    /// The conversation to start from (or give `prompt`).
    messages: Option<Vec<serde_json::Value>>,
    /// Servers of `mcp_servers` whose every tool the agent may use.
    mcp: Option<Vec<String>>,
    /// Single tools the agent may use, as `SERVER/TOOL`.
    tools: Option<Vec<String>>,
    /// Required; the agent fails when its model still asks for tools after this many turns.
    #[schemars(range(min = 1, max = 10000))]
    max_turns: u64,
}

/// A bounded loop over a body of nodes (`docs/workflow.md#loops`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct LoopDoc {
    /// Required; at most 10,000.
    #[schemars(range(min = 1, max = 10000))]
    max_iterations: u64,
    /// Expression evaluated after each iteration's `update`; true ends the loop.
    until: Option<Expression>,
    /// Loop-carried values and their first values (`loop.state.NAME`).
    state: Option<BTreeMap<String, serde_json::Value>>,
    /// After each iteration: new values of `state` entries (templates).
    update: Option<BTreeMap<String, serde_json::Value>>,
    /// The loop node's status when `max_iterations` ran out (default `fail`).
    on_max: Option<OnMaxDoc>,
    /// `nodes.LOOP.output` (default: the final state).
    output: Option<serde_json::Value>,
    /// The body: nodes as at the top level; their ids are seen only inside the loop.
    nodes: Vec<NodeDoc>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum OnMaxDoc {
    Fail,
    Succeed,
}

/// Another workflow file, run as a sub-graph of this run (`docs/workflow.md#calls`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct CallDoc {
    /// Path relative to the calling file.
    file: String,
    /// The called workflow's inputs (templates).
    inputs: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
enum ForEachDoc {
    Items(Vec<serde_json::Value>),
    Expression(String),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct BranchDoc {
    /// Expression choosing the arm.
    #[serde(rename = "if")]
    condition: Expression,
    then: Vec<NodeId>,
    #[serde(rename = "else")]
    otherwise: Option<Vec<NodeId>>,
}

/// A human decision.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct ApprovalDoc {
    prompt: String,
}

/// What the workflow's tools may do.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null, transform = policy_rules)]
pub struct PolicyDoc {
    preset: Option<PresetName>,
    allow: Option<Vec<CapabilityName>>,
    deny: Option<Vec<CapabilityName>>,
    /// Call limits per tool name or node id.
    max_calls: Option<BTreeMap<String, u64>>,
    /// Regexes whose matches become [REDACTED].
    redact: Option<Vec<String>>,
    /// Environment variables whose values are masked everywhere.
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9_]+$")))]
    secrets: Option<Vec<String>>,
    paths: Option<PathsDoc>,
    hosts: Option<Vec<String>>,
    commands: Option<Vec<String>>,
    require_approval: Option<Vec<CapabilityName>>,
    approvers: Option<Vec<String>>,
    enforcement: Option<EnforcementDoc>,
    /// What the run's model calls may spend (not in a node's policy).
    budget: Option<BudgetDoc>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
struct BudgetDoc {
    /// Tokens the `llm` calls committed before a call may have spent for it to start.
    tokens: Option<u64>,
    /// `llm` calls (retries included) the run may make.
    llm_calls: Option<u64>,
}

/// Where `shell` calls run, and how Slurm jobs are asked for.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
pub struct ExecutorDoc {
    /// `local` (this machine) or `slurm`; `kairos run --executor` overrides it.
    kind: Option<ExecutorKindDoc>,
    /// `sbatch --partition`.
    partition: Option<String>,
    /// `sbatch --account`.
    account: Option<String>,
    /// `sbatch --time` for calls without a timeout.
    #[schemars(regex(pattern = r"^\s*([0-9]+(ms|s|m|h))+\s*$"))]
    time: Option<String>,
    /// `sbatch --cpus-per-task`.
    #[schemars(range(min = 1))]
    cpus: Option<u64>,
    /// `sbatch --mem` (`512M`, `4G`).
    #[schemars(regex(pattern = r"^[0-9]+[KMGT]?$"))]
    mem: Option<String>,
    /// More `sbatch` options, one word each (`--qos=short`).
    #[schemars(inner(regex(pattern = r"^--\S+$")))]
    sbatch: Option<Vec<String>>,
    /// A directory shared with the compute nodes (default `.kairos/slurm`).
    work_dir: Option<String>,
    /// Jobs submitted and not finished, at most (default 100).
    #[schemars(range(min = 1))]
    max_in_flight: Option<u64>,
    /// Submissions a second, at most (default 10).
    #[schemars(range(min = 1))]
    submit_rate: Option<u64>,
    /// The shortest interval between status queries (default `2s`).
    #[schemars(regex(pattern = r"^\s*([0-9]+(ms|s|m|h))+\s*$"))]
    poll: Option<String>,
    /// More variables of kairos's environment passed to every job.
    #[schemars(inner(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")))]
    env: Option<Vec<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ExecutorKindDoc {
    Local,
    Slurm,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, transform = absent_not_null)]
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

/// Schemas written by hand: `(name in $defs, schema)`.
macro_rules! defined {
    ($ty:ident, $name:literal, $schema:expr) => {
        struct $ty;

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                Schema::try_from($schema).expect("an object schema")
            }
        }
    };
}

defined!(
    NodeId,
    "NodeId",
    json!({
        "description": "A node id: a letter or `_`, then letters, digits, `_` or `-`; at most 64 bytes.",
        "type": "string",
        "pattern": NODE_ID
    })
);
defined!(
    Duration,
    "Duration",
    json!({
        "description": "A number and a unit (`ms`, `s`, `m`, `h`); units add up: `500ms`, `60s`, `1h30m`.",
        "type": "string",
        "pattern": DURATION
    })
);
defined!(
    Expression,
    "Expression",
    json!({
        "description": "A bare expression (no `{{ }}`), or `true` or `false`.",
        "type": ["string", "boolean"]
    })
);
defined!(
    Scalar,
    "Scalar",
    json!({
        "description": "A template (`{{ ... }}` is evaluated), or a number or boolean taken as written.",
        "type": ["string", "number", "boolean"]
    })
);
defined!(
    WithDoc,
    "With",
    json!({
        "description": "A task's arguments: the keys its tool takes.",
        "type": ["object", "null"]
    })
);
defined!(
    PresetName,
    "Preset",
    json!({
        "description": "A named starting point for the policy.",
        "type": "string",
        "enum": Preset::ALL.map(Preset::name)
    })
);
defined!(
    CapabilityName,
    "Capability",
    json!({
        "description": "Something a tool can do to the world.",
        "type": "string",
        "enum": Capability::ALL.map(Capability::name)
    })
);

/// A built-in tool's name (inline, where `tool:` is).
struct ToolName;

impl JsonSchema for ToolName {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "ToolName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = crate::tools::names().collect();
        json_schema!({ "description": "A built-in tool.", "type": "string", "enum": names })
    }
}

/// kairos reads an absent key as "not given" but a null value as a wrong type, so optional
/// properties do not take `null` (which schemars adds for an `Option`).
fn absent_not_null(schema: &mut Schema) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    for property in properties.values_mut() {
        let Value::Object(p) = property else {
            continue;
        };
        if let Some(Value::Array(types)) = p.get_mut("type") {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                let only = only.clone();
                p.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(values)) = p.get_mut("enum") {
            values.retain(|v| !v.is_null());
        }
        let Some(Value::Array(any)) = p.get_mut("anyOf") else {
            continue;
        };
        any.retain(|s| s != &json!({ "type": "null" }));
        if let [only] = any.as_slice()
            && let Value::Object(only) = only.clone()
        {
            p.remove("anyOf");
            p.extend(only);
        }
    }
}

/// The rules that span a node's keys: exactly one kind, `with` on task nodes only, and each
/// tool's `with` keys.
fn node_rules(schema: &mut Schema) {
    let kinds: Vec<Value> = KIND_KEYS
        .iter()
        .map(|k| json!({ "required": [k] }))
        .collect();
    schema.insert("oneOf".into(), kinds.into());
    let mut rules = vec![json!({
        "if": { "required": ["with"] },
        "then": { "anyOf": [{ "required": ["run"] }, { "required": ["tool"] }] }
    })];
    let shell = crate::tools::find("shell").expect("shell is a built-in tool");
    rules.push(json!({
        "if": { "required": ["run"] },
        "then": with_rule(shell.spec(), SHORTHAND_WITH_KEYS)
    }));
    for tool in crate::tools::TOOLS.iter().map(|t| t.spec()) {
        let keys: Vec<&str> = tool.key_names().collect();
        rules.push(json!({
            "if": { "required": ["tool"], "properties": { "tool": { "const": tool.name } } },
            "then": with_rule(tool, &keys)
        }));
    }
    schema.insert("allOf".into(), rules.into());
}

/// What `with` holds for `tool` when it takes the keys `allowed`.
fn with_rule(tool: &ToolSpec, allowed: &[&str]) -> Value {
    let keys = || tool.keys.iter().filter(|k| allowed.contains(&k.name));
    let properties: serde_json::Map<String, Value> = keys()
        .map(|k| {
            let mut schema = match k.kind {
                KeyKind::Template | KeyKind::ShellLine => {
                    json!({ "type": ["string", "number", "boolean"] })
                }
                KeyKind::Expression => json!({ "type": ["string", "boolean"] }),
                KeyKind::Value => json!({}),
                KeyKind::Duration => json!({ "type": "string", "pattern": DURATION }),
            };
            schema["description"] = k.doc.into();
            (k.name.to_string(), schema)
        })
        .collect();
    let required: Vec<&str> = keys().filter(|k| k.required).map(|k| k.name).collect();
    let groups: Vec<Value> = tool
        .one_of
        .iter()
        .map(|group| {
            group
                .iter()
                .filter(|k| allowed.contains(k))
                .map(|k| json!({ "required": [k] }))
                .collect::<Vec<_>>()
        })
        .filter(|group| group.len() >= 2)
        .map(|group| json!({ "oneOf": group }))
        .collect();
    let mut with = json!({ "properties": properties, "additionalProperties": false });
    if required.is_empty() && groups.is_empty() {
        return json!({ "properties": { "with": with } });
    }
    with["type"] = "object".into();
    if !required.is_empty() {
        with["required"] = required.into();
    }
    if !groups.is_empty() {
        with["allOf"] = groups.into();
    }
    json!({ "required": ["with"], "properties": { "with": with } })
}

/// `max_calls` keys are tool names or node ids.
fn policy_rules(schema: &mut Schema) {
    let names: Vec<&str> = crate::tools::names().collect();
    if let Some(max_calls) = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("max_calls"))
    {
        // `mcp:SERVER/TOOL`: a server of `mcp_servers` (which a schema cannot check) and a tool.
        max_calls["propertyNames"] = json!({ "anyOf": [
            { "enum": names },
            { "pattern": NODE_ID },
            { "pattern": r"^mcp:[A-Za-z_][A-Za-z0-9_-]{0,63}/.+$" },
        ] });
    }
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
            properties(&schema, Some("ExecutorDoc")),
            sorted(crate::exec::spec::EXECUTOR_KEYS)
        );
        assert_eq!(
            properties(&schema, Some("DefaultsDoc")),
            sorted(DEFAULTS_KEYS)
        );
        assert_eq!(properties(&schema, Some("RetryDoc")), sorted(RETRY_KEYS));
        assert_eq!(
            properties(&schema, Some("McpServerDoc")),
            sorted(crate::workflow::servers::SERVER_KEYS)
        );
        assert_eq!(
            properties(&schema, Some("NetworkDoc")),
            sorted(NETWORK_KEYS)
        );
        assert_eq!(properties(&schema, Some("BranchDoc")), sorted(BRANCH_KEYS));
        assert_eq!(
            properties(&schema, Some("ApprovalDoc")),
            sorted(APPROVAL_KEYS)
        );
        assert_eq!(properties(&schema, Some("LoopDoc")), sorted(LOOP_KEYS));
        assert_eq!(properties(&schema, Some("CallDoc")), sorted(CALL_KEYS));
    }
}
