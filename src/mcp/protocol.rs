//! The Model Context Protocol as kairos speaks it: JSON-RPC 2.0 messages, the revisions it
//! negotiates, and the shapes of the results it reads (docs/tools.md, "mcp").
//!
//! Two eras: the stateless revision ([`MODERN`], 2026-07-28), where a client asks
//! `server/discover` and every request carries the revision and the client's description in its
//! `_meta`; and the revisions with the `initialize` handshake ([`SUPPORTED`]). A server is
//! probed with `server/discover` first; anything that is not a modern answer (an error, a
//! timeout, an HTTP refusal, a list of only older revisions) falls back to `initialize`, as the
//! revision's backward-compatibility rules ask. Only a modern-only server that names no
//! revision kairos speaks is refused.

use serde_json::{Map, Value, json};
use std::time::Duration;

/// The stateless revision: `server/discover`, no handshake, no session.
pub const MODERN: &str = "2026-07-28";

/// The revision offered in `initialize`.
pub const LATEST: &str = "2025-11-25";

/// The error of a request at a revision the server does not speak; `data.supported` lists
/// the ones it does.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// How long the `server/discover` probe may take before the server is taken for an older one.
pub const DISCOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The `_meta` keys of the stateless revision.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// The revisions a server may answer with, newest first.
pub const SUPPORTED: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// JSON-RPC's "method not found": kairos declares no client capabilities, so it answers
/// every request from a server (sampling, elicitation, roots) this way, except `ping`.
pub const METHOD_NOT_FOUND: i64 = -32601;

/// Pages of `tools/list` read at most: a server that keeps giving cursors is broken.
pub const MAX_PAGES: usize = 1000;

/// Why a request got no result.
#[derive(Debug, Clone, PartialEq)]
pub enum McpError {
    /// The server answered with a JSON-RPC error.
    Rpc {
        code: i64,
        message: String,
        data: Value,
    },
    /// An HTTP server refused the request with this status (and the start of its body).
    Status(u16, String),
    /// No answer within the time given; the request was cancelled.
    Timeout(std::time::Duration),
    /// A second interrupt: the request was cancelled.
    Interrupted,
    /// The server broke the protocol (non-JSON on stdout, a version kairos does not speak).
    Protocol(String),
    /// The server process ended, or its connection did.
    Closed(String),
    /// The exchange failed (HTTP transport, refused host, spawn).
    Transport(String),
}

impl std::fmt::Display for McpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpError::Rpc { code, message, .. } => {
                write!(f, "the server answered error {code}: {message}")
            }
            McpError::Status(status, body) => {
                write!(f, "the server answered HTTP {status}: {body}")
            }
            McpError::Timeout(t) => {
                write!(f, "timed out after {}", crate::syntax::duration::format(*t))
            }
            McpError::Interrupted => f.write_str("interrupted"),
            McpError::Protocol(m) => write!(f, "protocol error: {m}"),
            McpError::Closed(m) | McpError::Transport(m) => f.write_str(m),
        }
    }
}

/// A message read from a server.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// The answer to one of kairos's requests.
    Response {
        id: Value,
        outcome: Result<Value, McpError>,
    },
    /// A request from the server, which kairos must answer.
    Request { id: Value, method: String },
    /// A notification (progress, logging): accepted and otherwise ignored.
    Notification { method: String },
}

impl Incoming {
    /// Reads one JSON-RPC message; anything else is a protocol error that says what it got.
    pub fn parse(text: &str) -> Result<Incoming, McpError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|_| McpError::Protocol(format!("not JSON-RPC: {}", excerpt(text))))?;
        Incoming::from_value(value, text)
    }

    pub fn from_value(value: Value, text: &str) -> Result<Incoming, McpError> {
        let bad = || McpError::Protocol(format!("not a JSON-RPC message: {}", excerpt(text)));
        let Value::Object(mut m) = value else {
            return Err(bad());
        };
        let method = m.get("method").and_then(Value::as_str).map(str::to_string);
        match (m.remove("id"), method) {
            (Some(id), Some(method)) => Ok(Incoming::Request { id, method }),
            (None, Some(method)) => Ok(Incoming::Notification { method }),
            (Some(id), None) => {
                let outcome = match (m.remove("result"), m.remove("error")) {
                    (Some(result), None) => Ok(result),
                    (None, Some(error)) => Err(McpError::Rpc {
                        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                        message: error
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        data: error.get("data").cloned().unwrap_or(Value::Null),
                    }),
                    _ => return Err(bad()),
                };
                Ok(Incoming::Response { id, outcome })
            }
            (None, None) => Err(bad()),
        }
    }
}

