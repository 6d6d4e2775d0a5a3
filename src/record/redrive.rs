//! Re-driving a workflow on the tool results a ledger recorded (`kairos replay --check` and
//! `--against`), without executing any tool.
//!
//! The ledger is read once with the shared reader to build the [`Recording`]; the workflow (the
//! one embedded in the ledger, or a changed one) runs on the engine in replay mode into memory;
//! then the regenerated ledger is compared with the recorded one line by line. `--check`
//! requires byte identity. `--against` compares event bodies (everything but `seq` and `prev`)
//! after `RunStart`, which necessarily differs, and explains the first difference: a call the
//! recording cannot answer (changed input, no recorded result), a branch that decides
//! differently, or a node that appeared or disappeared.

use super::{Divergence, Recording};
use crate::engine::Rules;
use crate::engine::{self, EngineError, RunOptions};
use crate::ledger::event::{self, Event};
use crate::ledger::reader::{self, Head, ReadError};
use crate::ledger::writer::Memory;
use crate::plan::Organisation;
use crate::workflow::{self, Diagnostics, Workflow};
use serde_json::{Map, Value};
use std::path::Path;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReplayError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Decision(#[from] super::decisions::RefusedDecision),
    #[error("the workflow embedded in the ledger does not validate ({} errors)", .0.errors.len())]
    #[diagnostic(code(kairos::replay_workflow))]
    EmbeddedWorkflow(Diagnostics),
    #[error("{0}")]
    #[diagnostic(code(kairos::replay_input))]
    Input(String),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Engine(#[from] EngineError),
}

/// The first place where the regenerated ledger differs from the recorded one.
#[derive(Debug, serde::Serialize)]
pub struct Difference {
    /// The `seq` of the first differing line.
    pub seq: u64,
    pub node: Option<String>,
    /// What happened, in words.
    pub explanation: String,
    /// The recorded line and the regenerated one (absent past the end of either ledger).
    pub recorded: Option<String>,
    pub replayed: Option<String>,
    /// The call the recording could not answer, when that is the cause.
    pub divergence: Option<Divergence>,
}

#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    /// Events in the recorded ledger.
    pub events: u64,
    /// Events in the regenerated ledger.
    pub replayed_events: u64,
    pub first_difference: Option<Difference>,
}

/// What a replay takes from the recorded `RunStart`.
struct Start {
    workflow_source: String,
    inputs: Map<String, Value>,
    seed: u64,
    organisation: Option<Organisation>,
    rules: Rules,
}

impl Start {
    fn read(start: event::RunStart<'_>, ledger: &Path) -> Result<Self, ReplayError> {
        let Value::Object(inputs) = start.inputs.as_ref() else {
            return Err(ReplayError::Input(format!(
                "{}:1: RunStart lacks what a replay needs: `inputs` is not an object",
                ledger.display()
            )));
        };
        let organisation = Organisation::recorded(&start).map_err(|message| {
            ReplayError::Input(format!("the recorded organisation policy: {message}"))
        })?;
        let rules = Rules::from_recorded(start.rules)
            .map_err(|e| ReplayError::Input(format!("{}:1: {e}", ledger.display())))?;
        Ok(Start {
            rules,
            inputs: inputs.clone(),
            workflow_source: start.workflow_source.into_owned(),
            seed: start.seed,
            organisation,
        })
    }
}

/// Re-drives the ledger's own workflow (`against: None`, byte-identity required) or a changed
/// one on the ledger's recorded results.
pub fn redrive(ledger: &Path, against: Option<&Workflow>) -> Result<Outcome, ReplayError> {
    let mut r = reader::open(ledger)?;
    let mut recording = Recording::default();
    let mut start: Option<Start> = None;
    // The called workflows' text, by path as the calls wrote it (`WorkflowCall`).
    let mut called = std::collections::HashMap::new();
    while let Some(line) = r.next_line()? {
        match line.event()? {
            Event::RunStart(s) if line.seq == 0 => start = Some(Start::read(s, ledger)?),
            Event::WorkflowCall(c) => {
                called.insert(c.file.into_owned(), c.source.into_owned());
            }
            event => recording.add_line(line.seq + 1, event),
        }
    }
    let events = r.lines();
    let start = start.expect("the reader checks that line 0 is RunStart");
    let embedded;
    let (workflow, inputs) = match against {
        None => {
            embedded = workflow::validate::load_recorded(
                &format!("{} (embedded workflow)", ledger.display()),
                start.workflow_source.clone(),
                std::sync::Arc::new(called),
            )
            .map_err(ReplayError::EmbeddedWorkflow)?;
            (&embedded, start.inputs.clone())
        }
        Some(w) => (w, inputs_against(w, &start)?),
    };
    // The same effective policy as the recorded run: the organisation policy it recorded, and
    // the workflow's own.
    let policy = crate::plan::effective_policy(workflow, start.organisation.as_ref());
    // A recorded decision the policy does not allow refuses the replay, as it refuses a resume.
    super::decisions::check(&recording, workflow, &policy, &ledger.display().to_string())?;
    let memory = Memory::default();
    let options = RunOptions {
        jobs: 1,
        net_jobs: 1,
        seed: Some(start.seed),
        inputs: Vec::new(),
        summary: false,
        approvals: recording.approvals.clone(),
        ask: None,
        cancel: Default::default(),
        rules: start.rules,
        observer: None,
        // A replay never runs a tool.
        shell: None,
    };
    let report = engine::run_to(
        workflow,
        &options,
        &policy,
        &inputs,
        memory.clone(),
        &super::CallSource::Replay(&recording),
    )?;
    let regenerated = String::from_utf8(memory.take()).unwrap_or_default();
    let first_difference = compare(ledger, &regenerated, against.is_some(), &report.divergences)?;
    Ok(Outcome {
        events,
        replayed_events: report.ledger_lines,
        first_difference,
    })
}

