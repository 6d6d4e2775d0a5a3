//! The `mcp` tool: described and validated, not yet runnable in this build. The stdio server
//! it would start is a program like any other: the policy checks it against `commands`.

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, unavailable, word,
};
use crate::policy::Capability;
use serde_json::Value;

/// A call of a tool on a Model Context Protocol server.
pub struct Mcp;

static MCP: ToolSpec = ToolSpec {
    name: "mcp",
    summary: "calls a tool on a Model Context Protocol server over stdio",
    keys: &[
        key(
            "server",
            KeyKind::Value,
            true,
            "argv that starts the server",
        ),
        key("tool", KeyKind::Template, true, "tool name on the server"),
        key("arguments", KeyKind::Value, false, "tool arguments"),
    ],
    one_of: &[],
    capabilities: &[Capability::ExternalApi, Capability::Subprocess],
};

impl Tool for Mcp {
    fn spec(&self) -> &'static ToolSpec {
        &MCP
    }

    fn placement(&self) -> Placement {
        Placement::Unavailable
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        // Only an argument vector says which program starts; anything else cannot be checked.
        let programs = match args.get("server") {
            Some(Value::Array(argv)) => {
                let argv: Vec<String> = argv.iter().map(word).collect();
                crate::sh::programs(None, Some(&argv))
            }
            _ => Err("the server is not given as an argument vector".into()),
        };
        vec![Resource::Programs(programs)]
    }

    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        unavailable(&MCP)
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
    fn a_server_that_is_not_an_argv_cannot_pass_commands() {
        for server in [json!("files"), json!([])] {
            let with = args(json!({ "server": server, "tool": "list" }));
            assert!(matches!(
                Mcp.resources(&with).as_slice(),
                [Resource::Programs(Err(_))]
            ));
        }
    }
}