/// The start of a text, for an error message.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let text = text.trim_end();
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("`{}…`", &text[..at]),
        None => format!("`{text}`"),
    }
}

/// A request line. A `tools/call` asks for progress under the request's own id (its
/// `_meta.progressToken`, see [`call_params`]).
pub fn request(id: u64, method: &str, mut params: Value) -> Value {
    if method == "tools/call"
        && let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut)
    {
        meta.insert("progressToken".into(), id.into());
    }
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// The notification that request `id` is abandoned, and why.
pub fn cancelled(id: u64, reason: &str) -> Value {
    notification(
        "notifications/cancelled",
        json!({ "requestId": id, "reason": reason }),
    )
}

/// A notification line.
pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

/// The answer to a request from the server: `ping` is answered, everything else is "method
/// not found".
pub fn answer(id: Value, method: &str) -> Value {
    if method == "ping" {
        json!({ "jsonrpc": "2.0", "id": id, "result": {} })
    } else {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": METHOD_NOT_FOUND, "message": format!("method not found: {method}") },
        })
    }
}

/// Which era a server speaks, once it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Era {
    /// The `initialize` handshake, at the revision the server chose.
    Handshake(String),
    /// The stateless revision.
    Modern,
}

impl Era {
    pub fn version(&self) -> &str {
        match self {
            Era::Handshake(v) => v,
            Era::Modern => MODERN,
        }
    }

    /// A request's parameters as this era wants them: in the stateless revision, every
    /// request's `_meta` says the revision, the client and its (empty) capabilities.
    pub fn stamp(&self, params: Value) -> Value {
        if *self != Era::Modern {
            return params;
        }
        let mut params = match params {
            Value::Object(p) => p,
            _ => Map::new(),
        };
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert(META_VERSION.into(), MODERN.into());
            meta.insert(META_CLIENT.into(), client_info());
            meta.insert(META_CAPABILITIES.into(), json!({}));
        }
        Value::Object(params)
    }
}

fn client_info() -> Value {
    json!({ "name": "kairos", "version": env!("CARGO_PKG_VERSION") })
}

/// The parameters of `server/discover`.
pub fn discover_params() -> Value {
    Era::Modern.stamp(json!({}))
}

/// What the answer to `server/discover` says: the stateless revision, or `None` to fall back
/// to `initialize`. Only errors that are not about the protocol (the server is gone, the run
/// was interrupted) and a modern-only server that speaks no revision kairos speaks are errors.
pub fn discovered(answer: Result<Value, McpError>) -> Result<Option<Era>, McpError> {
    match answer {
        Ok(result) => {
            let modern = result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v == MODERN));
            Ok(modern.then_some(Era::Modern))
        }
        Err(McpError::Rpc {
            code: UNSUPPORTED_VERSION,
            data,
            ..
        }) => {
            let supported: Vec<&str> = data
                .get("supported")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if supported.is_empty() || supported.iter().any(|v| SUPPORTED.contains(v)) {
                Ok(None)
            } else {
                Err(McpError::Protocol(format!(
                    "the server speaks MCP revision {}; kairos speaks {MODERN}, {}",
                    supported.join(", "),
                    SUPPORTED.join(", ")
                )))
            }
        }
        Err(McpError::Rpc { .. } | McpError::Status(..) | McpError::Timeout(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The parameters of `initialize`: no client capabilities (no sampling, roots or elicitation).
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": LATEST,
        "capabilities": {},
        "clientInfo": client_info(),
    })
}

