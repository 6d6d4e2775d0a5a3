//! Capability policies: what a workflow's tools may do.
//!
//! This module holds the policy vocabulary (capabilities, the resources a call touches,
//! presets, enforcement), the policy block as read from YAML ([`PolicySpec`], shared by
//! workflow files and `--policy` organisation files) and the static checks on it (names,
//! regexes, globs). It knows nothing of particular tools: a tool declares its capabilities and,
//! for each call, its [`Resource`]s, and the policy judges those.

pub mod effective;
pub mod hosts;
pub mod paths;
pub mod redact;

use crate::syntax::diag::{WorkflowError, did_you_mean, ss};
use crate::syntax::read::{self, Errors, Fields, Sp};
use crate::syntax::yaml::{Node, Value};
use std::fmt;

/// Something a tool can do to the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Net,
    FsRead,
    FsWrite,
    Subprocess,
    Llm,
    Memory,
    ExternalApi,
    CodeExec,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::Net,
        Capability::FsRead,
        Capability::FsWrite,
        Capability::Subprocess,
        Capability::Llm,
        Capability::Memory,
        Capability::ExternalApi,
        Capability::CodeExec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::Net => "net",
            Capability::FsRead => "fs_read",
            Capability::FsWrite => "fs_write",
            Capability::Subprocess => "subprocess",
            Capability::Llm => "llm",
            Capability::Memory => "memory",
            Capability::ExternalApi => "external_api",
            Capability::CodeExec => "code_exec",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something one call touches in the world, as the call's rendered arguments say. A tool
/// declares these before it runs and the policy checks each one (`paths`, `commands`, `hosts`),
/// so no check depends on which tool asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A file read.
    Read(&'a str),
    /// A file written.
    Write(&'a str),
    /// The programs a call starts; `Err(why)` when they cannot be known before it runs (a line
    /// outside what kairos analyses: command substitution, subshells, `eval`, ...).
    Programs(Result<Vec<String>, String>),
    /// A URL the call reaches; its host is what is checked.
    Url(&'a str),
}

/// A set of capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapSet(u8);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);
    pub const ALL: CapSet = CapSet(u8::MAX);

    pub fn of(caps: &[Capability]) -> Self {
        caps.iter().fold(Self::EMPTY, |s, &c| s.with(c))
    }
    #[must_use]
    pub const fn with(self, c: Capability) -> Self {
        CapSet(self.0 | c.bit())
    }
    #[must_use]
    pub const fn without(self, c: Capability) -> Self {
        CapSet(self.0 & !c.bit())
    }
    pub const fn contains(self, c: Capability) -> bool {
        self.0 & c.bit() != 0
    }
    #[must_use]
    pub const fn union(self, other: CapSet) -> Self {
        CapSet(self.0 | other.0)
    }
    #[must_use]
    pub const fn intersect(self, other: CapSet) -> Self {
        CapSet(self.0 & other.0)
    }
    pub fn is_empty(self) -> bool {
        self.iter().next().is_none()
    }
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |&c| self.contains(c))
    }
}

impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<_> = self.iter().map(Capability::name).collect();
        f.write_str(&names.join(", "))
    }
}

/// Named starting points for a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Permissive,
    Restrictive,
    NoNetwork,
    ReadOnly,
}

impl Preset {
    pub const ALL: [Preset; 4] = [
        Preset::Permissive,
        Preset::Restrictive,
        Preset::NoNetwork,
        Preset::ReadOnly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Permissive => "permissive",
            Preset::Restrictive => "restrictive",
            Preset::NoNetwork => "no_network",
            Preset::ReadOnly => "read_only",
        }
    }

    pub fn capabilities(self) -> CapSet {
        use Capability::*;
        match self {
            Preset::Permissive => CapSet::ALL,
            Preset::Restrictive => CapSet::EMPTY,
            Preset::NoNetwork => CapSet::ALL.without(Net).without(ExternalApi),
            Preset::ReadOnly => CapSet::of(&[FsRead, Memory, Llm]),
        }
    }
}