/// The inputs for a changed workflow: a value the recording was given explicitly (it differs
/// from the recorded workflow's default) is kept; otherwise the changed workflow's default
/// applies, so that a changed default shows as a change in behaviour.
fn inputs_against(w: &Workflow, start: &Start) -> Result<Map<String, Value>, ReplayError> {
    let old = workflow::load_str("recorded workflow", &start.workflow_source).ok();
    let old_default = |name: &str| {
        old.as_ref()?
            .inputs
            .iter()
            .find(|i| i.name == name)?
            .default
            .clone()
    };
    let mut inputs = Map::new();
    for input in &w.inputs {
        let recorded = start.inputs.get(&input.name);
        let explicit = recorded.filter(|v| old_default(&input.name).as_ref() != Some(*v));
        let value = match (explicit, &input.default, recorded) {
            (Some(v), _, _) => v.clone(),
            (None, Some(d), _) => d.clone(),
            (None, None, Some(v)) => v.clone(),
            (None, None, None) => {
                return Err(ReplayError::Input(format!(
                    "input `{}` has no default and the recorded run had no value for it",
                    input.name
                )));
            }
        };
        inputs.insert(input.name.clone(), value);
    }
    Ok(inputs)
}

fn compare(
    ledger: &Path,
    regenerated: &str,
    bodies_only: bool,
    divergences: &[Divergence],
) -> Result<Option<Difference>, ReplayError> {
    let mut r = reader::open(ledger)?;
    let mut replayed = regenerated.split_terminator('\n');
    loop {
        let recorded = r.next_line()?;
        let new = replayed.next();
        let (seq, old_text) = match &recorded {
            Some(l) => (l.seq, Some(l.text)),
            None => (r.lines(), None),
        };
        let same = match (old_text, new) {
            (None, None) => return Ok(None),
            (Some(a), Some(b)) if bodies_only && seq == 0 => {
                a.starts_with("{\"seq\":0,") && b.starts_with("{\"seq\":0,")
            }
            (Some(a), Some(b)) if bodies_only => reader::body(a) == reader::body(b),
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        if same {
            continue;
        }
        return Ok(Some(explain(seq, old_text, new, divergences)));
    }
}

fn explain(
    seq: u64,
    recorded: Option<&str>,
    replayed: Option<&str>,
    divergences: &[Divergence],
) -> Difference {
    // Both ledgers have been read through (or written by) this kairos: their lines parse.
    fn read(text: Option<&str>) -> Option<Event<'_>> {
        let text = text?;
        let head = Head::read(text).ok()?;
        Event::parse(head.event, text).ok()
    }
    let (old, new) = (read(recorded), read(replayed));
    let node = new
        .as_ref()
        .and_then(Event::node)
        .or_else(|| old.as_ref().and_then(Event::node))
        .map(str::to_string);
    let divergence = node
        .as_ref()
        .and_then(|n| divergences.iter().find(|d| &d.node == n))
        .cloned();
    let explanation = match (&old, &new, &divergence) {
        (_, _, Some(d)) => format!("node `{}`: {}", d.node, d.reason),
        (Some(Event::BranchDecision(o)), Some(Event::BranchDecision(n)), None)
            if o.node == n.node =>
        {
            format!(
                "branch `{}` now takes `{}` (the recording took `{}`)",
                n.node,
                n.arm.name(),
                o.arm.name()
            )
        }
        (Some(o), Some(n), None) if o.node() != n.node() => format!(
            "the recording has {} of `{}` here, the workflow now gives {} of `{}` (a node was added, removed or reordered)",
            o.kind(),
            o.node().unwrap_or("-"),
            n.kind(),
            n.node().unwrap_or("-")
        ),
        (Some(o), Some(n), None) => format!(
            "{} of `{}` differs",
            n.kind(),
            n.node().or(o.node()).unwrap_or("-")
        ),
        (Some(o), None, None) => format!(
            "the replay ends before the recorded {} of `{}`",
            o.kind(),
            o.node().unwrap_or("-")
        ),
        (None, Some(n), None) => format!(
            "the replay goes on past the recording: {} of `{}`",
            n.kind(),
            n.node().unwrap_or("-")
        ),
        (None, None, None) => "the lines differ".to_string(),
    };
    Difference {
        seq,
        node,
        explanation,
        recorded: recorded.map(str::to_string),
        replayed: replayed.map(str::to_string),
        divergence,
    }
}
