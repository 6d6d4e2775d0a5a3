//! The `llm` tool: a chat completion in the OpenAI Chat Completions dialect (`openai.rs`) or
//! Anthropic's Messages dialect (`anthropic.rs`), one exchange per attempt, normalised to one
//! output whatever the dialect (docs/llm.md).
//!
//! The credential comes only from the environment variable `api_key_env` names: a literal key
//! in a workflow is a validation error ([`Llm::check_with`]), and the variable's value is one of
//! the run's secrets (`secret_names`), masked wherever it could appear. The ledger records the
//! call's rendered arguments, which name the variable, never its value.
//!
//! A failed exchange says whether it is worth trying again (`retry.rs`); the node's `retry:`
//! block decides whether it is.

mod anthropic;
mod openai;
mod retry;
mod sse;

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, RetryHint, Tool, ToolSpec, key, str_arg,
};
use crate::net::{NetError, Request};
use crate::policy::Capability;
use crate::syntax::diag::{WorkflowError, ss};
use crate::syntax::duration;
use crate::syntax::yaml;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// A chat completion.
pub struct Llm;

/// The endpoint a call without `base_url` reaches, in the default dialect.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The endpoint of dialect `anthropic` without `base_url`.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";

/// Response bytes read at most (a completion is text; this is far past any real one).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// What `allow` may name: the failures a node may take as answers.
pub const ALLOWABLE: &[&str] = &[
    "length",
    "content_filter",
    "refusal",
    "invalid_tool_arguments",
    "invalid_json",
];

/// Header names that carry credentials: never given in a workflow (`api_key_env` does that).
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
];

static LLM: ToolSpec = ToolSpec {
    name: "llm",
    summary: "chat completion (OpenAI Chat Completions or Anthropic Messages)",
    keys: &[
        key(
            "dialect",
            KeyKind::Template,
            false,
            "openai (default) or anthropic",
        ),
        key(
            "base_url",
            KeyKind::Template,
            false,
            "endpoint base URL (default per dialect)",
        ),
        key("model", KeyKind::Template, true, "model name"),
        key(
            "messages",
            KeyKind::Value,
            false,
            "chat messages ({role, content}, OpenAI form)",
        ),
        key("prompt", KeyKind::Template, false, "a single user message"),
        key("system", KeyKind::Template, false, "a system message"),
        key("temperature", KeyKind::Value, false, "sampling temperature"),
        key("top_p", KeyKind::Value, false, "nucleus sampling"),
        key(
            "seed",
            KeyKind::Value,
            false,
            "sampling seed (not sent to anthropic)",
        ),
        key(
            "max_tokens",
            KeyKind::Value,
            false,
            "most tokens to generate (anthropic: default 4096)",
        ),
        key(
            "stop",
            KeyKind::Value,
            false,
            "stop sequence or list of them",
        ),
        key(
            "response_format",
            KeyKind::Value,
            false,
            "JSON schema (or {type: json_object}): the answer is parsed into `parsed`",
        ),
        key(
            "tools",
            KeyKind::Value,
            false,
            "function definitions the model may call",
        ),
        key(
            "tool_choice",
            KeyKind::Value,
            false,
            "auto, none, required, or a function name",
        ),
        key(
            "api_key_env",
            KeyKind::Template,
            false,
            "NAME of the environment variable holding the key",
        ),
        key(
            "headers",
            KeyKind::Value,
            false,
            "extra request headers (no credentials)",
        ),
        key(
            "stream",
            KeyKind::Value,
            false,
            "read the answer as server-sent events",
        ),
        key(
            "timeout",
            KeyKind::Duration,
            false,
            "for the whole exchange",
        ),
        key(
            "allow",
            KeyKind::Value,
            false,
            "failures taken as answers: length, content_filter, refusal, invalid_tool_arguments, invalid_json",
        ),
    ],
    one_of: &[&["messages", "prompt"]],
    capabilities: &[Capability::Llm],
};