/// What happens to a denied call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Enforcement {
    /// A denied call fails its node.
    #[default]
    Enforce,
    /// A denied call is recorded and proceeds.
    Audit,
}

/// A policy block as written (workflow `policy:`, node `policy:`, or an organisation file).
#[derive(Clone, Debug, Default)]
pub struct PolicySpec {
    pub preset: Option<Sp<Preset>>,
    pub allow: Vec<Sp<Capability>>,
    pub deny: Vec<Sp<Capability>>,
    /// Per tool name or node id.
    pub max_calls: Vec<(Sp<String>, Sp<u64>)>,
    pub redact: Vec<Sp<String>>,
    pub secrets: Vec<Sp<String>>,
    pub paths_read: Vec<Sp<String>>,
    pub paths_write: Vec<Sp<String>>,
    pub hosts: Vec<Sp<String>>,
    pub commands: Vec<Sp<String>>,
    pub require_approval: Vec<Sp<Capability>>,
    pub approvers: Vec<Sp<String>>,
    pub enforcement: Option<Sp<Enforcement>>,
    /// `budget`: what the run's model calls may spend (docs/llm.md, "Budgets").
    pub budget: Budget,
}

/// `budget: { tokens, llm_calls }`; each absent when not given.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    pub tokens: Option<Sp<u64>>,
    pub llm_calls: Option<Sp<u64>>,
}

impl Budget {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_none() && self.llm_calls.is_none()
    }

    /// As recorded in the policy: only the limits given.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if let Some(t) = &self.tokens {
            m.insert("tokens".into(), t.value.into());
        }
        if let Some(c) = &self.llm_calls {
            m.insert("llm_calls".into(), c.value.into());
        }
        serde_json::Value::Object(m)
    }
}

pub const POLICY_KEYS: &[&str] = &[
    "preset",
    "allow",
    "deny",
    "max_calls",
    "redact",
    "secrets",
    "paths",
    "hosts",
    "commands",
    "require_approval",
    "approvers",
    "enforcement",
    "budget",
];

impl PolicySpec {
    /// `set` with this block's `require_approval` added (they add up across blocks).
    pub fn requiring(&self, set: CapSet) -> CapSet {
        self.require_approval
            .iter()
            .fold(set, |set, cap| set.with(cap.value))
    }

    /// The capabilities this block grants on its own: the preset (`restrictive` when absent),
    /// plus `allow`, minus `deny`.
    pub fn granted(&self) -> CapSet {
        let base = self
            .preset
            .as_ref()
            .map_or(CapSet::EMPTY, |p| p.value.capabilities());
        let allowed = self.allow.iter().fold(base, |s, c| s.with(c.value));
        self.deny.iter().fold(allowed, |s, c| s.without(c.value))
    }

