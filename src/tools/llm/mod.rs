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
mod ask;
mod check;
mod exchange;
mod openai;
mod retry;
mod sse;

pub use check::secret_names;

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, RetryHint, Tool, ToolSpec, key, str_arg,
};
use crate::net::Request;
use crate::policy::Capability;
use crate::syntax::diag::WorkflowError;
use crate::syntax::duration;
use crate::syntax::yaml;
use serde_json::{Map, Value};
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

    // A call waits on the network: on the network lane, so that model calls are not limited
    // by `--jobs`.
    fn placement(&self) -> Placement {
        Placement::Network
    }

    // A header whose name names a credential (`X-Auth-Token`, `X-Goog-Api-Key`) is recorded
    // masked, as `http` records it: the request sent has the value (docs/llm.md, "Keys and
    // secrets").
    fn conceal(&self, args: &mut Args) -> usize {
        match args.get_mut("headers") {
            Some(serde_json::Value::Object(headers)) => crate::net::mask_credentials(headers),
            _ => 0,
        }
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
        check::check_with(with, errors);
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
    let ask = ask::ask(args)?;
    let base = match args.get("base_url") {
        None | Some(Value::Null) => default_base_url(args),
        Some(_) => str_arg(args, "base_url").ok_or("`base_url` is not text")?,
    };
    let base = base.trim_end_matches('/');
    if let Some(why) = check::base_url_problem(base) {
        return Err(why);
    }
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
    use serde_json::json;

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
    fn usage_is_read_from_an_output() {
        let out = json!({"model": "m", "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}});
        assert_eq!(usage_of(&out), Some(("m", [3, 4, 7])));
        assert_eq!(usage_of(&json!("text")), None);
    }
}