impl Tool for Llm {
    fn spec(&self) -> &'static ToolSpec {
        &LLM
    }

    // A call waits on the network: on the network lane where the engine has one, so that
    // model calls are not limited by `--jobs`.
    fn placement(&self) -> Placement {
        Placement::Worker
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        // A `base_url` that renders to something other than text is no URL: checked as given
        // (empty), it is denied wherever `hosts` applies, as the call could not reach anything
        // named.
        let url = match args.get("base_url") {
            None | Some(Value::Null) => default_base_url(args),
            Some(_) => str_arg(args, "base_url").unwrap_or_default(),
        };
        vec![Resource::Url(url)]
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        match prepare(args, cx.timeout) {
            Ok(call) => call.run(cx),
            Err(reason) => Outcome {
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(reason)
            },
        }
    }

    fn check_with(&self, with: &[(yaml::Node, yaml::Node)], errors: &mut Vec<WorkflowError>) {
        check_with(with, errors);
    }

    fn refused_keys(&self) -> &'static [&'static str] {
        &["api_key"]
    }
}

fn default_base_url(args: &Args) -> &'static str {
    match str_arg(args, "dialect") {
        Some("anthropic") => ANTHROPIC_BASE_URL,
        _ => DEFAULT_BASE_URL,
    }
}

/// Which wire format a call speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
}

impl Dialect {
    fn default_key_env(self) -> &'static str {
        match self {
            Dialect::OpenAi => "OPENAI_API_KEY",
            Dialect::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

/// What a call asks the model, dialect aside.
struct Ask {
    model: String,
    /// OpenAI form, `system` first when given.
    messages: Vec<Value>,
    /// `temperature`, `top_p`, `seed`, `stop`, as given.
    sampling: Map<String, Value>,
    max_tokens: Option<u64>,
    format: Option<Format>,
    tools: Vec<Function>,
    tool_choice: Option<Choice>,
    stream: bool,
}

/// A `response_format`.
#[derive(Debug, PartialEq)]
enum Format {
    JsonObject,
    Schema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// A function the model may call.
struct Function {
    name: String,
    description: Option<String>,
    parameters: Value,
    strict: Option<bool>,
}

enum Choice {
    Auto,
    None,
    Required,
    Named(String),
}

/// A response, read the same way from either dialect.
#[derive(Debug)]
struct Reply {
    text: String,
    tool_calls: Vec<Call>,
    /// Normalised: `stop`, `length`, `tool_calls`, `content_filter`, `refusal`, or the
    /// server's own word for anything else.
    finish_reason: String,
    refusal: Option<String>,
    usage: Usage,
    model: String,
    /// The structured answer, when the dialect returns it as a value (Anthropic's forced tool).
    parsed: Option<Value>,
}

#[derive(Debug)]
struct Call {
    id: String,
    name: String,
    arguments_raw: String,
}

#[derive(Debug, Default)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
}

/// A call ready to go: the request, and how to read its answer.
struct Prepared {
    dialect: Dialect,
    request: Request,
    stream: bool,
    format: Option<Format>,
    allow: Vec<String>,
}

/// Reads a call's rendered arguments into the request it makes; `Err` says what is wrong.
fn prepare(args: &Args, node_timeout: Option<Duration>) -> Result<Prepared, String> {
    let dialect = match str_arg(args, "dialect").unwrap_or("openai") {
        "openai" => Dialect::OpenAi,
        "anthropic" => Dialect::Anthropic,
        other => return Err(format!("unknown dialect `{other}`: openai or anthropic")),
    };
    let ask = ask(args)?;
    let base = match args.get("base_url") {
        None | Some(Value::Null) => default_base_url(args),
        Some(_) => str_arg(args, "base_url").ok_or("`base_url` is not text")?,
    };
    let base = base.trim_end_matches('/');
    let (url, body) = match dialect {
        Dialect::OpenAi => {
            let openai_itself =
                crate::policy::hosts::host_of(base).as_deref() == Some("api.openai.com");
            (
                format!("{base}/chat/completions"),
                openai::body(&ask, openai_itself),
            )
        }
        Dialect::Anthropic => (format!("{base}/messages"), anthropic::body(&ask)?),
    };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if ask.stream {
        headers.push(("accept".into(), "text/event-stream".into()));
    }
    if dialect == Dialect::Anthropic {
        headers.push(("anthropic-version".into(), anthropic::VERSION.into()));
    }
    if let Some(key) = api_key(args, dialect)? {
        headers.push(match dialect {
            Dialect::OpenAi => ("authorization".into(), format!("Bearer {key}")),
            Dialect::Anthropic => ("x-api-key".into(), key),
        });
    }
    headers.extend(extra_headers(args)?);
    let timeout = match args.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = super::word(v);
            Some(duration::parse(&text).ok_or_else(|| format!("invalid timeout `{text}`"))?)
        }
    };
    let timeout = match (timeout, node_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Prepared {
        dialect,
        request: Request {
            method: "POST".into(),
            url,
            headers,
            body: Some(serde_json::to_vec(&body).map_err(|e| e.to_string())?),
            timeout,
            follow_redirects: 0,
            max_response_bytes: MAX_RESPONSE_BYTES,
            ca_bundle: None,
        },
        stream: ask.stream,
        format: ask.format,
        allow: allow_list(args)?,
    })
}

