//! The effective policy of a run: the organisation policy (`--policy ORG.yaml`), the
//! workflow's `policy:` and a node's own `policy:`, each of which can only narrow the one around
//! it.
//!
//! Capabilities intersect. Constraints (`paths`, `hosts`, `commands`, `approvers`) are kept per
//! layer and a value must satisfy every layer that constrains it, so no layer can widen another.
//! `max_calls` takes the smallest limit; `redact`, `secrets` and `require_approval` add up;
//! `enforcement` is `audit` only if every layer says so.
//!
//! A layer's grant is its `preset`, plus `allow`, minus `deny` (deny wins). Without a preset, a
//! workflow starts from nothing (`restrictive`); an organisation policy or a node's policy starts
//! from what the layer around it grants, so `deny: [net]` alone narrows by `net`.

use super::hosts::HostRules;
use super::paths::{Access, PathRules};
use super::{CapSet, Capability, Enforcement, PolicySpec, Resource};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a policy layer comes from, for messages.
#[derive(Clone, Debug)]
pub struct Layer {
    /// "the organisation policy ORG.yaml", "the workflow policy", ...
    pub name: String,
    pub spec: PolicySpec,
    /// Line of each span's start, for "withheld by FILE:LINE" messages.
    pub file: String,
    pub source: std::sync::Arc<str>,
    /// Without a preset, start from everything (an organisation policy narrows what it does
    /// not list) rather than from nothing (a workflow grants only what it lists).
    pub narrows: bool,
}

/// The start of the name of a node's own layer.
const NODE_LAYER: &str = "the policy of node ";

/// What a run may do.
#[derive(Debug)]
pub struct Effective {
    pub layers: Vec<Layer>,
    pub granted: CapSet,
    pub enforcement: Enforcement,
    pub max_calls: BTreeMap<String, u64>,
    /// `budget.tokens` and `budget.llm_calls`: the smallest of the layers' (a node's policy
    /// has none; validation refuses one there).
    pub budget_tokens: Option<u64>,
    pub budget_llm_calls: Option<u64>,
    pub require_approval: CapSet,
    paths: PathRules,
    /// What a tool checks again when it opens a file: `paths` under `enforce`; nothing under
    /// `audit`, where a denial is recorded and the call goes ahead.
    opening: PathRules,
    hosts: HostRules,
    /// What the network layer checks again at each URL it reaches: `hosts` under `enforce`;
    /// nothing under `audit`.
    reaching: HostRules,
    commands: Vec<Vec<String>>,
    approvers: Vec<Vec<String>>,
    /// Environment variables whose values are secrets although no layer lists them: the keys
    /// of the workflow's `llm` calls (`api_key_env`; docs/llm.md). Not part of the recorded
    /// policy: they follow from the workflow, which is recorded.
    key_envs: Vec<String>,
    /// `redact` patterns of called workflows (`with_nested_redaction`).
    nested_patterns: Vec<String>,
}

/// Why a policy check denied a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    CapabilityNotGranted,
    PathNotPermitted,
    HostNotPermitted,
    CommandNotPermitted,
    CallLimitExceeded,
}

impl Reason {
    /// The code the ledger records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::CapabilityNotGranted => "CAPABILITY_NOT_GRANTED",
            Reason::PathNotPermitted => "PATH_NOT_PERMITTED",
            Reason::HostNotPermitted => "HOST_NOT_PERMITTED",
            Reason::CommandNotPermitted => "COMMAND_NOT_PERMITTED",
            Reason::CallLimitExceeded => "CALL_LIMIT_EXCEEDED",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason codes as text, for the places that record them without a [`Denial`].
pub mod codes {
    use super::Reason;

