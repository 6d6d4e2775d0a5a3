//! The tools a task can call. Each is a unit struct implementing [`Tool`] in a file of its own
//! (the tiny pure ones share `pure.rs`), listed once in [`TOOLS`]: its name, keys and
//! capabilities, where it runs, what a call touches and the call itself sit together, so adding
//! a tool is one file and one line.
//!
//! Validation reads the specs. The engine renders a call's arguments, asks the policy about
//! each [`Resource`] the tool says the call touches, and then calls it, inline or on a worker
//! as its [`Placement`] says. Arguments arrive rendered (templates evaluated, `assert`'s `that`
//! already a value), and a call depends only on them, the node's RNG and its timeout, so it
//! gives the same result whichever thread runs it.

use crate::cancel::Cancel;
use crate::mcp::Servers;
use crate::net::Net;
use crate::policy::paths::PathRules;
use crate::policy::{CapSet, Capability};
use crate::syntax::diag::WorkflowError;
use crate::syntax::yaml;
use rand_chacha::ChaCha20Rng;
use serde_json::{Map, Value};
use std::time::Duration;

pub use crate::policy::Resource;

mod file_read;
mod file_write;
mod http;
mod llm;
mod mcp;
mod open;
mod pure;
mod random;
pub mod shell;
mod sleep;

pub use file_read::FileRead;
pub use file_write::FileWrite;
pub use http::Http;
pub use llm::Llm;
pub(crate) use llm::{secret_names as llm_secret_names, usage_of as llm_usage_of};
pub use mcp::Mcp;
pub use pure::{Assert, Echo, Noop, Template};
pub use random::Random;
pub use shell::Shell;
pub use sleep::Sleep;

/// Every built-in tool, in the order they are documented.
#[rustfmt::skip] // One a line: adding a tool is a one-line change here.
pub static TOOLS: &[&dyn Tool] = &[
    &Noop,
    &Echo,
    &Template,
    &Sleep,
    &Random,
    &Assert,
    &Shell,
    &FileRead,
    &FileWrite,
    &Http,
    &Llm,
    &Mcp,
];

/// Looks a tool up by name.
pub fn find(name: &str) -> Option<&'static dyn Tool> {
    TOOLS.iter().copied().find(|t| t.spec().name == name)
}

/// The names of the tools, in [`TOOLS`] order.
pub fn names() -> impl Iterator<Item = &'static str> {
    TOOLS.iter().map(|t| t.spec().name)
}

/// The tools a workflow may name: the built-in [`TOOLS`], and any a caller puts ahead of
/// them. Tests run the engine with fake tools this way; `kairos` itself uses [`Toolbox::BUILTIN`].
#[derive(Clone, Copy, Debug)]
pub struct Toolbox {
    extra: &'static [&'static dyn Tool],
}

impl Toolbox {
    pub const BUILTIN: Toolbox = Toolbox { extra: &[] };

    /// The built-in tools with `extra` ahead of them (a name in `extra` hides a built-in one).
    pub fn with(extra: &'static [&'static dyn Tool]) -> Self {
        Toolbox { extra }
    }

    pub fn find(self, name: &str) -> Option<&'static dyn Tool> {
        self.extra
            .iter()
            .copied()
            .find(|t| t.spec().name == name)
            .or_else(|| find(name))
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.extra.iter().map(|t| t.spec().name).chain(names())
    }
}

/// A call's rendered arguments: the `with:` keys and their values.
pub type Args = Map<String, Value>;