/// The key: the value of `api_key_env`'s variable, or of the dialect's default variable when
/// the call names none. A named variable that is not set is an error; an unset default is no
/// key at all, as local servers (Ollama, llama.cpp) need none.
fn api_key(args: &Args, dialect: Dialect) -> Result<Option<String>, String> {
    let named = match args.get("api_key_env") {
        None | Some(Value::Null) => None,
        Some(_) => Some(str_arg(args, "api_key_env").ok_or("`api_key_env` is not text")?),
    };
    let name = named.unwrap_or(dialect.default_key_env());
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ if named.is_some() => Err(format!(
            "the environment variable `{name}` (api_key_env) is not set"
        )),
        _ => Ok(None),
    }
}

fn extra_headers(args: &Args) -> Result<Vec<(String, String)>, String> {
    let Some(headers) = args.get("headers").filter(|h| !h.is_null()) else {
        return Ok(Vec::new());
    };
    let map = headers
        .as_object()
        .ok_or("`headers` is a mapping of names to values")?;
    let mut out = Vec::new();
    for (name, value) in map {
        if CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "header `{name}` carries a credential: name the environment variable in `api_key_env`"
            ));
        }
        out.push((name.clone(), super::word(value)));
    }
    Ok(out)
}

fn allow_list(args: &Args) -> Result<Vec<String>, String> {
    let Some(allow) = args.get("allow").filter(|a| !a.is_null()) else {
        return Ok(Vec::new());
    };
    let items = allow.as_array().ok_or("`allow` is a list")?;
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s) if ALLOWABLE.contains(&s) => Ok(s.to_string()),
            _ => Err(format!(
                "`allow` names {i}, not one of {}",
                ALLOWABLE.join(", ")
            )),
        })
        .collect()
}