    pub const CAPABILITY_NOT_GRANTED: &str = Reason::CapabilityNotGranted.as_str();
    pub const PATH_NOT_PERMITTED: &str = Reason::PathNotPermitted.as_str();
    pub const HOST_NOT_PERMITTED: &str = Reason::HostNotPermitted.as_str();
    pub const COMMAND_NOT_PERMITTED: &str = Reason::CommandNotPermitted.as_str();
    pub const CALL_LIMIT_EXCEEDED: &str = Reason::CallLimitExceeded.as_str();
    /// A model call past the policy's `budget` (docs/llm.md, "Budgets").
    pub const BUDGET_EXCEEDED: &str = "BUDGET_EXCEEDED";
}

/// A kind of check made on a call; a call's `PolicyAllow` lists the ones it passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Capability,
    Path,
    Command,
    Host,
    MaxCalls,
}

impl Check {
    /// The name the ledger records.
    pub const fn name(self) -> &'static str {
        match self {
            Check::Capability => "capability",
            Check::Path => "path",
            Check::Command => "command",
            Check::Host => "host",
            Check::MaxCalls => "max_calls",
        }
    }
}

/// A denied check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub reason: Reason,
    pub detail: String,
}

fn grant(spec: &PolicySpec, base: CapSet) -> CapSet {
    let start = spec
        .preset
        .as_ref()
        .map_or(base, |p| p.value.capabilities());
    let allowed = spec.allow.iter().fold(start, |s, c| s.with(c.value));
    spec.deny.iter().fold(allowed, |s, c| s.without(c.value))
}

