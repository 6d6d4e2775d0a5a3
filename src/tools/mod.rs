//! The built-in tools (SPEC section 3): their names, the `with:` keys they take and the
//! capabilities they need. Validation reads this table; the engine runs the tools.

use crate::policy::Capability;

pub mod builtin;
pub mod shell;

/// Output streams are kept up to this many bytes; past it, the full size and SHA-256 are
/// recorded instead of the rest.
pub const CAPTURE_LIMIT: usize = 1 << 20;

/// A captured output stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first [`CAPTURE_LIMIT`] bytes, decoded as UTF-8 (invalid sequences replaced).
    pub text: String,
    /// The full size of the stream in bytes.
    pub bytes: u64,
    /// Whether `text` holds only the first [`CAPTURE_LIMIT`] bytes.
    pub truncated: bool,
    /// Lowercase hex SHA-256 of the full stream, when truncated.
    pub sha256: Option<String>,
}

/// What one tool call produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The value `nodes.ID.output` reads.
    pub output: serde_json::Value,
    pub stdout: Option<Captured>,
    pub stderr: Option<Captured>,
    pub exit_code: Option<i32>,
    /// `Some(reason)` when the call failed.
    pub error: Option<String>,
}

/// One attempt at a tool call: what it produced, and the backoff before the next attempt
/// when there is one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    pub delay_ms: Option<u64>,
}

/// How a `with:` value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A string rendered as a template.
    Template,
    /// A bare expression (no `{{ }}`).
    Expression,
    /// Any YAML value; the strings inside it are rendered as templates.
    Value,
    /// A duration such as `500ms`.
    Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub name: &'static str,
    pub kind: KeyKind,
    pub required: bool,
    pub doc: &'static str,
}

const fn key(name: &'static str, kind: KeyKind, required: bool, doc: &'static str) -> KeySpec {
    KeySpec {
        name,
        kind,
        required,
        doc,
    }
}

#[derive(Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub keys: &'static [KeySpec],
    /// Groups of keys of which exactly one must be given.
    pub one_of: &'static [&'static [&'static str]],
    pub capabilities: &'static [Capability],
}

impl ToolSpec {
    pub fn key(&self, name: &str) -> Option<&KeySpec> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn key_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.keys.iter().map(|k| k.name)
    }
}

use KeyKind::{Duration, Expression, Template, Value};

pub static TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "noop",
        summary: "does nothing",
        keys: &[],
        one_of: &[],
        capabilities: &[],
    },
    ToolSpec {
        name: "echo",
        summary: "output = rendered message",
        keys: &[key("message", Template, true, "text to output")],
        one_of: &[],
        capabilities: &[],
    },
    ToolSpec {
        name: "template",
        summary: "output = rendered text",
        keys: &[key("text", Template, true, "template to render")],
        one_of: &[],
        capabilities: &[],
    },
    ToolSpec {
        name: "sleep",
        summary: "waits for a duration",
        keys: &[key(
            "duration",
            Duration,
            true,
            "how long to wait, e.g. 500ms",
        )],
        one_of: &[],
        capabilities: &[],
    },
    ToolSpec {
        name: "random",
        summary: "draws from the node's seeded RNG",
        keys: &[
            key(
                "int",
                Value,
                false,
                "[lo, hi]: an integer in the closed range",
            ),
            key(
                "float",
                Value,
                false,
                "[lo, hi]: a float in the half-open range",
            ),
            key("choice", Value, false, "a list to pick one item from"),
            key("shuffle", Value, false, "a list to shuffle"),
        ],
        one_of: &[&["int", "float", "choice", "shuffle"]],
        capabilities: &[],
    },
    ToolSpec {
        name: "assert",
        summary: "fails the node unless `that` is true",
        keys: &[
            key("that", Expression, true, "expression that must be true"),
            key("message", Template, false, "message when it is not"),
        ],
        one_of: &[],
        capabilities: &[],
    },
    ToolSpec {
        name: "shell",
        summary: "runs a command",
        keys: &[
            key(
                "run",
                Template,
                false,
                "command line for `sh -c` (interpolated values are shell-quoted)",
            ),
            key(
                "args",
                Value,
                false,
                "program and arguments, run without a shell",
            ),
            key("env", Value, false, "extra environment variables"),
            key("cwd", Template, false, "working directory"),
            key("stdin", Template, false, "text written to standard input"),
        ],
        one_of: &[&["run", "args"]],
        capabilities: &[Capability::Subprocess],
    },
    ToolSpec {
        name: "file.read",
        summary: "reads a file",
        keys: &[key("path", Template, true, "file to read")],
        one_of: &[],
        capabilities: &[Capability::FsRead],
    },
    ToolSpec {
        name: "file.write",
        summary: "writes a file",
        keys: &[
            key("path", Template, true, "file to write"),
            key("content", Template, true, "text to write"),
        ],
        one_of: &[],
        capabilities: &[Capability::FsWrite],
    },
    ToolSpec {
        name: "http",
        summary: "makes an HTTP request",
        keys: &[
            key("method", Template, false, "GET (default), POST, ..."),
            key("url", Template, true, "request URL"),
            key("headers", Value, false, "request headers"),
            key("body", Value, false, "request body"),
        ],
        one_of: &[],
        capabilities: &[Capability::Net],
    },
    ToolSpec {
        name: "llm",
        summary: "chat completion against an OpenAI-compatible endpoint",
        keys: &[
            key("base_url", Template, false, "endpoint base URL"),
            key("model", Template, true, "model name"),
            key("messages", Value, false, "chat messages ({role, content})"),
            key("prompt", Template, false, "a single user message"),
            key("temperature", Value, false, "sampling temperature"),
            key("seed", Value, false, "sampling seed"),
        ],
        one_of: &[&["messages", "prompt"]],
        capabilities: &[Capability::Llm],
    },
    ToolSpec {
        name: "mcp",
        summary: "calls a tool on a Model Context Protocol server over stdio",
        keys: &[
            key("server", Value, true, "argv that starts the server"),
            key("tool", Template, true, "tool name on the server"),
            key("arguments", Value, false, "tool arguments"),
        ],
        one_of: &[],
        capabilities: &[Capability::ExternalApi, Capability::Subprocess],
    },
];

/// Looks a tool up by name.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    TOOLS.iter().map(|t| t.name)
}