/// The model's question from the arguments, dialect aside.
fn ask(args: &Args) -> Result<Ask, String> {
    let model = str_arg(args, "model")
        .filter(|m| !m.is_empty())
        .ok_or("`model` is empty")?
        .to_string();
    let mut messages = Vec::new();
    if let Some(system) = args.get("system").filter(|s| !s.is_null()) {
        messages.push(json!({ "role": "system", "content": super::word(system) }));
    }
    match (args.get("messages"), args.get("prompt")) {
        (Some(Value::Array(list)), _) => {
            for m in list {
                if !m["role"].is_string() {
                    return Err(format!("a message has no `role`: {m}"));
                }
                messages.push(m.clone());
            }
        }
        (Some(other), _) if !other.is_null() => {
            return Err("`messages` is a list of {role, content}".into());
        }
        (_, Some(prompt)) => {
            messages.push(json!({ "role": "user", "content": super::word(prompt) }))
        }
        _ => return Err("one of `messages` or `prompt` is needed".into()),
    }
    let mut sampling = Map::new();
    for key in ["temperature", "top_p", "seed", "stop"] {
        if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
            sampling.insert(key.into(), v.clone());
        }
    }
    let max_tokens = match args.get("max_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| format!("`max_tokens` is {v}, not a whole number"))?,
        ),
    };
    let stream = match args.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(v) => return Err(format!("`stream` is {v}, not true or false")),
    };
    Ok(Ask {
        model,
        messages,
        sampling,
        max_tokens,
        format: format(args.get("response_format"))?,
        tools: functions(args.get("tools"))?,
        tool_choice: choice(args.get("tool_choice"))?,
        stream,
    })
}

/// `response_format`: `{type: json_object}`, OpenAI's `{type: json_schema, json_schema:
/// {name, schema, strict}}`, or a JSON schema itself (named `output`).
fn format(value: Option<&Value>) -> Result<Option<Format>, String> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let obj = v.as_object().ok_or("`response_format` is a mapping")?;
    Ok(Some(match obj.get("type").and_then(Value::as_str) {
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => {
            let spec = &v["json_schema"];
            let schema = spec
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or("`response_format.json_schema.schema` is needed (a JSON schema mapping)")?;
            Format::Schema {
                name: spec["name"].as_str().unwrap_or("output").to_string(),
                schema: schema.clone(),
                strict: spec["strict"].as_bool(),
            }
        }
        Some("text") => return Ok(None),
        _ => Format::Schema {
            name: "output".into(),
            schema: v.clone(),
            strict: None,
        },
    }))
}

/// `tools`: OpenAI's `{type: function, function: {...}}` or the function itself
/// (`{name, description, parameters}`).
fn functions(value: Option<&Value>) -> Result<Vec<Function>, String> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or("`tools` is a list of functions")?;
    list.iter()
        .map(|t| {
            let f = if t["type"] == "function" {
                &t["function"]
            } else {
                t
            };
            let name = f["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("a tool has no `name`: {t}"))?;
            Ok(Function {
                name: name.to_string(),
                description: f["description"].as_str().map(str::to_string),
                parameters: match &f["parameters"] {
                    Value::Null => json!({ "type": "object", "properties": {} }),
                    p => p.clone(),
                },
                strict: f["strict"].as_bool(),
            })
        })
        .collect()
}

/// `tool_choice`: `auto`, `none`, `required`, a function's name, or OpenAI's
/// `{type: function, function: {name}}`.
fn choice(value: Option<&Value>) -> Result<Option<Choice>, String> {
    Ok(match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" | "any" => Choice::Required,
            name => Choice::Named(name.to_string()),
        }),
        Some(v) => Some(Choice::Named(
            v.pointer("/function/name")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`tool_choice` {v} names no function"))?
                .to_string(),
        )),
    })
}