impl Effective {
    /// Combines the layers, outermost first (organisation, then workflow).
    pub fn new(layers: Vec<Layer>) -> Self {
        let cwd = std::env::current_dir()
            .ok()
            .and_then(|d| d.canonicalize().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut granted = CapSet::ALL;
        let mut enforcement = Enforcement::Audit;
        let mut max_calls: BTreeMap<String, u64> = BTreeMap::new();
        let (mut budget_tokens, mut budget_llm_calls) = (None::<u64>, None::<u64>);
        let mut require_approval = CapSet::EMPTY;
        let (mut hosts, mut commands) = (Vec::new(), Vec::new());
        let mut approvers: Vec<Vec<String>> = Vec::new();
        for layer in &layers {
            let spec = &layer.spec;
            let base = if layer.narrows {
                CapSet::ALL
            } else {
                CapSet::EMPTY
            };
            granted = granted.intersect(grant(spec, base));
            if spec
                .enforcement
                .as_ref()
                .is_none_or(|e| e.value == Enforcement::Enforce)
            {
                enforcement = Enforcement::Enforce;
            }
            for (key, limit) in &spec.max_calls {
                let slot = max_calls.entry(key.value.clone()).or_insert(limit.value);
                *slot = (*slot).min(limit.value);
            }
            let min = |a: Option<u64>, b: Option<&crate::syntax::read::Sp<u64>>| match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b.value)),
                (a, b) => a.or(b.map(|b| b.value)),
            };
            budget_tokens = min(budget_tokens, spec.budget.tokens.as_ref());
            budget_llm_calls = min(budget_llm_calls, spec.budget.llm_calls.as_ref());
            require_approval = spec.requiring(require_approval);
            if !spec.hosts.is_empty() {
                hosts.push(
                    spec.hosts
                        .iter()
                        .filter_map(|h| super::host_matcher(&h.value))
                        .collect(),
                );
            }
            if !spec.commands.is_empty() {
                commands.push(spec.commands.iter().map(|c| c.value.clone()).collect());
            }
            if !spec.approvers.is_empty() {
                approvers.push(spec.approvers.iter().map(|c| c.value.clone()).collect());
            }
        }
        let paths = PathRules::new(
            layers
                .iter()
                .map(|l| (&l.spec.paths_read[..], &l.spec.paths_write[..])),
            &cwd,
        );
        let hosts = HostRules::new(hosts);
        let (opening, reaching) = match enforcement {
            Enforcement::Enforce => (paths.clone(), hosts.clone()),
            Enforcement::Audit => (PathRules::none(), HostRules::none()),
        };
        Self {
            layers,
            granted,
            enforcement,
            max_calls,
            budget_tokens,
            budget_llm_calls,
            require_approval,
            paths,
            opening,
            hosts,
            reaching,
            commands,
            approvers,
            key_envs: Vec::new(),
            nested_patterns: Vec::new(),
        }
    }

    /// Whether `layer` is a node's own policy ([`Effective::narrowed_by`]).
    pub fn is_node_layer(layer: &Layer) -> bool {
        layer.name.starts_with(NODE_LAYER)
    }

    /// This policy narrowed by a node's own `policy:` (`spec`, of the node named `node`): one
    /// more layer, which can only take away. A node cannot set `enforcement` (validation
    /// refuses it), so its layer keeps the run's rather than counting as `enforce`.
    pub fn narrowed_by(&self, node: &str, spec: &PolicySpec) -> Effective {
        let mut layers = self.layers.clone();
        let (file, source) = layers
            .last()
            .map(|l| (l.file.clone(), std::sync::Arc::clone(&l.source)))
            .unwrap_or_default();
        let mut spec = spec.clone();
        spec.enforcement = Some(crate::syntax::read::Sp::new(
            self.enforcement,
            Default::default(),
        ));
        layers.push(Layer {
            name: format!("{NODE_LAYER}`{node}`"),
            spec,
            file,
            source,
            narrows: true,
        });
        Effective::new(layers)
    }

    /// This policy, with the values of `names` masked as its `secrets` are.
    pub fn with_key_envs(mut self, names: Vec<String>) -> Self {
        self.key_envs = names;
        self
    }

    /// Adds redaction the run needs besides its layers': the `redact` patterns and `secrets`
    /// of called workflows, whose policies narrow the caller's only where their calls run but
    /// whose secrets are the run's to mask wherever they appear.
    pub fn with_nested_redaction(mut self, patterns: Vec<String>, secrets: Vec<String>) -> Self {
        self.nested_patterns = patterns;
        self.key_envs.extend(secrets);
        self
    }

    /// What a node may use: the run's grant, narrowed by the node's own policy.
    pub fn granted_for(&self, node: Option<&PolicySpec>) -> CapSet {
        match node {
            Some(spec) => self.granted.intersect(grant(spec, self.granted)),
            None => self.granted,
        }
    }

    /// Why `cap` is not granted to a node: the layer (and line) that withholds it. With
    /// `files`, lines are given as FILE:LINE (for diagnostics); without, as "line N" (for the
    /// ledger, which must not depend on paths).
    pub fn withheld_by(&self, cap: Capability, node: Option<&PolicySpec>, files: bool) -> String {
        if let Some(spec) = node
            && !grant(spec, self.granted).contains(cap)
        {
            return format!(
                "the node's own policy withholds `{cap}`{}",
                deny_site(spec, cap, None)
            );
        }
        for layer in &self.layers {
            let base = if layer.narrows {
                CapSet::ALL
            } else {
                CapSet::EMPTY
            };
            if !grant(&layer.spec, base).contains(cap) {
                let place = files.then_some(layer.file.as_str());
                let site = deny_site(&layer.spec, cap, Some((&layer.source, place)));
                let name = if files && layer.narrows && !Self::is_node_layer(layer) {
                    format!("{} {}", layer.name, layer.file)
                } else {
                    layer.name.clone()
                };
                return format!("{name} withholds `{cap}`{site}");
            }
        }
        format!("`{cap}` is not granted")
    }

    /// Checks who decides an approval against `approvers` of every layer.
    pub fn check_approver(&self, approver: Option<&str>) -> Result<(), String> {
        if self.approvers.is_empty() {
            return Ok(());
        }
        let Some(name) = approver else {
            return Err("the policy lists who may approve: give `--approver NAME`".into());
        };
        // The list that leaves the name out is the one to quote.
        match self
            .approvers
            .iter()
            .find(|list| !list.iter().any(|a| a == name))
        {
            None => Ok(()),
            Some(list) => Err(format!(
                "`{name}` may not approve: the policy allows {}",
                list.join(", ")
            )),
        }
    }

    /// Checks one thing a call touches against every layer: a file against `paths.read` or
    /// `paths.write`, programs against `commands`, a URL's host against `hosts`. Returns which
    /// check applied, with its verdict.
    pub fn check(&self, resource: &Resource<'_>) -> (Check, Result<(), Denial>) {
        match resource {
            Resource::Read(path) => (Check::Path, self.check_path(path, Access::Read)),
            Resource::Write(path) => (Check::Path, self.check_path(path, Access::Write)),
            Resource::Programs(programs) => (
                Check::Command,
                self.check_commands(programs.as_deref().map_err(String::as_str)),
            ),
            Resource::Url(url) => (Check::Host, self.check_host(url)),
        }
    }

    /// Checks a file path against `paths.read` / `paths.write` of every layer (see
    /// `policy/paths.rs` for what a path resolves to).
    fn check_path(&self, path: &str, access: Access) -> Result<(), Denial> {
        if !self.paths.constrains(access) {
            return Ok(());
        }
        self.paths
            .check(path, access)
            .map(drop)
            .map_err(|denied| Denial {
                reason: Reason::PathNotPermitted,
                detail: denied.0,
            })
    }

    /// The path rules a tool applies again when it opens a file, so that what it opens is what
    /// was checked (`tools/open.rs`): the policy's under `enforce`, none under `audit`.
    pub fn opening(&self) -> &PathRules {
        &self.opening
    }

    /// Whether a program name must mean what kairos's own `PATH` finds: when a `commands` list
    /// applies, the name it allows is the program that runs, whatever `PATH` the call sets.
    pub fn pins_programs(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Checks a URL's host against `hosts` of every layer.
    fn check_host(&self, url: &str) -> Result<(), Denial> {
        self.hosts.check_url(url)
    }

    /// The host rules the network layer applies again at every URL it reaches (each redirect
    /// hop): the policy's under `enforce`, none under `audit`.
    pub fn reaching(&self) -> &HostRules {
        &self.reaching
    }

    /// Checks the programs a call would start against `commands` of every layer.
    /// A line kairos cannot analyse is denied: only a line whose every command word is known
    /// can be said to run nothing else (see docs/policy.md, "Commands").
    fn check_commands(&self, programs: Result<&[String], &str>) -> Result<(), Denial> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let programs = programs.map_err(|why| Denial {
            reason: Reason::CommandNotPermitted,
            detail: format!("the programs this call starts cannot be determined: {why}"),
        })?;
        // Names match names exactly; a program given by path must be listed by that path.
        for program in programs {
            if !self
                .commands
                .iter()
                .all(|list| list.iter().any(|c| c == program))
            {
                return Err(Denial {
                    reason: Reason::CommandNotPermitted,
                    detail: format!("`{program}` is not a permitted command"),
                });
            }
        }
        Ok(())
    }

    /// Whether any `max_calls` could apply to a call of a node with this node policy (a cheap
    /// test before [`limits`](Self::limits)).
    pub fn has_limits(&self, node: Option<&PolicySpec>) -> bool {
        !self.max_calls.is_empty() || node.is_some_and(|n| !n.max_calls.is_empty())
    }

    /// The limits that apply to a call counted by `keys` (the tool's name, the node's id, and
    /// any key the call names, such as `mcp:SERVER/TOOL`; an empty key is none): (key, limit).
    pub fn limits(&self, keys: &[&str], node: Option<&PolicySpec>) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        if !self.has_limits(node) {
            return out;
        }
        for &key in keys.iter().filter(|k| !k.is_empty()) {
            let mut limit = self.max_calls.get(key).copied();
            if let Some(spec) = node {
                for (k, v) in &spec.max_calls {
                    if k.value == key {
                        limit = Some(limit.map_or(v.value, |l| l.min(v.value)));
                    }
                }
            }
            if let Some(l) = limit {
                out.push((key.to_string(), l));
            }
        }
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// The effective policy as recorded in `RunStart`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "granted": self.granted.iter().map(Capability::name).collect::<Vec<_>>(),
            "enforcement": if self.enforcement == Enforcement::Audit { "audit" } else { "enforce" },
            "max_calls": self.max_calls,
            "require_approval": self.require_approval.iter().map(Capability::name).collect::<Vec<_>>(),
            "layers": self.layers.iter().map(|l| serde_json::json!({ "name": l.name, "policy": l.spec.to_json() })).collect::<Vec<_>>(),
        });
        // Only when there is one: the policies of runs without a budget are recorded as before.
        if self.budget_tokens.is_some() || self.budget_llm_calls.is_some() {
            let mut budget = serde_json::Map::new();
            if let Some(t) = self.budget_tokens {
                budget.insert("tokens".into(), t.into());
            }
            if let Some(c) = self.budget_llm_calls {
                budget.insert("llm_calls".into(), c.into());
            }
            json["budget"] = budget.into();
        }
        json
    }

    /// `redact` patterns and `secrets` names of every layer.
    pub fn redaction(&self) -> (Vec<String>, Vec<String>) {
        let mut patterns = Vec::new();
        let mut secrets = Vec::new();
        for l in &self.layers {
            patterns.extend(l.spec.redact.iter().map(|p| p.value.clone()));
            secrets.extend(l.spec.secrets.iter().map(|s| s.value.clone()));
        }
        secrets.extend(self.key_envs.iter().cloned());
        patterns.extend(self.nested_patterns.iter().cloned());
        (patterns, secrets)
    }
}