    /// The policy as recorded in the ledger: what was declared, and the capabilities granted.
    pub fn to_json(&self) -> serde_json::Value {
        let strs = |v: &[Sp<String>]| v.iter().map(|s| s.value.clone()).collect::<Vec<_>>();
        let caps = |v: &[Sp<Capability>]| v.iter().map(|c| c.name()).collect::<Vec<_>>();
        let limits: serde_json::Map<String, serde_json::Value> = self
            .max_calls
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.into()))
            .collect();
        let mut json = serde_json::json!({
            "preset": self.preset.as_ref().map_or("restrictive", |p| p.name()),
            "allow": caps(&self.allow),
            "deny": caps(&self.deny),
            "granted": self.granted().iter().map(Capability::name).collect::<Vec<_>>(),
            "max_calls": limits,
            "redact": strs(&self.redact),
            "secrets": strs(&self.secrets),
            "paths": { "read": strs(&self.paths_read), "write": strs(&self.paths_write) },
            "hosts": strs(&self.hosts),
            "commands": strs(&self.commands),
            "require_approval": caps(&self.require_approval),
            "approvers": strs(&self.approvers),
            "enforcement": match self.enforcement.as_ref().map(|e| e.value) {
                Some(Enforcement::Audit) => "audit",
                _ => "enforce",
            },
        });
        // Only when given: the policies of runs without one are recorded as before.
        if !self.budget.is_empty() {
            json["budget"] = self.budget.to_json();
        }
        json
    }

    /// Reads and checks a policy mapping.
    pub fn read(node: &Node, errors: &mut Errors) -> PolicySpec {
        let mut spec = PolicySpec::default();
        let Some(f) = Fields::new(node, "policy", POLICY_KEYS, errors) else {
            return spec;
        };
        if let Some(n) = f.get("preset") {
            spec.preset = preset(n, errors);
        }
        for (key, slot) in [
            ("allow", &mut spec.allow),
            ("deny", &mut spec.deny),
            ("require_approval", &mut spec.require_approval),
        ] {
            if let Some(n) = f.get(key) {
                *slot = capabilities(n, errors);
            }
        }
        if let Some(n) = f.get("max_calls") {
            spec.max_calls = max_calls(n, errors);
        }
        if let Some(n) = f.get("redact") {
            spec.redact = redact_patterns(n, errors);
        }
        if let Some(n) = f.get("secrets") {
            spec.secrets = secret_names(n, errors);
        }
        if let Some(n) = f.get("paths")
            && let Some(paths) = Fields::new(n, "paths", &["read", "write"], errors)
        {
            for (key, slot) in [
                ("read", &mut spec.paths_read),
                ("write", &mut spec.paths_write),
            ] {
                if let Some(n) = paths.get(key) {
                    *slot = path_globs(n, errors);
                }
            }
        }
        if let Some(n) = f.get("hosts") {
            spec.hosts = host_globs(n, errors);
        }
        if let Some(n) = f.get("commands") {
            spec.commands = read::string_list(n, errors);
        }
        if let Some(n) = f.get("approvers") {
            spec.approvers = read::string_list(n, errors);
        }
        if let Some(n) = f.get("enforcement") {
            spec.enforcement = enforcement(n, errors);
        }
        if let Some(n) = f.get("budget")
            && let Some(b) = Fields::new(n, "budget", &["tokens", "llm_calls"], errors)
        {
            spec.budget.tokens = b.get("tokens").and_then(|n| read::non_negative(n, errors));
            spec.budget.llm_calls = b
                .get("llm_calls")
                .and_then(|n| read::non_negative(n, errors));
        }
        spec
    }
}

/// Reads `preset`: one of the preset names.
fn preset(n: &Node, errors: &mut Errors) -> Option<Sp<Preset>> {
    read::string(n, errors).and_then(|s| {
        let found = Preset::ALL.into_iter().find(|p| p.name() == s.value);
        if found.is_none() {
            errors.push(WorkflowError::UnknownPreset {
                help: did_you_mean(&s, Preset::ALL.map(Preset::name)).or_else(|| {
                    Some(format!(
                        "presets: {}",
                        Preset::ALL.map(Preset::name).join(", ")
                    ))
                }),
                name: s.value.clone(),
                span: ss(s.span),
            });
        }
        found.map(|p| Sp::new(p, s.span))
    })
}

/// Reads `max_calls`: a mapping of tool names or node ids to limits.
fn max_calls(n: &Node, errors: &mut Errors) -> Vec<(Sp<String>, Sp<u64>)> {
    let mut limits = Vec::new();
    if let Value::Map(entries) = &n.value {
        for (k, v) in entries {
            if let (Some(k), Some(v)) =
                (read::scalar_text(k, errors), read::non_negative(v, errors))
            {
                limits.push((k, v));
            }
        }
    } else {
        errors.push(read::wrong_type(
            n,
            "a mapping of tool names or node ids to limits",
        ));
    }
    limits
}

