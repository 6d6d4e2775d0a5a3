//! Reading an `agent:` node: checked, then expanded into the `loop:` it stands for
//! (docs/agents.md), read by [`Checker::loop_kind`] like a written one, so the engine, the
//! ledger, `kairos graph` and replay see an ordinary loop (instance ids `AGENT#N/...`).
//!
//! Each turn (iteration) is: `tools_SERVER` (the server's tools as function definitions, an
//! `mcp` listing; the run's first `tools/list`, so every turn offers the same), `model` (the
//! `llm` call with the conversation and those definitions), then `call_SERVER` for each
//! server: a `for_each` over the model's tool calls, each instance running only the calls
//! its server offers (`allow_error: true`: an error is the model's to read). The loop state
//! appends the answer and one `tool` message a call, in the order asked; the loop ends when
//! the model asks for no tool.

use super::Checker;
use crate::syntax::diag::{WorkflowError, ss};
use crate::syntax::read::{self, Fields};
use crate::syntax::yaml::{self, Span, Str, Value};
use crate::workflow::expr::Scope;
use crate::workflow::limits;
use crate::workflow::model::{Loop, NodeIdx};
use serde_json::json;

pub const AGENT_KEYS: &[&str] = &["llm", "prompt", "messages", "mcp", "tools", "max_turns"];

/// `llm` keys the agent sets itself each turn.
const OWN_LLM_KEYS: &[&str] = &["messages", "prompt", "tools", "tool_choice"];

/// The tools an agent may use on one server: all of them, or those named.
struct Allowed {
    server: String,
    only: Option<Vec<String>>,
}

impl Checker<'_, '_> {
    pub(super) fn agent_kind(
        &mut self,
        id: &str,
        value: &yaml::Node,
        scope: &Scope<'_>,
        used: &mut Vec<NodeIdx>,
    ) -> Option<Box<Loop>> {
        let f = Fields::new(value, "agent", AGENT_KEYS, self.errors)?;
        let at = value.span;
        let llm = f.require("llm", self.errors)?;
        let Value::Map(entries) = &llm.value else {
            self.errors
                .push(read::wrong_type(llm, "a mapping of the `llm` tool's keys"));
            return None;
        };
        for (k, _) in entries.iter() {
            if let Some(own) = k.as_str().filter(|k| OWN_LLM_KEYS.contains(k)) {
                self.errors.push(WorkflowError::InvalidValue {
                    message: format!("`{own}` is set by the agent each turn"),
                    span: ss(k.span),
                    label: "not an `llm` key here".into(),
                    help: Some(
                        "give the conversation as the agent's `prompt` or `messages`, and its tools as `mcp` or `tools`".into(),
                    ),
                });
            }
        }
        let messages = match (f.get("prompt"), f.get("messages")) {
            (Some(p), None) => read::string(p, self.errors)
                .map(|p| node(&json!([{ "role": "user", "content": p.value }]), p.span)),
            (None, Some(m)) => Some(m.clone()),
            _ => {
                self.errors.push(WorkflowError::InvalidValue {
                    message: "an agent needs exactly one of `prompt` and `messages`".into(),
                    span: ss(at),
                    label: "here".into(),
                    help: None,
                });
                None
            }
        };
        let max_turns = f.require("max_turns", self.errors).cloned();
        // Checked here so the message names the agent's key, not the loop's.
        if let Some(n) = &max_turns
            && !matches!(n.value, Value::Int(t) if t >= 1 && (t as u64) <= limits::LOOP_ITERATIONS)
        {
            self.errors.push(WorkflowError::InvalidValue {
                message: format!(
                    "`max_turns` must be a whole number from 1 to {}",
                    limits::LOOP_ITERATIONS
                ),
                span: ss(n.span),
                label: "out of range".into(),
                help: Some("see docs/agents.md".into()),
            });
            return None;
        }
        let allowed = self.allowed(&f);
        let expanded = expansion(entries, messages?, max_turns?, &allowed?, at);
        let mut expanded = self.loop_kind(id, &expanded, scope, used)?;
        expanded.agent = true;
        Some(expanded)
    }

    /// `mcp: [SERVER]` and `tools: [SERVER/TOOL]`, each server declared in `mcp_servers`.
    fn allowed(&mut self, f: &Fields<'_>) -> Option<Vec<Allowed>> {
        let mut out: Vec<Allowed> = Vec::new();
        let before = self.errors.len();
        let known = |name: &Sp, errors: &mut crate::syntax::read::Errors| {
            let ok = self.servers.iter().any(|s| s.name == name.0);
            if !ok {
                errors.push(WorkflowError::InvalidValue {
                    message: format!("no MCP server `{}` in `mcp_servers`", name.0),
                    span: ss(name.1),
                    label: "unknown server".into(),
                    help: Some("declare it under `mcp_servers:`".into()),
                });
            }
            ok
        };
        if let Some(n) = f.get("mcp") {
            for s in read::string_list(n, self.errors) {
                if known(&Sp(s.value.clone(), s.span), self.errors)
                    && !out.iter().any(|a| a.server == s.value)
                {
                    out.push(Allowed {
                        server: s.value,
                        only: None,
                    });
                }
            }
        }
        if let Some(n) = f.get("tools") {
            for t in read::string_list(n, self.errors) {
                let Some((server, tool)) = t
                    .value
                    .split_once('/')
                    .filter(|(s, t)| !s.is_empty() && !t.is_empty())
                else {
                    self.errors.push(WorkflowError::InvalidValue {
                        message: format!("`{}` is not SERVER/TOOL", t.value),
                        span: ss(t.span),
                        label: "not SERVER/TOOL".into(),
                        help: None,
                    });
                    continue;
                };
                if !known(&Sp(server.to_string(), t.span), self.errors) {
                    continue;
                }
                match out.iter_mut().find(|a| a.server == server) {
                    Some(Allowed { only: None, .. }) => {}
                    Some(Allowed {
                        only: Some(names), ..
                    }) => names.push(tool.to_string()),
                    None => out.push(Allowed {
                        server: server.to_string(),
                        only: Some(vec![tool.to_string()]),
                    }),
                }
            }
        }
        (self.errors.len() == before).then_some(out)
    }
}