impl Prepared {
    /// One exchange, and its answer as an outcome.
    fn run(self, cx: &mut CallCx<'_>) -> Outcome {
        let response = if self.stream {
            self.streamed(cx)
        } else {
            self.whole(cx)
        };
        let body = match response {
            Ok(body) => body,
            Err(outcome) => return *outcome,
        };
        let reply = match self.dialect {
            Dialect::OpenAi => openai::reply(&body),
            Dialect::Anthropic => anthropic::reply(&body, self.format.as_ref()),
        };
        match reply {
            Ok(reply) => self.outcome(reply),
            Err(why) => Outcome {
                output: json!({ "response": clip_json(&body) }),
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!("malformed response: {why}"))
            },
        }
    }

    /// The response read whole, as JSON.
    fn whole(&self, cx: &mut CallCx<'_>) -> Result<Value, Box<Outcome>> {
        let response = cx.net.send(&self.request).map_err(net_failure)?;
        let status = response.head.status;
        if !(200..300).contains(&status) {
            return Err(Box::new(http_failure(
                status,
                &response.head,
                &response.body.kept,
            )));
        }
        if response.body.truncated() {
            return Err(Box::new(Outcome {
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!(
                    "the response is longer than {MAX_RESPONSE_BYTES} bytes"
                ))
            }));
        }
        serde_json::from_slice(&response.body.kept).map_err(|e| {
            Box::new(Outcome {
                output: json!({ "status": status, "body": clip(&response.body.kept) }),
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!("malformed response: not JSON ({e})"))
            })
        })
    }

    /// The response read as server-sent events and put back together (`sse.rs`).
    fn streamed(&self, cx: &mut CallCx<'_>) -> Result<Value, Box<Outcome>> {
        let mut stream = cx.net.open(&self.request).map_err(net_failure)?;
        let status = stream.head.status;
        if !(200..300).contains(&status) {
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut stream.body, 64 * 1024),
                &mut body,
            );
            return Err(Box::new(http_failure(status, &stream.head, &body)));
        }
        let events = sse::events(&mut stream.body).map_err(|why| {
            // A stream cut short is a transport failure, worth another attempt.
            Box::new(Outcome {
                retry: Some(RetryHint::AFTER_BACKOFF),
                ..Outcome::failed(why)
            })
        })?;
        let joined = match self.dialect {
            Dialect::OpenAi => sse::openai(&events),
            Dialect::Anthropic => sse::anthropic(&events),
        };
        joined.map_err(|why| {
            Box::new(Outcome {
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(why)
            })
        })
    }

    /// The normalised output, failed where the answer is one a node must not take unless it
    /// `allow`s it.
    fn outcome(&self, reply: Reply) -> Outcome {
        let mut failures = Vec::new();
        let calls: Vec<Value> = reply
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = match c.arguments_raw.trim() {
                    "" => Some(json!({})),
                    raw => serde_json::from_str::<Value>(raw).ok(),
                };
                if arguments.is_none() {
                    failures.push((
                        "invalid_tool_arguments",
                        format!("the arguments of tool call `{}` are not JSON", c.name),
                    ));
                }
                json!({
                    "id": c.id,
                    "name": c.name,
                    "arguments": arguments,
                    "arguments_raw": c.arguments_raw,
                })
            })
            .collect();
        let parsed = match (&reply.parsed, &self.format) {
            (Some(p), _) => p.clone(),
            (None, Some(_)) if reply.refusal.is_none() => {
                match serde_json::from_str::<Value>(reply.text.trim()) {
                    Ok(v) => v,
                    Err(_) => {
                        failures.push((
                            "invalid_json",
                            "the answer to a `response_format` is not JSON".into(),
                        ));
                        Value::Null
                    }
                }
            }
            _ => Value::Null,
        };
        match reply.finish_reason.as_str() {
            "length" => failures.push((
                "length",
                "the answer was cut short at the token limit (finish_reason `length`)".into(),
            )),
            "content_filter" => failures.push((
                "content_filter",
                "the answer was withheld by a content filter (finish_reason `content_filter`)"
                    .into(),
            )),
            _ => {}
        }
        if let Some(r) = &reply.refusal {
            failures.push(("refusal", format!("the model refused: {r}")));
        }
        let mut message = json!({
            "role": "assistant",
            "content": if reply.text.is_empty() && !calls.is_empty() { Value::Null } else { reply.text.clone().into() },
        });
        if !calls.is_empty() {
            message["tool_calls"] = reply
                .tool_calls
                .iter()
                .map(|c| {
                    json!({ "id": c.id, "type": "function",
                            "function": { "name": c.name, "arguments": c.arguments_raw } })
                })
                .collect();
        }
        let output = json!({
            "text": reply.text,
            "message": message,
            "tool_calls": calls,
            "parsed": parsed,
            "finish_reason": reply.finish_reason,
            "refusal": reply.refusal,
            "usage": {
                "input_tokens": reply.usage.input_tokens,
                "output_tokens": reply.usage.output_tokens,
                "total_tokens": reply.usage.total_tokens,
            },
            "model": reply.model,
        });
        match failures
            .into_iter()
            .find(|(k, _)| !self.allow.iter().any(|a| a == k))
        {
            None => Outcome::value(output),
            Some((kind, why)) => Outcome {
                output,
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!(
                    "{why}; add `{kind}` to the node's `allow` to take it as an answer"
                ))
            },
        }
    }
}