/// The revision a server chose in its `initialize` result, if kairos speaks it.
pub fn negotiated(result: &Value) -> Result<String, McpError> {
    let version = result.get("protocolVersion").and_then(Value::as_str);
    match version {
        Some(v) if SUPPORTED.contains(&v) => Ok(v.to_string()),
        Some(v) => Err(McpError::Protocol(format!(
            "the server speaks MCP revision {v}; kairos speaks {}",
            SUPPORTED.join(", ")
        ))),
        None => Err(McpError::Protocol(
            "the `initialize` result has no `protocolVersion`".into(),
        )),
    }
}

/// Reads the tools of every page of `tools/list`: `page` asks for one page (the cursor of
/// the previous one, if any).
pub fn list_tools(
    mut page: impl FnMut(Option<&str>) -> Result<Value, McpError>,
) -> Result<Vec<Value>, McpError> {
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let result = page(cursor.as_deref())?;
        match result.get("tools") {
            Some(Value::Array(items)) => tools.extend(items.iter().cloned()),
            _ => {
                return Err(McpError::Protocol(
                    "a `tools/list` result has no `tools` list".into(),
                ));
            }
        }
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(next) if cursor.as_deref() == Some(next) => {
                return Err(McpError::Protocol(format!(
                    "`tools/list` gave the cursor {} twice",
                    excerpt(next)
                )));
            }
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(tools),
        }
    }
    Err(McpError::Protocol(format!(
        "`tools/list` gave more than {MAX_PAGES} pages"
    )))
}

/// The parameters of `tools/list` for a page.
pub fn list_params(cursor: Option<&str>) -> Value {
    match cursor {
        Some(c) => json!({ "cursor": c }),
        None => json!({}),
    }
}

/// The parameters of `tools/call`, with a `_meta` where [`request`] asks for progress (the
/// notifications are accepted).
pub fn call_params(tool: &str, arguments: &Value) -> Value {
    let arguments = match arguments {
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    };
    json!({
        "name": tool,
        "arguments": arguments,
        "_meta": {},
    })
}

