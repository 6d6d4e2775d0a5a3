//! `mcp_servers:`: the MCP servers a workflow declares once and its `mcp` tasks name
//! (docs/workflow.md, "mcp_servers").
//!
//! Each is `NAME: { command: [argv], env, cwd }` (a stdio server) or `NAME: { url, headers }`
//! (Streamable HTTP), with an optional `startup_timeout` and `max_concurrency`. A task's
//! `server: NAME` is replaced here by the server's definition (with its `name`), so the
//! policy sees the program or URL the call reaches, and the recorded input says which server
//! it called; an unknown name is an error with a "did you mean".

use crate::syntax::diag::{WorkflowError, did_you_mean, ss};
use crate::syntax::duration;
use crate::syntax::read::{self, Errors, Fields};
use crate::syntax::yaml::{self, Span, Str, Value};

pub const SERVER_KEYS: &[&str] = &[
    "command",
    "env",
    "cwd",
    "url",
    "headers",
    "startup_timeout",
    "max_concurrency",
];

/// A declared server.
#[derive(Debug, Clone)]
pub struct McpServer {
    pub name: String,
    /// The span of its name.
    pub span: Span,
    /// Its definition, `name` first: what a task's `server` becomes.
    pub definition: yaml::Node,
}

/// Reads `mcp_servers:`, reporting every problem.
pub fn read(n: &yaml::Node, errors: &mut Errors) -> Vec<McpServer> {
    let Value::Map(entries) = &n.value else {
        errors.push(read::wrong_type(n, "a mapping of server names to servers"));
        return Vec::new();
    };
    let mut servers = Vec::new();
    for (key, value) in entries {
        let Some(name) = read::scalar_text(key, errors) else {
            continue;
        };
        if !crate::workflow::validate::valid_id(&name.value) {
            errors.push(WorkflowError::InvalidValue {
                message: format!("`{}` is not a server name", name.value),
                span: ss(name.span),
                label: "not a name".into(),
                help: Some(
                    "a server name is a letter or `_`, then letters, digits, `_` or `-`".into(),
                ),
            });
            continue;
        }
        if definition(value, errors) {
            let mut with_name = vec![(
                plain(Span::new(name.span.offset(), 0), "name"),
                plain(name.span, &name.value),
            )];
            if let Value::Map(fields) = &value.value {
                with_name.extend(fields.iter().cloned());
            }
            servers.push(McpServer {
                name: name.value,
                span: name.span,
                definition: yaml::Node {
                    span: value.span,
                    value: Value::Map(with_name.into()),
                },
            });
        }
    }
    servers
}

fn plain(span: Span, text: &str) -> yaml::Node {
    yaml::Node {
        span,
        value: Value::Str(Str::new(text)),
    }
}