/// Reads `redact`: a list of regexes, each of which must compile.
fn redact_patterns(n: &Node, errors: &mut Errors) -> Vec<Sp<String>> {
    let patterns = read::string_list(n, errors);
    for pattern in &patterns {
        if let Err(e) = regex::Regex::new(pattern) {
            errors.push(WorkflowError::InvalidRegex {
                message: first_line(&e.to_string()),
                span: ss(pattern.span),
            });
        }
    }
    patterns
}

/// Whether `s` is an environment variable name a workflow may name for kairos to pass on
/// or to read a key from: letters, digits and `_`, not starting with a digit.
pub fn is_variable_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Reads `secrets`: a list of environment variable names.
fn secret_names(n: &Node, errors: &mut Errors) -> Vec<Sp<String>> {
    let secrets = read::string_list(n, errors);
    for s in &secrets {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            errors.push(WorkflowError::InvalidValue {
                message: format!("`{}` is not an environment variable name", s.value),
                span: ss(s.span),
                label: "not a variable name".into(),
                help: Some(
                    "`secrets` lists names of environment variables, such as OPENAI_API_KEY".into(),
                ),
            });
        }
    }
    secrets
}

/// Reads `paths.read` or `paths.write`: a list of path globs, each of which must compile.
fn path_globs(n: &Node, errors: &mut Errors) -> Vec<Sp<String>> {
    let globs = read::string_list(n, errors);
    for glob in &globs {
        if let Err(message) = check_glob(glob, true) {
            errors.push(invalid_glob(glob, message));
        }
    }
    globs
}

/// Reads `hosts`: a list of host globs, each of which must compile.
fn host_globs(n: &Node, errors: &mut Errors) -> Vec<Sp<String>> {
    let hosts = read::string_list(n, errors);
    for h in &hosts {
        if let Err(message) = check_glob(h, false) {
            errors.push(invalid_glob(h, message));
        }
    }
    hosts
}

fn invalid_glob(glob: &Sp<String>, message: String) -> WorkflowError {
    // The glob may be megabytes long; the label shows where it is, the message its start.
    const SHOWN: usize = 60;
    let shown = match glob.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &glob[..cut]),
        None => glob.value.clone(),
    };
    WorkflowError::InvalidGlob {
        glob: shown,
        message,
        span: ss(glob.span),
    }
}

/// The longest `paths`/`hosts` glob, in bytes (`docs/policy.md`, Glob limits).
pub const MAX_GLOB_BYTES: usize = 4096;
/// The deepest nesting of `{a,b}` alternatives in a glob.
pub const MAX_GLOB_NESTING: usize = 8;
/// The most special characters (`*`, `?`, `[`, `{`) in one glob.
pub const MAX_GLOB_WILDCARDS: usize = 256;

/// Whether a glob is one globset can take: within the limits above, checked by a plain scan
/// before globset sees it (its parser recurses on `{`, so a deep glob would overflow the stack,
/// and a glob with too many wildcards becomes a regex that does not compile, which globset
/// reports by panicking), and then accepted by globset's parser.
fn check_glob(glob: &str, literal_separator: bool) -> Result<(), String> {
    if glob.len() > MAX_GLOB_BYTES {
        return Err(format!(
            "longer than {MAX_GLOB_BYTES} bytes ({} bytes)",
            glob.len()
        ));
    }
    let (mut depth, mut deepest, mut wildcards) = (0usize, 0usize, 0usize);
    let mut bytes = glob.bytes();
    while let Some(b) = bytes.next() {
        match b {
            // An escaped character is literal; counting `{` inside `[...]` too only errs on
            // the side of refusing.
            b'\\' => {
                bytes.next();
            }
            b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                wildcards += 1;
            }
            b'}' => depth = depth.saturating_sub(1),
            b'*' | b'?' | b'[' => wildcards += 1,
            _ => {}
        }
    }
    if deepest > MAX_GLOB_NESTING {
        return Err(format!(
            "`{{...}}` nested {deepest} deep; at most {MAX_GLOB_NESTING} levels are allowed"
        ));
    }
    if wildcards > MAX_GLOB_WILDCARDS {
        return Err(format!(
            "{wildcards} wildcards (`*`, `?`, `[`, `{{`); at most {MAX_GLOB_WILDCARDS} are allowed"
        ));
    }
    globset::GlobBuilder::new(glob)
        .literal_separator(literal_separator)
        .build()
        .map(drop)
        .map_err(|e| e.kind().to_string())
}