/// A name with its span (for the diagnostics of `mcp` and `tools`).
struct Sp(String, Span);

/// The `loop:` block an agent stands for.
fn expansion(
    llm: &[(yaml::Node, yaml::Node)],
    messages: yaml::Node,
    max_turns: yaml::Node,
    allowed: &[Allowed],
    at: Span,
) -> yaml::Node {
    let lists: Vec<String> = allowed
        .iter()
        .map(|a| format!("tools_{}", a.server))
        .collect();
    let offered = if lists.is_empty() {
        "[]".to_string()
    } else {
        lists
            .iter()
            .map(|l| format!("nodes.{l}.output"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let mut body: Vec<yaml::Node> = Vec::new();
    for a in allowed {
        let list = match &a.only {
            None => json!(true),
            Some(names) => json!(names),
        };
        body.push(node(
            &json!({ "id": format!("tools_{}", a.server), "tool": "mcp",
                     "with": { "server": a.server, "list": list } }),
            at,
        ));
    }
    let mut with: Vec<(yaml::Node, yaml::Node)> = llm.to_vec();
    with.push((text("messages", at), text("{{ loop.state.messages }}", at)));
    if !allowed.is_empty() {
        with.push((text("tools", at), text(&format!("{{{{ {offered} }}}}"), at)));
    }
    body.push(map(
        vec![
            ("id", text("model", at)),
            ("needs", node(&json!(lists), at)),
            ("tool", text("llm", at)),
            (
                "with",
                yaml::Node {
                    span: at,
                    value: Value::Map(with.into()),
                },
            ),
        ],
        at,
    ));
    let mut results = Vec::new();
    for (k, a) in allowed.iter().enumerate() {
        // A call goes to the first server offering its tool.
        let mut cond = format!(
            "item.name in (nodes.tools_{}.output | function_names)",
            a.server
        );
        for earlier in &allowed[..k] {
            cond.push_str(&format!(
                " and item.name not in (nodes.tools_{}.output | function_names)",
                earlier.server
            ));
        }
        let id = format!("call_{}", a.server);
        results.push(format!("nodes.{id}.output"));
        body.push(node(
            &json!({ "id": id, "needs": ["model"],
                     "for_each": "nodes.model.output.tool_calls or []",
                     "if": cond,
                     "continue_on_error": true,
                     "tool": "mcp",
                     "with": { "server": a.server, "tool": "{{ item.name }}",
                               "arguments": "{{ item.arguments }}", "allow_error": true } }),
            at,
        ));
    }
    let answers = format!(
        "(nodes.model.output.tool_calls or []) | tool_messages([{}])",
        results.join(", ")
    );
    let state = node(&json!({ "text": "", "turns": 0 }), at);
    let Value::Map(state_entries) = state.value else {
        unreachable!("a mapping")
    };
    let mut state_entries = state_entries.into_vec();
    state_entries.push((text("messages", at), messages));
    map(
        vec![
            ("max_iterations", max_turns),
            (
                "state",
                yaml::Node {
                    span: at,
                    value: Value::Map(state_entries.into()),
                },
            ),
            (
                "update",
                node(
                    &json!({
                        "messages": format!("{{{{ loop.state.messages + [nodes.model.output.message] + ({answers}) }}}}"),
                        "text": "{{ nodes.model.output.text }}",
                        "turns": "{{ loop.iteration }}",
                    }),
                    at,
                ),
            ),
            ("until", text("not nodes.model.output.tool_calls", at)),
            (
                "output",
                node(
                    &json!({ "text": "{{ loop.state.text }}", "messages": "{{ loop.state.messages }}",
                             "turns": "{{ loop.state.turns }}" }),
                    at,
                ),
            ),
            (
                "nodes",
                yaml::Node {
                    span: at,
                    value: Value::Seq(body.into()),
                },
            ),
        ],
        at,
    )
}

fn text(s: &str, span: Span) -> yaml::Node {
    yaml::Node {
        span,
        value: Value::Str(Str::new(s)),
    }
}

fn map(entries: Vec<(&str, yaml::Node)>, span: Span) -> yaml::Node {
    yaml::Node {
        span,
        value: Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (text(k, span), v))
                .collect(),
        ),
    }
}

/// A YAML node holding `v`, every part at `span`.
fn node(v: &serde_json::Value, span: Span) -> yaml::Node {
    let value = match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::Str(Str::new(s)),
        serde_json::Value::Array(items) => {
            Value::Seq(items.iter().map(|i| node(i, span)).collect())
        }
        serde_json::Value::Object(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (text(k, span), node(v, span)))
                .collect(),
        ),
    };
    yaml::Node { span, value }
}