/// Checks one server's definition; whether it can be used.
fn definition(n: &yaml::Node, errors: &mut Errors) -> bool {
    let before = errors.len();
    let Some(f) = Fields::new(n, "MCP server", SERVER_KEYS, errors) else {
        return false;
    };
    let invalid = |span: Span, message: String, label: &str| WorkflowError::InvalidValue {
        message,
        span: ss(span),
        label: label.into(),
        help: Some("a server is `{ command: [argv], env, cwd }` or `{ url, headers }`".into()),
    };
    match (f.get("command"), f.get("url")) {
        (Some(command), None) => {
            let argv = read::string_list(command, errors);
            if matches!(&command.value, Value::Seq(items) if items.is_empty()) || argv.is_empty() {
                errors.push(invalid(
                    command.span,
                    "`command` is an empty argv".into(),
                    "empty",
                ));
            }
            for key in ["headers"] {
                if let Some(span) = f.key_span(key) {
                    errors.push(invalid(
                        span,
                        format!("`{key}` belongs to an HTTP server"),
                        "stdio server",
                    ));
                }
            }
        }
        (None, Some(url)) => {
            if let Some(text) = read::string(url, errors)
                && !text.value.contains("{{")
                && let Err(e) = crate::net::Target::parse(&text.value)
            {
                errors.push(invalid(url.span, e.to_string(), "not a URL"));
            }
            for key in ["env", "cwd"] {
                if let Some(span) = f.key_span(key) {
                    errors.push(invalid(
                        span,
                        format!("`{key}` belongs to a stdio server"),
                        "HTTP server",
                    ));
                }
            }
        }
        (Some(_), Some(_)) => errors.push(invalid(
            f.span(),
            "a server has `command` or `url`, not both".into(),
            "both",
        )),
        (None, None) => errors.push(invalid(
            f.span(),
            "a server needs `command` (stdio) or `url` (Streamable HTTP)".into(),
            "no transport",
        )),
    }
    for key in ["env", "headers"] {
        if let Some(map) = f.get(key) {
            match &map.value {
                Value::Map(entries) => {
                    for (k, v) in entries.iter() {
                        read::scalar_text(k, errors);
                        if matches!(v.value, Value::Map(_)) {
                            if let Some(f) = Fields::new(v, "`{ env: NAME }`", &["env"], errors) {
                                f.require("env", errors)
                                    .and_then(|n| read::string(n, errors));
                            }
                        } else {
                            read::scalar_text(v, errors);
                        }
                    }
                }
                _ => errors.push(read::wrong_type(map, "a mapping of names to values")),
            }
        }
    }
    if let Some(cwd) = f.get("cwd") {
        read::string(cwd, errors);
    }
    if let Some(t) = f.get("startup_timeout") {
        match read::string(t, errors) {
            Some(s) if duration::check(&s.value).is_err() => {
                errors.push(WorkflowError::InvalidDuration {
                    text: s.value,
                    span: ss(s.span),
                });
            }
            _ => {}
        }
    }
    if let Some(n) = f.get("max_concurrency")
        && let Some(v) = read::non_negative(n, errors)
        && v.value == 0
    {
        errors.push(invalid(
            n.span,
            "`max_concurrency` is at least 1".into(),
            "zero",
        ));
    }
    errors.len() == before
}

/// The environment variables whose values `env` and `headers` pass on (`{ env: NAME }`): the
/// run masks their values as it masks `secrets`.
pub fn secret_env(servers: &[McpServer]) -> Vec<String> {
    let mut names = Vec::new();
    for server in servers {
        let Value::Map(fields) = &server.definition.value else {
            continue;
        };
        for (key, value) in fields.iter() {
            if !matches!(key.as_str(), Some("env" | "headers")) {
                continue;
            }
            let Value::Map(entries) = &value.value else {
                continue;
            };
            for (_, v) in entries.iter() {
                let Value::Map(inner) = &v.value else {
                    continue;
                };
                for (k, name) in inner.iter() {
                    if let (Some("env"), Some(name)) = (k.as_str(), name.as_str()) {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    names
}

/// Resolves an `mcp` task's `server`: a name becomes the server's definition; an argv stays.
pub fn resolve(
    with: &mut [(String, yaml::Node)],
    servers: &[McpServer],
    errors: &mut Errors,
) -> bool {
    let Some((_, server)) = with.iter_mut().find(|(k, _)| k == "server") else {
        return true;
    };
    match &server.value {
        Value::Str(name) => {
            let name = name.to_string();
            match servers.iter().find(|s| s.name == name) {
                Some(found) => {
                    server.value = found.definition.value.clone();
                    true
                }
                None => {
                    errors.push(WorkflowError::InvalidValue {
                        message: format!("no MCP server `{name}` in `mcp_servers`"),
                        span: ss(server.span),
                        label: "unknown server".into(),
                        help: did_you_mean(&name, servers.iter().map(|s| s.name.as_str()))
                            .or_else(|| {
                                Some(if servers.is_empty() {
                                    "declare it under `mcp_servers:`, or give the argv that starts it".into()
                                } else {
                                    format!(
                                        "declared servers: {}",
                                        servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                                    )
                                })
                            }),
                    });
                    false
                }
            }
        }
        Value::Seq(items) if !items.is_empty() => {
            let before = errors.len();
            read::string_list(server, errors);
            errors.len() == before
        }
        _ => {
            errors.push(read::wrong_type(
                server,
                "a server of `mcp_servers` (its name) or the argv that starts one",
            ));
            false
        }
    }
}

/// Whether `key` is a `max_calls` key of the form `mcp:SERVER/TOOL` naming a declared server.
pub fn is_limit_key(key: &str, servers: &[McpServer]) -> bool {
    key.strip_prefix("mcp:")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(server, tool)| !tool.is_empty() && servers.iter().any(|s| s.name == server))
}