/// The matcher of a `paths` glob, relative to `cwd` unless absolute (a leading `./` is
/// optional), for matching resolved absolute paths. `None` for a glob validation refuses.
///
/// The directory is escaped: its name is literal text, whatever characters it holds.
pub fn path_matcher(glob: &str, cwd: &std::path::Path) -> Option<globset::GlobMatcher> {
    check_glob(glob, true).ok()?;
    let pattern = glob.strip_prefix("./").unwrap_or(glob);
    let full = if std::path::Path::new(pattern).is_absolute() {
        pattern.to_string()
    } else {
        format!("{}/{pattern}", globset::escape(&cwd.to_string_lossy()))
    };
    globset::GlobBuilder::new(&full)
        .literal_separator(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// The matcher of a `hosts` glob; `None` for a glob validation refuses.
pub fn host_matcher(glob: &str) -> Option<globset::GlobMatcher> {
    check_glob(glob, false).ok()?;
    globset::Glob::new(glob).ok().map(|g| g.compile_matcher())
}

/// Reads `enforcement`: `enforce` or `audit`.
fn enforcement(n: &Node, errors: &mut Errors) -> Option<Sp<Enforcement>> {
    read::string(n, errors).and_then(|s| {
        let e = match s.as_str() {
            "enforce" => Some(Enforcement::Enforce),
            "audit" => Some(Enforcement::Audit),
            _ => None,
        };
        if e.is_none() {
            errors.push(WorkflowError::InvalidValue {
                message: format!("unknown enforcement `{}`", s.value),
                span: ss(s.span),
                label: "expected `enforce` or `audit`".into(),
                help: did_you_mean(&s, ["enforce", "audit"]),
            });
        }
        e.map(|e| Sp::new(e, s.span))
    })
}

fn capabilities(node: &Node, errors: &mut Errors) -> Vec<Sp<Capability>> {
    if !matches!(node.value, Value::Seq(_)) {
        errors.push(read::wrong_type(node, "a list of capabilities"));
        return Vec::new();
    }
    read::string_list(node, errors)
        .into_iter()
        .filter_map(|s| match Capability::from_name(&s) {
            Some(c) => Some(Sp::new(c, s.span)),
            None => {
                errors.push(WorkflowError::UnknownCapability {
                    help: did_you_mean(&s, Capability::ALL.map(Capability::name)).or_else(|| {
                        Some(format!(
                            "capabilities: {}",
                            Capability::ALL.map(Capability::name).join(", ")
                        ))
                    }),
                    name: s.value,
                    span: ss(s.span),
                });
                None
            }
        })
        .collect()
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// Reads an organisation policy file (`--policy ORG.yaml`): one policy mapping, which may
/// also say how its cluster is used (`executor:`, docs/executors.md). Gives the policy, the
/// executor settings and the file's text.
pub fn load_file(
    path: &std::path::Path,
) -> Result<(PolicySpec, crate::exec::ExecutorSpec, String), crate::syntax::LoadError> {
    use crate::syntax::{Diagnostics, LoadError};
    let name = path.display().to_string();
    let source = crate::syntax::read_text(path)?;
    let mut errors = Vec::new();
    let (spec, executor) = match crate::syntax::yaml::parse(&source) {
        Ok(root) => {
            read::check_duplicate_keys(&root, &mut errors);
            let (policy, executor) = split_executor(root);
            let executor = executor
                .map(|e| crate::exec::ExecutorSpec::read(&e, &mut errors))
                .unwrap_or_default();
            (PolicySpec::read(&policy, &mut errors), executor)
        }
        Err(e) => {
            errors.push(WorkflowError::Syntax {
                message: e.message,
                span: ss(e.span),
            });
            Default::default()
        }
    };
    if errors.is_empty() {
        Ok((spec, executor, source))
    } else {
        Err(LoadError::Invalid(Diagnostics {
            source: std::sync::Arc::new(miette::NamedSource::new(name, source)),
            errors,
        }))
    }
}

/// A policy file's mapping without its `executor:` entry, and that entry.
pub(crate) fn split_executor(
    mut root: crate::syntax::yaml::Node,
) -> (crate::syntax::yaml::Node, Option<crate::syntax::yaml::Node>) {
    let mut executor = None;
    if let crate::syntax::yaml::Value::Map(entries) = &mut root.value
        && let Some(at) = entries.iter().position(|(k, _)| k.key_text() == "executor")
    {
        let mut kept = std::mem::take(entries).into_vec();
        executor = Some(kept.remove(at).1);
        *entries = kept.into_boxed_slice();
    }
    (root, executor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_spec() {
        use Capability::*;
        assert_eq!(Preset::Permissive.capabilities(), CapSet::ALL);
        assert!(Preset::Restrictive.capabilities().is_empty());
        let nn = Preset::NoNetwork.capabilities();
        assert!(!nn.contains(Net) && !nn.contains(ExternalApi) && nn.contains(Subprocess));
        assert_eq!(
            Preset::ReadOnly.capabilities(),
            CapSet::of(&[FsRead, Memory, Llm])
        );
    }

    #[test]
    fn deny_wins_over_allow() {
        let node =
            crate::syntax::yaml::parse("preset: read_only\nallow: [net]\ndeny: [net, llm]\n")
                .unwrap();
        let mut errors = Vec::new();
        let spec = PolicySpec::read(&node, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(
            spec.granted(),
            CapSet::of(&[Capability::FsRead, Capability::Memory])
        );
    }

    #[test]
    fn globs_beyond_the_limits_are_refused_before_globset_sees_them() {
        let deep = format!("{}a{}", "{".repeat(100_000), "}".repeat(100_000));
        let stars = "*".repeat(300_000);
        let nested = format!("{}a{}", "{".repeat(9), "}".repeat(9));
        let wild = "?".repeat(MAX_GLOB_WILDCARDS + 1);
        let long = "a".repeat(MAX_GLOB_BYTES + 1);
        for glob in [&deep, &stars, &nested, &wild, &long] {
            assert!(check_glob(glob, true).is_err(), "{}", &glob[..20]);
            assert!(path_matcher(glob, std::path::Path::new("/w")).is_none());
            assert!(host_matcher(glob).is_none());
        }
    }

    #[test]
    fn the_worst_glob_within_the_limits_compiles() {
        // Every limit reached at once, under a long working directory full of glob syntax:
        // what passes validation must compile (globset panics when it does not).
        let nest = MAX_GLOB_NESTING;
        let mut glob = format!("{}a{}", "{".repeat(nest), ",b}".repeat(nest));
        glob.push_str(&"*/**/?[a-z]".repeat((MAX_GLOB_WILDCARDS - nest) / 5));
        glob.push_str(&"x".repeat(MAX_GLOB_BYTES - glob.len()));
        assert_eq!(check_glob(&glob, true), Ok(()));
        let cwd = format!("/{}", "{*[?".repeat(1000));
        let m = path_matcher(&glob, std::path::Path::new(&cwd)).expect("compiles");
        assert!(!m.is_match("/elsewhere"));
        assert!(host_matcher(&glob).is_some());
        // The directory is literal: its `*` matches only itself.
        let m = path_matcher("f", std::path::Path::new("/a*")).expect("compiles");
        assert!(m.is_match("/a*/f") && !m.is_match("/ab/f"));
    }
}