#[cfg(test)]
impl Effective {
    /// The policy of a run whose workflow has this `policy:` block and no organisation policy.
    pub(crate) fn of_workflow(yaml: &str) -> Self {
        let node = crate::syntax::yaml::parse(yaml).expect("a YAML policy");
        let mut errors = Vec::new();
        let spec = PolicySpec::read(&node, &mut errors);
        assert!(errors.is_empty(), "{yaml}");
        Effective::new(vec![Layer {
            name: "the workflow policy".into(),
            spec,
            file: "wf.yaml".into(),
            source: yaml.into(),
            narrows: false,
        }])
    }
}

/// " (`deny` at FILE:LINE)" when a deny entry withholds `cap`, or the preset's line;
/// `at` is the layer's source and, for diagnostics, its file name.
fn deny_site(spec: &PolicySpec, cap: Capability, at: Option<(&str, Option<&str>)>) -> String {
    let place = |offset: usize| match at {
        Some((source, file)) => {
            let line = source[..offset.min(source.len())].matches('\n').count() + 1;
            match file {
                Some(f) => format!(" at {f}:{line}"),
                None => format!(" at line {line}"),
            }
        }
        None => String::new(),
    };
    if let Some(d) = spec.deny.iter().find(|d| d.value == cap) {
        return format!(" (`deny`{})", place(d.span.offset()));
    }
    match &spec.preset {
        Some(p) => format!(
            " (preset `{}`{} does not include it)",
            p.value.name(),
            place(p.span.offset())
        ),
        None => " (no preset and no `allow` grants it)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::hosts::host_of;

    fn spec(yaml: &str) -> PolicySpec {
        let node = crate::syntax::yaml::parse(yaml).unwrap();
        let mut errors = Vec::new();
        let s = PolicySpec::read(&node, &mut errors);
        assert!(errors.is_empty());
        s
    }

    fn layer(name: &str, yaml: &str) -> Layer {
        Layer {
            name: name.into(),
            spec: spec(yaml),
            file: "f.yaml".into(),
            source: yaml.into(),
            narrows: name.contains("organisation"),
        }
    }

    #[test]
    fn organisation_narrows_and_workflow_cannot_widen() {
        let e = Effective::new(vec![
            layer("the organisation policy org.yaml", "deny: [net]\n"),
            layer("the workflow policy", "preset: permissive\n"),
        ]);
        assert!(!e.granted.contains(Capability::Net));
        assert!(e.granted.contains(Capability::Subprocess));
        assert!(
            e.withheld_by(Capability::Net, None, true)
                .contains("organisation")
        );
        let node = spec("allow: [net]\n");
        assert!(
            !e.granted_for(Some(&node)).contains(Capability::Net),
            "a node cannot widen"
        );
        let narrow = spec("deny: [subprocess]\n");
        assert!(
            !e.granted_for(Some(&narrow))
                .contains(Capability::Subprocess)
        );
    }

    #[test]
    fn hosts_are_parsed_from_urls() {
        assert_eq!(
            host_of("https://user@API.example.com:443/x?y").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host_of("http://[::1]:8080/").as_deref(), Some("::1"));
        let e = Effective::new(vec![layer(
            "the workflow policy",
            "preset: permissive\nhosts: [\"*.example.com\"]\n",
        )]);
        assert!(e.check_host("https://api.example.com/v1").is_ok());
        assert_eq!(
            e.check_host("https://evil.test/").unwrap_err().reason,
            Reason::HostNotPermitted
        );
    }

    #[test]
    fn each_resource_meets_its_check() {
        let e = Effective::of_workflow(
            "preset: permissive\ncommands: [git]\nhosts: [api.example.com]\n\
             paths: { read: [\"./data/**\"], write: [\"./out/**\"] }\n",
        );
        let verdict = |r: Resource<'_>| {
            let (check, result) = e.check(&r);
            (check.name(), result.map_err(|d| d.reason))
        };
        assert_eq!(verdict(Resource::Read("data/a.txt")), ("path", Ok(())));
        assert_eq!(
            verdict(Resource::Read("out/a.txt")),
            ("path", Err(Reason::PathNotPermitted))
        );
        assert_eq!(verdict(Resource::Write("out/a.txt")), ("path", Ok(())));
        assert_eq!(
            verdict(Resource::Write("data/../../a.txt")),
            ("path", Err(Reason::PathNotPermitted))
        );
        assert_eq!(
            verdict(Resource::Programs(Ok(vec!["git".into()]))),
            ("command", Ok(()))
        );
        assert_eq!(
            verdict(Resource::Programs(Ok(vec!["git".into(), "rm".into()]))),
            ("command", Err(Reason::CommandNotPermitted))
        );
        assert_eq!(
            verdict(Resource::Programs(Err("why".into()))),
            ("command", Err(Reason::CommandNotPermitted))
        );
        assert_eq!(
            verdict(Resource::Url("https://api.example.com/v1")),
            ("host", Ok(()))
        );
        assert_eq!(
            verdict(Resource::Url("")),
            ("host", Err(Reason::HostNotPermitted))
        );
    }

    #[test]
    fn without_constraints_every_resource_passes() {
        let e = Effective::of_workflow("preset: permissive\n");
        for r in [
            Resource::Read("/etc/passwd"),
            Resource::Write("/tmp/x"),
            Resource::Programs(Err("why".into())),
            Resource::Url("https://anywhere.test/"),
        ] {
            assert_eq!(e.check(&r).1, Ok(()), "{r:?}");
        }
    }

    #[test]
    fn reasons_and_checks_keep_their_recorded_names() {
        let reasons = [
            (Reason::CapabilityNotGranted, "CAPABILITY_NOT_GRANTED"),
            (Reason::PathNotPermitted, "PATH_NOT_PERMITTED"),
            (Reason::HostNotPermitted, "HOST_NOT_PERMITTED"),
            (Reason::CommandNotPermitted, "COMMAND_NOT_PERMITTED"),
            (Reason::CallLimitExceeded, "CALL_LIMIT_EXCEEDED"),
        ];
        for (reason, text) in reasons {
            assert_eq!(reason.to_string(), text);
        }
        let checks = [
            (Check::Capability, "capability"),
            (Check::Path, "path"),
            (Check::Command, "command"),
            (Check::Host, "host"),
            (Check::MaxCalls, "max_calls"),
        ];
        for (check, name) in checks {
            assert_eq!(check.name(), name);
        }
    }

    #[test]
    fn call_limits_take_the_smallest() {
        let e = Effective::new(vec![
            layer(
                "the organisation policy org.yaml",
                "max_calls: { shell: 5 }\n",
            ),
            layer(
                "the workflow policy",
                "preset: permissive\nmax_calls: { shell: 9, step: 1 }\n",
            ),
        ]);
        assert_eq!(
            e.limits(&["shell", "step"], None),
            vec![("shell".to_string(), 5), ("step".to_string(), 1)]
        );
    }
}