/// A tool: what it is, where it runs, what a call touches, and the call.
pub trait Tool: Sync + 'static {
    /// Its name, keys and capabilities.
    fn spec(&self) -> &'static ToolSpec;

    /// Where a call runs.
    fn placement(&self) -> Placement {
        Placement::Worker
    }

    /// The capabilities a task of this tool needs, from its `with:` as written: the spec's,
    /// unless a tool needs less depending on the call (`mcp`: `subprocess` for a stdio server,
    /// `net` for an HTTP one). Decided before anything runs, for the static check.
    fn capabilities_of(&self, with: &[(String, yaml::Node)]) -> CapSet {
        let _ = with;
        CapSet::of(self.spec().capabilities)
    }

    /// A `max_calls` key a task's calls count against besides the tool's name and the node's
    /// id, from its `with:` as written (`mcp:SERVER/TOOL`).
    fn limit_key(&self, with: &[(String, yaml::Node)]) -> Option<String> {
        let _ = with;
        None
    }

    /// Whether a call can have a `max_calls` key of its own ([`Tool::call_limit_key`]).
    fn keys_calls(&self) -> bool {
        false
    }

    /// The `max_calls` key of a rendered call, for a task whose `with:` could not name it
    /// (its `tool` is a template, as in an agent's calls).
    fn call_limit_key(&self, args: &Args) -> Option<String> {
        let _ = args;
        None
    }

    /// Whether a call's errors, a policy's refusal included, are its answer rather than a
    /// failure of the run: they are given back to whoever asked (an agent's model).
    fn errors_are_answers(&self, args: &Args) -> bool {
        let _ = args;
        false
    }

    /// Whether a call draws from the node's RNG ([`CallCx::rng`] is then present).
    fn draws_rng(&self) -> bool {
        false
    }

    /// What a call with these arguments touches, for the policy to check before it runs. There
    /// is no default: a tool that touches nothing says so, as a tool that forgot would slip past
    /// `paths`, `commands` and `hosts`.
    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>>;

    /// Makes the call. Every failure is reported in [`Outcome::error`].
    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome;

    /// Checks of a call's `with:` that its keys' kinds do not express (a literal credential),
    /// run when a workflow is validated.
    fn check_with(&self, _with: &[(yaml::Node, yaml::Node)], _errors: &mut Vec<WorkflowError>) {}

    /// Keys that are not the tool's but that [`check_with`](Tool::check_with) reports itself
    /// (with a better message than "unknown key").
    fn refused_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Masks the credentials in a call's rendered arguments before they are recorded (and
    /// before a replay compares them), returning how many values it masked. The call itself
    /// gets the arguments unmasked. See docs/tools.md, "Credentials are not recorded".
    fn conceal(&self, _args: &mut Args) -> usize {
        0
    }
}

impl std::fmt::Debug for dyn Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tool").field(&self.spec().name).finish()
    }
}

/// Where a tool's calls run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A pure computation: run on the scheduler thread as soon as it is ready, with no
    /// hand-off to a worker.
    Inline,
    /// Waits on the world (processes, files, time): run by one of the `--jobs` workers.
    Worker,
    /// Waits on a network peer: run by the network lane (`--net-jobs`, the workflow's
    /// `network:`), so that slow servers do not hold the workers that run processes.
    Network,
}

/// What a call has besides its arguments.
pub struct CallCx<'a> {
    /// The node's RNG: present when the tool [draws from it](Tool::draws_rng) (or when the node
    /// retries, for the backoff).
    pub rng: Option<&'a mut ChaCha20Rng>,
    /// The node's `timeout`.
    pub timeout: Option<Duration>,
    /// The run's interrupts: a call that waits ends when it reports [`Cancel::killed`], and a
    /// call that starts processes registers their group with it.
    pub cancel: &'a Cancel,
    /// What a call that opens a file checks again as it opens it (`open.rs`).
    pub paths: &'a PathRules,
    /// The run's network access: every URL a call reaches is checked against `hosts` again
    /// (`net/`).
    pub net: &'a Net,
    /// Whether a program name means what kairos's own `PATH` finds, whatever `PATH` the call
    /// sets: so when a `commands` list applies (`docs/policy.md`, "Commands").
    pub own_path: bool,
    /// The run's MCP servers, started on first use and stopped when the run ends (`mcp/`).
    pub mcp: &'a Servers,
    /// Where an approved `shell` call runs when not on this machine (`docs/executors.md`);
    /// `None`: here.
    pub shell: Option<&'a dyn crate::exec::ShellBackend>,
    /// Which call attempt this is, for an executor that keeps files per attempt.
    pub attempt: crate::exec::AttemptId<'a>,
}

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
    /// The tools of the MCP server the call reached: the committer records them with the
    /// first call to that server it commits.
    pub listing: Option<Listing>,
    /// What a failed call says about trying it again; `None`: any failure may be retried, as
    /// the node's `retry:` says. Not recorded (the attempts and delays that follow from it are).
    pub retry: Option<RetryHint>,
}

/// An MCP server's `tools/list`, as the run first read it.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// The server's name (`mcp_servers:`), or the program of an inline argv.
    pub server: String,
    /// Every page's tools, in the order the server gave them.
    pub tools: Value,
}

