//! The `mcp` tool: calls a tool on a Model Context Protocol server (docs/tools.md, "mcp").
//!
//! The server is a named one of `mcp_servers:`, which validation puts in the call's `server`
//! argument as its definition (so the policy sees the program or URL, and the recorded input
//! says which server was called), or an inline argv. A stdio server's program is checked
//! against `commands`, an HTTP server's URL against `hosts`. The run's servers are started
//! and stopped by the registry in [`CallCx::mcp`]; a replay never calls this.

use super::{
    Args, CallCx, KeyKind, Listing, Outcome, Resource, Tool, ToolSpec, key, str_arg, word,
};
use crate::mcp::protocol::{self, McpError};
use crate::mcp::{CALL_TIMEOUT, Server};
use crate::policy::{CapSet, Capability};
use crate::syntax::yaml;
use serde_json::Value;

/// A call of a tool on a Model Context Protocol server.
pub struct Mcp;

static MCP: ToolSpec = ToolSpec {
    name: "mcp",
    summary: "calls a tool on a Model Context Protocol server (stdio or Streamable HTTP)",
    keys: &[
        key(
            "server",
            KeyKind::Value,
            true,
            "a server of `mcp_servers`, or the argv that starts one",
        ),
        key("tool", KeyKind::Template, false, "tool name on the server"),
        key(
            "arguments",
            KeyKind::Value,
            false,
            "tool arguments (a mapping)",
        ),
        key(
            "allow_error",
            KeyKind::Value,
            false,
            "true: a result with `isError` is the output instead of a failure",
        ),
        key(
            "list",
            KeyKind::Value,
            false,
            "instead of a call: the server's tools as function definitions (`true`: all; a list: those named)",
        ),
    ],
    one_of: &[&["tool", "list"]],
    // What a call may need: stdio servers need `subprocess`, HTTP servers `net`; each task
    // needs only its server's (see `capabilities_of`).
    capabilities: &[
        Capability::ExternalApi,
        Capability::Subprocess,
        Capability::Net,
    ],
};

/// The `server` value of a task's `with:`.
fn server_node(with: &[(String, yaml::Node)]) -> Option<&yaml::Node> {
    with.iter().find(|(k, _)| k == "server").map(|(_, v)| v)
}

fn map_get<'a>(node: &'a yaml::Node, key: &str) -> Option<&'a yaml::Node> {
    match &node.value {
        yaml::Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

impl Tool for Mcp {
    fn spec(&self) -> &'static ToolSpec {
        &MCP
    }

    fn placement(&self) -> super::Placement {
        super::Placement::Network
    }

    fn capabilities_of(&self, with: &[(String, yaml::Node)]) -> CapSet {
        let reach = match server_node(with).and_then(|s| map_get(s, "url")) {
            Some(_) => Capability::Net,
            None => Capability::Subprocess,
        };
        CapSet::of(&[Capability::ExternalApi, reach])
    }

    fn limit_key(&self, with: &[(String, yaml::Node)]) -> Option<String> {
        let server = map_get(server_node(with)?, "name")?.as_str()?;
        let tool = with.iter().find(|(k, _)| k == "tool")?.1.as_str()?;
        (!tool.contains("{{") && !tool.contains("{%")).then(|| format!("mcp:{server}/{tool}"))
    }

    fn keys_calls(&self) -> bool {
        true
    }

    /// `allow_error: true` (as an agent's calls have it, docs/agents.md).
    fn errors_are_answers(&self, args: &Args) -> bool {
        args.get("allow_error") == Some(&Value::Bool(true))
    }

    fn call_limit_key(&self, args: &Args) -> Option<String> {
        let server = args.get("server")?.get("name")?.as_str()?;
        let tool = str_arg(args, "tool")?;
        Some(format!("mcp:{server}/{tool}"))
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        let argv = match args.get("server") {
            Some(Value::Array(argv)) => Some(argv),
            Some(Value::Object(def)) => match (def.get("command"), def.get("url")) {
                (Some(Value::Array(argv)), _) => Some(argv),
                (_, Some(Value::String(url))) => return vec![Resource::Url(url)],
                _ => None,
            },
            _ => None,
        };
        // Only an argument vector says which program starts; anything else cannot be checked.
        let programs = match argv {
            Some(argv) => {
                let argv: Vec<String> = argv.iter().map(word).collect();
                crate::sh::programs(None, Some(&argv))
            }
            None => Err("the server is neither an argument vector nor a URL".into()),
        };
        if argv.is_none() {
            return vec![Resource::Programs(programs), Resource::Url("")];
        }
        vec![Resource::Programs(programs)]
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let server = match args.get("server").map(Server::from_arg) {
            Some(Ok(server)) => server,
            Some(Err(e)) => return Outcome::failed(e),
            None => return Outcome::failed("no `server`"),
        };
        if let Some(only) = args.get("list") {
            return listing(&server, only, cx);
        }
        let Some(tool) = str_arg(args, "tool").filter(|t| !t.is_empty()) else {
            return Outcome::failed("`tool` must be a tool's name");
        };
        let arguments = args.get("arguments").cloned().unwrap_or(Value::Null);
        if !matches!(arguments, Value::Object(_) | Value::Null) {
            return Outcome::failed("`arguments` must be a mapping");
        }
        let allow_error = match args.get("allow_error") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Outcome::failed(format!(
                    "`allow_error` must be true or false, not {other}"
                ));
            }
        };
        let timeout = cx.timeout.unwrap_or(CALL_TIMEOUT);
        let called = cx
            .mcp
            .call(&server, tool, &arguments, timeout, cx.net, cx.cancel);
        let failed = |e: McpError| {
            Outcome::failed(format!("mcp server `{}`, tool `{tool}`: {e}", server.name))
        };
        let called = match called {
            Ok(called) => called,
            Err(McpError::Interrupted) => return Outcome::interrupted(),
            Err(e) => return failed(e),
        };
        let listing = Some(Listing {
            server: server.name.clone(),
            tools: called.tools,
        });
        let output = match protocol::call_output(&called.result) {
            Ok(output) => output,
            Err(e) => {
                return Outcome {
                    listing,
                    ..failed(e)
                };
            }
        };
        let error = (output["is_error"] == true && !allow_error).then(|| {
            format!(
                "mcp server `{}`, tool `{tool}` reported an error: {}",
                server.name,
                protocol::excerpt(output["text"].as_str().unwrap_or_default())
            )
        });
        Outcome {
            output,
            error,
            listing,
            ..Outcome::default()
        }
    }
}

