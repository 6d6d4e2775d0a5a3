//! The `mcp` tool: described and validated, not yet runnable in this build.

use super::{
    Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, unavailable,
};
use crate::policy::Capability;

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

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        unavailable(&MCP)
    }
}