/// Whether a failed call is worth another attempt, and the least wait before it (a server's
/// `Retry-After`). The node's `retry:` still decides whether there is another attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryHint {
    pub retryable: bool,
    /// The wait asked for, in milliseconds; the backoff is used when it is longer.
    pub after_ms: Option<u64>,
}

impl RetryHint {
    /// Trying again would fail the same way (a refused request, a bad argument).
    pub const NEVER: RetryHint = RetryHint {
        retryable: false,
        after_ms: None,
    };
    /// Worth another attempt after the usual backoff.
    pub const AFTER_BACKOFF: RetryHint = RetryHint {
        retryable: true,
        after_ms: None,
    };
}

impl Outcome {
    /// A call that produced `output`.
    pub fn value(output: Value) -> Self {
        Outcome {
            output,
            ..Outcome::default()
        }
    }

    /// A call that failed.
    pub fn failed(reason: impl Into<String>) -> Self {
        Outcome {
            error: Some(reason.into()),
            ..Outcome::default()
        }
    }
}

/// The error of a call that an interrupt cut short ([`Outcome::interrupted`]).
const INTERRUPTED: &str = "interrupted";

impl Outcome {
    /// A call that an interrupt cut short (a `sleep` ended by Ctrl-C). The engine does not
    /// commit it: the call runs again when the run is resumed.
    pub fn interrupted() -> Self {
        Outcome::failed(INTERRUPTED)
    }

    /// Whether this is [`Outcome::interrupted`].
    pub fn is_interrupted(&self) -> bool {
        self.error.as_deref() == Some(INTERRUPTED) && self.exit_code.is_none()
    }
}