/// A `tools/call` result as the node's output: `{text, structured, content, is_error}`.
/// `text` joins the text items of `content` with newlines.
pub fn call_output(result: &Value) -> Result<Value, McpError> {
    let content = match result.get("content") {
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(McpError::Protocol(
                "a `tools/call` result's `content` is not a list".into(),
            ));
        }
    };
    let text: Vec<&str> = content
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
    Ok(json!({
        "text": text.join("\n"),
        "structured": result.get("structuredContent").cloned().unwrap_or(Value::Null),
        "content": content,
        "is_error": is_error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart() {
        assert_eq!(
            Incoming::parse(r#"{"jsonrpc":"2.0","id":3,"result":{"a":1}}"#).unwrap(),
            Incoming::Response {
                id: json!(3),
                outcome: Ok(json!({"a":1}))
            }
        );
        assert_eq!(
            Incoming::parse(r#"{"jsonrpc":"2.0","id":"x","method":"sampling/createMessage"}"#)
                .unwrap(),
            Incoming::Request {
                id: json!("x"),
                method: "sampling/createMessage".into()
            }
        );
        assert_eq!(
            Incoming::parse(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#).unwrap(),
            Incoming::Notification {
                method: "notifications/progress".into()
            }
        );
        let Incoming::Response { outcome, .. } =
            Incoming::parse(r#"{"id":1,"error":{"code":-32602,"message":"bad"}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            outcome,
            Err(McpError::Rpc {
                code: -32602,
                message: "bad".into(),
                data: Value::Null,
            })
        );
    }

    #[test]
    fn a_line_that_is_not_json_rpc_is_a_protocol_error_that_quotes_it() {
        for line in ["Server started on stdio", "[1,2]", r#"{"id":1}"#] {
            let e = Incoming::parse(line).unwrap_err();
            assert!(
                matches!(&e, McpError::Protocol(m) if m.contains(line)),
                "{e}"
            );
        }
    }

    #[test]
    fn ping_is_answered_and_other_requests_are_method_not_found() {
        assert_eq!(answer(json!(1), "ping")["result"], json!({}));
        let a = answer(json!(2), "roots/list");
        assert_eq!(a["error"]["code"], json!(METHOD_NOT_FOUND));
        assert_eq!(a["id"], json!(2));
    }

    #[test]
    fn only_supported_revisions_are_accepted() {
        for v in SUPPORTED {
            assert_eq!(negotiated(&json!({ "protocolVersion": v })).unwrap(), *v);
        }
        assert!(negotiated(&json!({ "protocolVersion": "2099-01-01" })).is_err());
        assert!(negotiated(&json!({})).is_err());
    }

    #[test]
    fn discovery_decides_the_era_and_falls_back_on_anything_else() {
        let modern = json!({ "supportedVersions": ["2026-07-28"], "capabilities": {} });
        assert_eq!(discovered(Ok(modern)).unwrap(), Some(Era::Modern));
        let only_old = json!({ "supportedVersions": ["2025-11-25"] });
        assert_eq!(discovered(Ok(only_old)).unwrap(), None);
        let rpc = |code, data| McpError::Rpc {
            code,
            message: "no".into(),
            data,
        };
        for fallback in [
            rpc(METHOD_NOT_FOUND, Value::Null),
            rpc(-32600, Value::Null),
            rpc(
                UNSUPPORTED_VERSION,
                json!({ "supported": ["2025-06-18", "2099-01-01"] }),
            ),
            McpError::Status(400, "Server not initialized".into()),
            McpError::Timeout(DISCOVER_TIMEOUT),
        ] {
            assert_eq!(
                discovered(Err(fallback.clone())).unwrap(),
                None,
                "{fallback:?}"
            );
        }
        let disjoint = rpc(UNSUPPORTED_VERSION, json!({ "supported": ["2099-01-01"] }));
        assert!(matches!(
            discovered(Err(disjoint)),
            Err(McpError::Protocol(_))
        ));
        let gone = McpError::Closed("the server exited".into());
        assert_eq!(discovered(Err(gone.clone())), Err(gone));
    }

    #[test]
    fn the_stateless_revision_stamps_every_request() {
        let stamped = Era::Modern.stamp(call_params("add", &json!({"a": 1})));
        let stamped = request(7, "tools/call", stamped)["params"].clone();
        let meta = &stamped["_meta"];
        assert_eq!(meta["progressToken"], 7);
        assert_eq!(meta[META_VERSION], MODERN);
        assert_eq!(meta[META_CLIENT]["name"], "kairos");
        assert_eq!(meta[META_CAPABILITIES], json!({}));
        assert_eq!(stamped["name"], "add");
        let old = Era::Handshake(LATEST.into());
        assert_eq!(old.stamp(json!({})), json!({}));
    }

    #[test]
    fn tools_are_read_across_pages_and_a_repeated_cursor_stops() {
        let pages = [
            json!({ "tools": [{"name": "a"}], "nextCursor": "1" }),
            json!({ "tools": [{"name": "b"}], "nextCursor": "2" }),
            json!({ "tools": [{"name": "c"}] }),
        ];
        let mut asked = Vec::new();
        let tools = list_tools(|cursor| {
            asked.push(cursor.map(str::to_string));
            Ok(pages[asked.len() - 1].clone())
        })
        .unwrap();
        assert_eq!(tools.len(), 3);
        assert_eq!(asked, [None, Some("1".into()), Some("2".into())]);

        let looping = list_tools(|_| Ok(json!({ "tools": [], "nextCursor": "same" })));
        assert!(matches!(looping, Err(McpError::Protocol(m)) if m.contains("twice")));
    }

    #[test]
    fn a_call_result_becomes_the_output() {
        let out = call_output(&json!({
            "content": [
                {"type": "text", "text": "one"},
                {"type": "image", "data": "AA==", "mimeType": "image/png"},
                {"type": "text", "text": "two"},
            ],
            "structuredContent": {"sum": 3},
            "isError": true,
        }))
        .unwrap();
        assert_eq!(out["text"], "one\ntwo");
        assert_eq!(out["structured"], json!({"sum": 3}));
        assert_eq!(out["content"].as_array().unwrap().len(), 3);
        assert_eq!(out["is_error"], true);
        let empty = call_output(&json!({})).unwrap();
        assert_eq!(
            empty,
            json!({"text": "", "structured": null, "content": [], "is_error": false})
        );
    }
}