/// A `list:` call: the server's `tools/list` as function definitions a model is given
/// (`{type: function, function: {name, description, parameters}}`), in the server's order,
/// keeping those `only` names (all when it is `true`). A name `only` gives that the server
/// does not list is left out: the model is never offered what the server cannot do.
fn listing(server: &Server, only: &Value, cx: &mut CallCx<'_>) -> Outcome {
    let keep: Option<Vec<&str>> = match only {
        Value::Bool(true) => None,
        Value::Array(names) => Some(names.iter().filter_map(Value::as_str).collect()),
        other => {
            return Outcome::failed(format!(
                "`list` is true or a list of tool names, not {other}"
            ));
        }
    };
    let timeout = cx.timeout.unwrap_or(CALL_TIMEOUT);
    let tools = match cx.mcp.list(server, timeout, cx.net, cx.cancel) {
        Ok(tools) => tools,
        Err(McpError::Interrupted) => return Outcome::interrupted(),
        Err(e) => {
            return Outcome::failed(format!("mcp server `{}`: {e}", server.name));
        }
    };
    let functions: Vec<Value> = tools
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|t| {
            let name = t["name"].as_str().unwrap_or_default();
            keep.as_ref().is_none_or(|k| k.contains(&name))
        })
        .map(|t| {
            let mut function = serde_json::json!({ "name": t["name"] });
            if let Some(d) = t.get("description").filter(|d| d.is_string()) {
                function["description"] = d.clone();
            }
            function["parameters"] = match t.get("inputSchema") {
                Some(schema) if schema.is_object() => schema.clone(),
                _ => serde_json::json!({ "type": "object", "properties": {} }),
            };
            serde_json::json!({ "type": "function", "function": function })
        })
        .collect();
    Outcome {
        output: Value::Array(functions),
        listing: Some(Listing {
            server: server.name.clone(),
            tools,
        }),
        ..Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::effective::{Effective, Reason};
    use crate::tools::testing::args;
    use serde_json::json;

    #[test]
    fn the_stdio_server_is_checked_against_commands() {
        let with = args(json!({ "server": ["mcp-files", "--root", "."], "tool": "list" }));
        assert_eq!(
            Mcp.resources(&with),
            [Resource::Programs(Ok(vec!["mcp-files".into()]))]
        );

        let policy = Effective::of_workflow("preset: permissive\ncommands: [git]\n");
        let (check, verdict) = policy.check(&Mcp.resources(&with)[0]);
        assert_eq!(check.name(), "command");
        let denial = verdict.unwrap_err();
        assert_eq!(denial.reason, Reason::CommandNotPermitted);
        assert!(denial.detail.contains("mcp-files"), "{}", denial.detail);

        let policy = Effective::of_workflow("preset: permissive\ncommands: [mcp-files]\n");
        assert_eq!(policy.check(&Mcp.resources(&with)[0]).1, Ok(()));
    }

    #[test]
    fn a_named_server_is_checked_by_its_command_or_its_url() {
        let stdio = args(json!({
            "server": { "name": "fs", "command": ["mcp-files", "."] },
            "tool": "list",
        }));
        assert_eq!(
            Mcp.resources(&stdio),
            [Resource::Programs(Ok(vec!["mcp-files".into()]))]
        );
        let http = args(json!({
            "server": { "name": "api", "url": "https://mcp.example.com/mcp" },
            "tool": "list",
        }));
        assert_eq!(
            Mcp.resources(&http),
            [Resource::Url("https://mcp.example.com/mcp")]
        );
        let policy = Effective::of_workflow("preset: permissive\nhosts: [api.example.com]\n");
        let denial = policy.check(&Mcp.resources(&http)[0]).1.unwrap_err();
        assert_eq!(denial.reason, Reason::HostNotPermitted);
    }

    #[test]
    fn a_server_that_is_not_an_argv_cannot_pass_commands() {
        let empty = args(json!({ "server": [], "tool": "list" }));
        assert!(matches!(
            Mcp.resources(&empty).as_slice(),
            [Resource::Programs(Err(_))]
        ));
        for server in [json!("files"), json!({ "name": "x" })] {
            let with = args(json!({ "server": server, "tool": "list" }));
            assert!(matches!(
                Mcp.resources(&with).as_slice(),
                [Resource::Programs(Err(_)), Resource::Url("")]
            ));
        }
    }
}