impl From<Result<Value, String>> for Outcome {
    fn from(result: Result<Value, String>) -> Self {
        match result {
            Ok(output) => Outcome::value(output),
            Err(reason) => Outcome::failed(reason),
        }
    }
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
    /// A command line for `sh -c`: a template whose interpolated values are shell-quoted.
    ShellLine,
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

pub(crate) const fn key(
    name: &'static str,
    kind: KeyKind,
    required: bool,
    doc: &'static str,
) -> KeySpec {
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
    /// The `with:` keys. A tool without keys has no call to tell apart from another: its
    /// `Start` records no input, and a success records no `ToolOutput` (a replay gives back a
    /// null output), so such a tool must succeed with [`Outcome::default`].
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

/// A rendered argument as text: strings as they are, nothing as empty, other values as JSON.
pub(crate) fn text(args: &Args, key: &str) -> String {
    match args.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A rendered argument that is a string.
pub(crate) fn str_arg<'a>(args: &'a Args, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

/// An item of a list argument as a word: strings as they are, other values as JSON.
pub(crate) fn word(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Calling a tool in a unit test.

    use super::{Args, CallCx, Outcome, Tool};
    use crate::cancel::Cancel;
    use crate::net::Net;
    use crate::policy::paths::PathRules;
    use serde_json::Value;

    /// Arguments from a JSON object.
    pub fn args(value: Value) -> Args {
        match value {
            Value::Object(map) => map,
            other => panic!("arguments are an object, not {other}"),
        }
    }

    /// Calls `tool` without an RNG, a timeout, an interrupt or path rules.
    pub fn call(tool: &dyn Tool, args: &Args) -> Outcome {
        call_with_paths(tool, args, &PathRules::none())
    }

    /// Calls `tool` under these path rules.
    pub fn call_with_paths(tool: &dyn Tool, args: &Args, paths: &PathRules) -> Outcome {
        tool.call(
            args,
            &mut CallCx {
                rng: None,
                timeout: None,
                cancel: &Cancel::default(),
                paths,
                net: &Net::default(),
                own_path: false,
                mcp: &crate::mcp::Servers::default(),
                shell: None,
                attempt: crate::exec::AttemptId::default(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{args, call};
    use super::*;
    use serde_json::json;

    #[test]
    fn every_tool_has_a_unique_name_and_is_found_by_it() {
        let mut seen = std::collections::HashSet::new();
        for tool in TOOLS {
            let name = tool.spec().name;
            assert!(seen.insert(name), "`{name}` is listed twice");
            assert!(
                std::ptr::addr_eq(find(name).unwrap(), *tool),
                "`{name}` finds another tool"
            );
        }
        assert_eq!(names().count(), TOOLS.len());
        assert!(find("nope").is_none());
    }

    #[test]
    fn keys_are_unique_and_groups_name_keys() {
        for tool in TOOLS {
            let spec = tool.spec();
            let mut seen = std::collections::HashSet::new();
            for key in spec.keys {
                assert!(seen.insert(key.name), "{}: `{}` twice", spec.name, key.name);
            }
            for key in spec.one_of.iter().flat_map(|g| g.iter()) {
                assert!(spec.key(key).is_some(), "{}: no key `{key}`", spec.name);
            }
        }
    }

    /// What a tool says a call touches must cover what its capabilities allow, or the policy's
    /// `paths`, `commands` and `hosts` would not see the call. Every tool declares its
    /// resources whatever the arguments, so empty ones are enough to see them.
    #[test]
    fn capabilities_come_with_the_resources_the_policy_checks() {
        for tool in TOOLS {
            let spec = tool.spec();
            let none = Args::new();
            let resources = tool.resources(&none);
            let has = |f: fn(&Resource<'_>) -> bool| resources.iter().any(f);
            for cap in spec.capabilities {
                let covered = match cap {
                    Capability::FsRead => has(|r| matches!(r, Resource::Read(_))),
                    Capability::FsWrite => has(|r| matches!(r, Resource::Write(_))),
                    Capability::Subprocess => has(|r| matches!(r, Resource::Programs(_))),
                    Capability::Net | Capability::Llm => has(|r| matches!(r, Resource::Url(_))),
                    Capability::Memory | Capability::ExternalApi | Capability::CodeExec => true,
                };
                assert!(
                    covered,
                    "`{}` needs {cap} but declares {resources:?}",
                    spec.name
                );
            }
            if spec.capabilities.is_empty() {
                assert!(
                    resources.is_empty(),
                    "`{}` touches {resources:?}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn tools_without_keys_succeed_with_nothing_to_record() {
        for tool in TOOLS.iter().filter(|t| t.spec().keys.is_empty()) {
            assert_eq!(call(*tool, &Args::new()), Outcome::default(), "{tool:?}");
        }
    }

    #[test]
    fn placements() {
        let placed = |p: Placement| -> Vec<&str> {
            TOOLS
                .iter()
                .filter(|t| t.placement() == p)
                .map(|t| t.spec().name)
                .collect()
        };
        assert_eq!(
            placed(Placement::Inline),
            ["noop", "echo", "template", "random", "assert"]
        );
        assert_eq!(
            placed(Placement::Worker),
            ["sleep", "shell", "file.read", "file.write"]
        );
        assert_eq!(placed(Placement::Network), ["http", "llm", "mcp"]);
        let drawing: Vec<&str> = TOOLS
            .iter()
            .filter(|t| t.draws_rng())
            .map(|t| t.spec().name)
            .collect();
        assert_eq!(drawing, ["random"]);
    }

    #[test]
    fn only_the_shell_line_is_shell_quoted() {
        let lines: Vec<(&str, &str)> = TOOLS
            .iter()
            .flat_map(|t| t.spec().keys.iter().map(move |k| (t.spec().name, k)))
            .filter(|(_, k)| k.kind == KeyKind::ShellLine)
            .map(|(t, k)| (t, k.name))
            .collect();
        assert_eq!(lines, [("shell", "run")]);
    }

    /// A tool defined outside [`TOOLS`] works through the same trait object, so a test can
    /// stand one in for a real tool.
    #[test]
    fn a_tool_can_be_defined_elsewhere() {
        struct Fake;
        static FAKE: ToolSpec = ToolSpec {
            name: "fake",
            summary: "answers from a script",
            keys: &[key("url", KeyKind::Template, true, "where it would go")],
            one_of: &[],
            capabilities: &[Capability::Net],
        };
        impl Tool for Fake {
            fn spec(&self) -> &'static ToolSpec {
                &FAKE
            }
            fn placement(&self) -> Placement {
                Placement::Inline
            }
            fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
                vec![Resource::Url(str_arg(args, "url").unwrap_or_default())]
            }
            fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
                Outcome::value(json!({ "fetched": text(args, "url") }))
            }
        }
        let tool: &'static dyn Tool = &Fake;
        let with = args(json!({ "url": "https://example.com/" }));
        assert_eq!(
            tool.resources(&with),
            [Resource::Url("https://example.com/")]
        );
        assert_eq!(
            call(tool, &with).output,
            json!({ "fetched": "https://example.com/" })
        );
        assert_eq!(format!("{tool:?}"), "Tool(\"fake\")");
    }
}