/// A request that got no response.
fn net_failure(e: NetError) -> Box<Outcome> {
    let retry = if e.is_transient() {
        RetryHint::AFTER_BACKOFF
    } else {
        RetryHint::NEVER
    };
    Box::new(Outcome {
        retry: Some(retry),
        ..Outcome::failed(e.to_string())
    })
}

/// A response with a failure status: its status and error body recorded, and whether and when
/// to try again.
fn http_failure(status: u16, head: &crate::net::Head, body: &[u8]) -> Outcome {
    let hint = retry::of_status(status, head, body);
    let error = serde_json::from_slice::<Value>(body).unwrap_or_else(|_| clip(body).into());
    let message = error
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(|| clip(body), str::to_string);
    let mut output = json!({ "status": status, "error": error });
    if let Some(ms) = hint.after_ms {
        output["retry_after_ms"] = ms.into();
    }
    Outcome {
        output,
        retry: Some(hint),
        ..Outcome::failed(format!("HTTP {status}: {message}"))
    }
}

/// The first 4 KiB of a body, as text.
fn clip(body: &[u8]) -> String {
    let end = body.len().min(4096);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

fn clip_json(v: &Value) -> Value {
    let text = v.to_string();
    if text.len() <= 4096 {
        v.clone()
    } else {
        clip(text.as_bytes()).into()
    }
}

/// Validation of a call's `with:` beyond its keys' kinds: no literal credential, an
/// `api_key_env` that is a literal variable name (so the run's redaction knows it before the
/// run starts), a dialect and an `allow` list that name what exists.
fn check_with(with: &[(yaml::Node, yaml::Node)], errors: &mut Vec<WorkflowError>) {
    let invalid =
        |span: yaml::Span, message: String, label: &str, help: &str| WorkflowError::InvalidValue {
            message,
            span: ss(span),
            label: label.into(),
            help: Some(help.into()),
        };
    for (key, value) in with {
        match key.as_str() {
            Some("api_key") => errors.push(invalid(
                key.span,
                "a literal API key in a workflow is refused".into(),
                "literal credential",
                "put the key in an environment variable and name it: `api_key_env: OPENAI_API_KEY`",
            )),
            Some("api_key_env") => match value.as_str() {
                Some(name) if valid_env_name(name) => {}
                _ => errors.push(invalid(
                    value.span,
                    "`api_key_env` names an environment variable: letters, digits and `_`, no template".into(),
                    "not a variable name",
                    "write the variable's name, such as `OPENAI_API_KEY`, never the key itself",
                )),
            },
            Some("dialect") => {
                if let Some(d) = value.as_str().filter(|d| !d.contains("{{"))
                    && d != "openai"
                    && d != "anthropic"
                {
                    errors.push(invalid(
                        value.span,
                        format!("unknown dialect `{d}`"),
                        "unknown dialect",
                        "`dialect` is `openai` (the default) or `anthropic`",
                    ));
                }
            }
            Some("headers") => {
                if let yaml::Value::Map(entries) = &value.value {
                    for (name, _) in entries {
                        let lower = name.scalar_text().to_ascii_lowercase();
                        if CREDENTIAL_HEADERS.contains(&lower.as_str()) {
                            errors.push(invalid(
                                name.span,
                                format!("header `{}` would carry a literal credential", name.scalar_text()),
                                "literal credential",
                                "name the environment variable holding the key in `api_key_env`; kairos sends it as the dialect's header",
                            ));
                        }
                    }
                }
            }
            Some("allow") => {
                if let yaml::Value::Seq(items) = &value.value {
                    for item in items {
                        if let Some(s) = item.as_str()
                            && !s.contains("{{")
                            && !ALLOWABLE.contains(&s)
                        {
                            errors.push(invalid(
                                item.span,
                                format!("`allow` names `{s}`"),
                                "not an allowable failure",
                                &format!("`allow` takes: {}", ALLOWABLE.join(", ")),
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        if key.as_str() != Some("api_key_env") {
            literal_keys(value, errors);
        }
    }
}

/// A value that looks like a provider's key (`sk-...`, `sk-ant-...`) anywhere in a call's
/// arguments is refused: it would be in the workflow file, and in the ledger's copy of it.
fn literal_keys(value: &yaml::Node, errors: &mut Vec<WorkflowError>) {
    match &value.value {
        yaml::Value::Str(s) if looks_like_key(s) => {
            errors.push(WorkflowError::InvalidValue {
                message: "this looks like a literal API key".into(),
                span: ss(value.span),
                label: "literal credential".into(),
                help: Some(
                    "put the key in an environment variable and name it in `api_key_env`".into(),
                ),
            });
        }
        yaml::Value::Seq(items) => items.iter().for_each(|i| literal_keys(i, errors)),
        yaml::Value::Map(entries) => entries.iter().for_each(|(_, v)| literal_keys(v, errors)),
        _ => {}
    }
}

/// `sk-` followed by at least 20 key characters, alone or after `Bearer `.
fn looks_like_key(s: &str) -> bool {
    let s = s.trim();
    let s = s.strip_prefix("Bearer ").unwrap_or(s);
    s.strip_prefix("sk-").is_some_and(|rest| {
        rest.len() >= 20
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The environment variables whose values are keys of this workflow's `llm` calls: each
/// `api_key_env` (a literal name, as validation requires) and the defaults of the dialects
/// used without one. The run masks their values like `policy.secrets` (docs/llm.md).
pub fn secret_names(workflow: &crate::workflow::Workflow) -> Vec<String> {
    let mut names = Vec::new();
    for node in &workflow.nodes {
        let crate::workflow::NodeKind::Task(task) = &node.kind else {
            continue;
        };
        if task.tool.spec().name != LLM.name {
            continue;
        }
        let arg = |k: &str| task.with.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        match arg("api_key_env").and_then(|v| v.as_str()) {
            Some(name) => names.push(name.to_string()),
            // A templated dialect could be either.
            None => match arg("dialect").and_then(|v| v.as_str()) {
                Some("openai") => names.push(Dialect::OpenAi.default_key_env().into()),
                Some("anthropic") => names.push(Dialect::Anthropic.default_key_env().into()),
                None => names.push(Dialect::OpenAi.default_key_env().into()),
                Some(_) => {
                    names.push(Dialect::OpenAi.default_key_env().into());
                    names.push(Dialect::Anthropic.default_key_env().into());
                }
            },
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The model and token counts of a recorded `llm` output (for the run's totals and budget).
pub fn usage_of(output: &Value) -> Option<(&str, [u64; 3])> {
    let usage = output.get("usage")?;
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some((
        output.get("model").and_then(Value::as_str).unwrap_or(""),
        [n("input_tokens"), n("output_tokens"), n("total_tokens")],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::effective::{Effective, Reason};
    use crate::tools::testing::args;

    #[test]
    fn without_base_url_the_default_endpoint_is_checked_against_hosts() {
        let with = args(json!({ "model": "m", "prompt": "hi" }));
        assert_eq!(Llm.resources(&with), [Resource::Url(DEFAULT_BASE_URL)]);
        let anthropic = args(json!({ "model": "m", "prompt": "hi", "dialect": "anthropic" }));
        assert_eq!(
            Llm.resources(&anthropic),
            [Resource::Url(ANTHROPIC_BASE_URL)]
        );

        let policy = Effective::of_workflow("preset: permissive\nhosts: [llm.internal]\n");
        let (check, verdict) = policy.check(&Llm.resources(&with)[0]);
        assert_eq!(check.name(), "host");
        assert_eq!(verdict.unwrap_err().reason, Reason::HostNotPermitted);

        let policy = Effective::of_workflow("preset: permissive\nhosts: [api.openai.com]\n");
        assert_eq!(policy.check(&Llm.resources(&with)[0]).1, Ok(()));
    }

    #[test]
    fn base_url_is_checked_against_hosts() {
        let with = args(json!({ "base_url": "http://llm.internal:8000/v1", "model": "m" }));
        assert_eq!(
            Llm.resources(&with),
            [Resource::Url("http://llm.internal:8000/v1")]
        );
        let policy = Effective::of_workflow("preset: permissive\nhosts: [llm.internal]\n");
        assert_eq!(policy.check(&Llm.resources(&with)[0]).1, Ok(()));
    }

    #[test]
    fn an_unset_default_key_sends_no_credential_and_an_unset_named_one_fails() {
        let with = args(
            json!({ "model": "m", "prompt": "hi", "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "KAIROS_TEST_SURELY_UNSET_KEY" }),
        );
        let err = prepare(&with, None).err().unwrap();
        assert!(err.contains("`KAIROS_TEST_SURELY_UNSET_KEY`"), "{err}");
        let with = args(
            json!({ "model": "m", "prompt": "hi", "dialect": "anthropic",
            "api_key_env": "PATH" }),
        );
        let p = prepare(&with, None).ok().unwrap();
        assert!(p.request.headers.iter().any(|(n, _)| n == "x-api-key"));
        assert!(p.request.url.ends_with("api.anthropic.com/v1/messages"));
    }

    #[test]
    fn credential_headers_and_unknown_allowances_are_refused_at_call_time() {
        let with = args(json!({ "model": "m", "prompt": "hi", "headers": {"Authorization": "x"} }));
        assert!(prepare(&with, None).err().unwrap().contains("credential"));
        let with = args(json!({ "model": "m", "prompt": "hi", "allow": ["everything"] }));
        assert!(prepare(&with, None).err().unwrap().contains("`allow`"));
    }

    #[test]
    fn response_formats_in_three_forms() {
        assert_eq!(
            format(Some(&json!({"type": "json_object"}))).unwrap(),
            Some(Format::JsonObject)
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert_eq!(
            format(Some(&schema)).unwrap(),
            Some(Format::Schema {
                name: "output".into(),
                schema: schema.clone(),
                strict: None
            })
        );
        let wrapped = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": true}});
        assert!(matches!(
            format(Some(&wrapped)).unwrap(),
            Some(Format::Schema {
                strict: Some(true),
                ..
            })
        ));
    }

    #[test]
    fn keys_look_like_keys() {
        assert!(looks_like_key("sk-proj-abcdefghijklmnopqrstuvwxyz"));
        assert!(looks_like_key("Bearer sk-ant-api03-abcdefghijklmnopqrstu"));
        assert!(!looks_like_key("sk-short"));
        assert!(!looks_like_key("a sk-abcdefghijklmnopqrstuvwxyz sentence"));
    }

    #[test]
    fn usage_is_read_from_an_output() {
        let out = json!({"model": "m", "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}});
        assert_eq!(usage_of(&out), Some(("m", [3, 4, 7])));
        assert_eq!(usage_of(&json!("text")), None);
    }
}
