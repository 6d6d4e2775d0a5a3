//! Task nodes: rendering a call's arguments, passing it through the policy gate, and
//! answering it from the recording, running it inline (pure tools) or handing it to a worker;
//! `for_each` fans one node out into instances; results coming back from workers are
//! redacted before anything reads them.

use super::Engine;
use super::answer::{Answer, Answers, Divergence};
use super::pool::{Call, Finished, Job, execute_into};
use super::render::{self, Locals, NodeValues, RenderError, Renderer, TemplateFailure};
use super::state::{NodeState, TaskRun};
use crate::ledger::id::InstanceId;
use crate::policy::redact::Redactor;
use crate::syntax::read::Sp;
use crate::tools::{self, Placement};
use crate::workflow::limits;
use crate::workflow::{ForEach, NodeIdx, NodeKind};
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Instant;

/// What making a call needs besides the node: templates, the run's seed, redaction, and
/// where results come from when they are not live.
pub(super) struct Calls<'w> {
    pub renderer: Renderer,
    /// The values of the nodes that expressions read, shared with the renderer.
    pub values: Arc<NodeValues>,
    pub seed: u64,
    pub redactor: Arc<Redactor>,
    /// Where results come from: live calls, a recording (replay), or a recording with live
    /// calls for what it lacks (resume).
    pub source: &'w dyn Answers,
    /// The calls the recording could not answer.
    pub divergences: Vec<Divergence>,
    /// Templates and expressions that failed, located in the workflow file.
    pub failures: Vec<TemplateFailure>,
}

impl Calls<'_> {
    /// Renders a task's `with:` arguments; on a failure, records it in `run` and gives the
    /// index of the `with:` entry that failed and why.
    fn render_args(
        &self,
        task: &crate::workflow::model::Task,
        locals: Option<&Locals>,
        run: &mut TaskRun,
    ) -> Result<Map<String, Value>, (usize, RenderError)> {
        let mut args = Map::new();
        for (entry, (key, value)) in task.with.iter().enumerate() {
            let kind = task.tool.spec().key(key).map(|k| k.kind);
            let rendered = match kind {
                Some(tools::KeyKind::ShellLine) => value
                    .as_str()
                    .map(|s| self.renderer.shell_line(s, locals).map(Value::String))
                    .unwrap_or_else(|| Ok(value.to_json())),
                Some(tools::KeyKind::Expression) => value.as_str().map_or_else(
                    || Ok(value.to_json()),
                    |s| {
                        self.renderer
                            .expression(s, locals)
                            .and_then(|v| render::to_json(&v))
                    },
                ),
                _ => self.renderer.value(value, locals),
            };
            match rendered {
                Ok(v) => {
                    args.insert(key.clone(), v);
                }
                Err(e) => {
                    run.error = Some(format!("`{key}`: {e}"));
                    return Err((entry, e));
                }
            }
        }
        Ok(args)
    }

    /// The rendered input as the ledger records it: the tool's credentials masked (an
    /// `Authorization` header, whatever its value), then redacted.
    fn recorded_input(
        &self,
        tool: &dyn tools::Tool,
        mut args: Map<String, Value>,
        run: &mut TaskRun,
    ) -> Value {
        let concealed = tool.conceal(&mut args);
        let mut input = Value::Object(args);
        let n = concealed + self.redactor.redact_json(&mut input);
        if n > 0 {
            run.redactions.push(("input".into(), n as u64));
        }
        input
    }

    /// Asks the call source for the call `id`: when a recording answers it (or diverges),
    /// records that in `run` and gives `None`; when the call is to run live, gives its
    /// arguments back.
    fn answer(
        &mut self,
        id: &InstanceId,
        tool: &dyn tools::Tool,
        args: Map<String, Value>,
        run: &mut TaskRun,
    ) -> Option<Map<String, Value>> {
        let mut args = Some(args);
        let answer = self.source.answer(id.as_str(), tool.spec(), &mut || {
            self.recorded_input(tool, args.take().unwrap_or_default(), run)
        });
        let (input, redactions, attempts) = match answer {
            Answer::Run => return args,
            Answer::Recorded {
                input,
                attempts,
                redactions,
            } => {
                // The recorded counts include the input's (see `record/source.rs`).
                if redactions.iter().any(|(field, _)| field == "input") {
                    run.redactions.retain(|(field, _)| field != "input");
                }
                (input, redactions, attempts)
            }
            Answer::Diverged {
                input,
                redactions,
                divergence,
            } => {
                let attempt = divergence.attempt();
                self.divergences.push(divergence);
                (input, redactions, vec![attempt])
            }
        };
        run.redactions.extend(redactions);
        run.attempts = attempts;
        run.input = Some(input);
        None
    }
}

impl Engine<'_> {
    /// Notes that `text` (the value of `field` of node `i`, or of its item `item`) failed to
    /// evaluate with `error`, with what was in scope, for a diagnostic after the run.
    pub(super) fn template_failed(
        &mut self,
        i: NodeIdx,
        item: Option<u32>,
        field: String,
        text: &Sp<String>,
        error: &RenderError,
        locals: Option<&Locals>,
    ) {
        let node = &self.wf.nodes[i as usize];
        let id = self.iid(i, item);
        let mut scope = Vec::new();
        if !self.wf.inputs.is_empty() {
            let names: Vec<&str> = self.wf.inputs.iter().map(|i| i.name.as_str()).collect();
            scope.push(format!("inputs: {}", names.join(", ")));
        }
        if !node.reads.is_empty() {
            let nodes: Vec<String> = node
                .reads
                .iter()
                .map(|&r| {
                    let status = match self.nodes.states[r as usize] {
                        NodeState::Pending => "no result",
                        _ => self.nodes.status(r).name(),
                    };
                    format!("{} ({status})", self.wf.nodes[r as usize].id)
                })
                .collect();
            scope.push(format!("nodes: {}", nodes.join(", ")));
        }
        scope.push("run: seed, name".into());
        if locals.is_some() {
            scope.push("item, index".into());
        }
        let failure = TemplateFailure::new(
            &self.wf.source,
            text.span,
            &text.value,
            error,
            (Some(id.as_str()), field, scope.join("; ")),
        );
        self.calls.failures.push(
            failure
                .in_file(&self.wf.file, &self.wf.source)
                .redacted(&self.calls.redactor),
        );
    }

    /// Renders a task's arguments and runs it inline or hands it to a worker.
    pub(super) fn start_task(&mut self, i: NodeIdx, instance: Option<(u32, Locals)>) -> NodeState {
        let node = &self.wf.nodes[i as usize];
        let NodeKind::Task(task) = &node.kind else {
            unreachable!("tasks only")
        };
        let locals = instance.as_ref().map(|(_, l)| l);
        // A pure tool's work is its rendering: the node's timeout covers it (see below).
        let started = node.timeout.map(|_| Instant::now());
        // Boxes of committed runs are reused: most nodes run and commit in quick succession.
        let mut run = self.nodes.new_run();
        if instance.is_some()
            && let Some(cond) = &node.condition
        {
            match self.calls.renderer.condition(cond, locals) {
                Ok(true) => {}
                Ok(false) => run.skipped = Some("`if` is false".into()),
                Err(e) => {
                    run.error = Some(format!("`if`: {e}"));
                    let field = "`if`".to_string();
                    self.template_failed(
                        i,
                        instance.as_ref().map(|(k, _)| *k),
                        field,
                        cond,
                        &e,
                        locals,
                    );
                }
            }
            if run.skipped.is_some() || run.error.is_some() {
                return NodeState::Task(run);
            }
        }
        let args = match self.calls.render_args(task, locals, &mut run) {
            Ok(args) => args,
            Err((entry, e)) => {
                let (key, value) = &task.with[entry];
                let text = Sp::new(value.as_str().unwrap_or_default().to_string(), value.span);
                let field = format!("`with.{key}`");
                self.template_failed(
                    i,
                    instance.as_ref().map(|(k, _)| *k),
                    field,
                    &text,
                    &e,
                    locals,
                );
                return NodeState::Task(run);
            }
        };
        let instance_id = self.iid(i, instance.as_ref().map(|(k, _)| *k));
        // What the call may touch: the node's policy where it narrows the run's. Checked
        // before anything runs (a denial under `enforce` stops here), and again as it runs.
        let narrowed = self.gate.narrowed(node);
        self.gate
            .decide(node, task.tool, &args, narrowed.as_deref(), &mut run);
        if run.denied {
            run.input = Some(self.calls.recorded_input(task.tool, args, &mut run));
            return NodeState::Task(run);
        }
        let Some(args) = self.calls.answer(&instance_id, task.tool, args, &mut run) else {
            return NodeState::Task(run);
        };
        let retries = node.retry.as_ref().is_some_and(|r| r.attempts > 1);
        let (touching, net) = match narrowed.as_deref() {
            Some(n) => (&n.policy, &n.net),
            None => (self.gate.policy, &self.gate.net),
        };
        if task.tool.placement() == Placement::Inline && !retries {
            let call = Call {
                tool: task.tool,
                args: &args,
                timeout: node.timeout,
                retry: None,
                seed: self.calls.seed,
                instance_id: instance_id.as_str(),
                cancel: &self.cancel,
                paths: touching.opening(),
                net,
                mcp: &self.gate.mcp,
                own_path: touching.pins_programs(),
                watch: super::observe::Watch::inline(self.observer.as_deref()),
                grant: None,
                // Inline tools compute here; only `shell` (on a worker) leaves the machine.
                shell: None,
            };
            // An inline call computes; no interrupt cuts it short, and it has no retries.
            let _ran_to_its_end = execute_into(&call, &mut run.attempts, &mut Vec::new());
            // Rendering and computing took longer than the node's timeout: the call timed out,
            // recorded as a tool's timeout is (the clock decides, as it does for a command).
            if let (Some(limit), Some(started)) = (node.timeout, started)
                && started.elapsed() > limit
                && let Some(attempt) = run.attempts.last_mut()
            {
                attempt.outcome = tools::Outcome::failed(format!(
                    "timed out after {}",
                    crate::syntax::duration::format(limit)
                ));
            }
            run.input = Some(self.calls.recorded_input(task.tool, args, &mut run));
            redact_results(&self.calls.redactor, &mut run);
            return NodeState::Task(run);
        }
        run.input = Some(self.calls.recorded_input(task.tool, args.clone(), &mut run));
        let instance_id = instance_id.into_string();
        let grant =
            (self.gate.counts_retries(node, task.tool) && !run.limits.is_empty()).then(|| {
                self.gate
                    .retry_grant(run.limits.clone(), instance.as_ref().map_or(0, |(k, _)| *k))
            });
        self.workers.push(Job {
            key: (
                Reverse(node.priority),
                i,
                instance.as_ref().map_or(0, |(k, _)| *k),
            ),
            node: i,
            instance: instance.as_ref().map(|(k, _)| *k),
            tool: task.tool,
            args,
            timeout: node.timeout,
            retry: node.retry.as_deref().cloned(),
            seed: self.calls.seed,
            instance_id,
            grant,
            paths: touching.opening().clone(),
            net: net.clone(),
            mcp: self.gate.mcp.clone(),
            own_path: touching.pins_programs(),
        });
        NodeState::Running(run)
    }

    /// Starts a task node: one call, or one per `for_each` item.
    pub(super) fn start_node(&mut self, i: NodeIdx) -> NodeState {
        let node = &self.wf.nodes[i as usize];
        let NodeKind::Task(task) = &node.kind else {
            unreachable!("tasks only")
        };
        // Retries that count as calls are granted once every first attempt is counted.
        let counts = self.gate.counts_retries(node, task.tool);
        if counts {
            self.gate.open_node();
        }
        let mut state = match &node.for_each {
            None => self.start_task(i, None),
            Some(each) => self.start_for_each(i, each),
        };
        if counts {
            let attempts = node.retry.as_ref().map_or(1, |r| r.attempts);
            self.gate.seal(&mut state, attempts);
        }
        state
    }

    fn start_for_each(&mut self, i: NodeIdx, each: &ForEach) -> NodeState {
        let items: Vec<Value> = match each {
            ForEach::Items(items) => items.clone(),
            ForEach::Expression(text) => match self
                .calls
                .renderer
                .expression(text, None)
                .and_then(|v| render::to_json(&v))
            {
                Ok(Value::Array(items)) if items.len() > limits::FOR_EACH_ITEMS => {
                    let e = RenderError::from(format!(
                        "gave {} items, more than the limit of {} (docs/workflow.md#limits)",
                        items.len(),
                        limits::FOR_EACH_ITEMS
                    ));
                    self.template_failed(i, None, "`for_each`".into(), text, &e, None);
                    return NodeState::Failed(format!("`for_each`: {e}"));
                }
                Ok(Value::Array(items)) => items,
                Ok(other) => {
                    return NodeState::Failed(format!("`for_each` must give a list, gave {other}"));
                }
                Err(e) => {
                    self.template_failed(i, None, "`for_each`".into(), text, &e, None);
                    return NodeState::Failed(format!("`for_each`: {e}"));
                }
            },
        };
        let mut runs = Vec::with_capacity(items.len());
        let mut remaining = 0;
        // Mark the node as in progress before starting instances: each may finish at once.
        for (k, item) in items.into_iter().enumerate() {
            if self.cancel.requested() {
                // Ctrl-C: the other instances do not start (their rendering may take long), and
                // the node, which cannot get its result now, runs again on resume.
                remaining += 1;
                break;
            }
            let res = self.start_task(i, Some((k as u32, Locals { item, index: k })));
            match res {
                NodeState::Task(run) => runs.push(Some(*run)),
                NodeState::Running(run) => {
                    remaining += 1;
                    runs.push(Some(*run));
                }
                _ => unreachable!("start_task gives a task result"),
            }
        }
        NodeState::ForEach { runs, remaining }
    }

    pub(super) fn job_done(
        &mut self,
        node: NodeIdx,
        instance: Option<u32>,
        finished: Option<Finished>,
    ) {
        // A job not run (interrupt), or killed by a second interrupt, commits nothing: the
        // node runs again on resume.
        let Some(Finished { attempts, checks }) = finished.filter(|_| !self.cancel.killed()) else {
            return;
        };
        self.gate.retries_checked(&checks);
        let iu = node as usize;
        match (&mut self.nodes.states[iu], instance) {
            (NodeState::Running(run), None) => {
                run.attempts = attempts;
                run.checks.extend(checks);
                redact_results(&self.calls.redactor, run);
                self.nodes.states[iu] = match std::mem::take(&mut self.nodes.states[iu]) {
                    NodeState::Running(run) => NodeState::Task(run),
                    _ => unreachable!(),
                };
                self.sched.push_ready(&self.graph, node);
            }
            (NodeState::ForEach { runs, remaining }, Some(k)) => {
                if let Some(Some(run)) = runs.get_mut(k as usize) {
                    run.attempts = attempts;
                    run.checks.extend(checks);
                    redact_results(&self.calls.redactor, run);
                }
                *remaining -= 1;
                if *remaining == 0 {
                    self.sched.push_ready(&self.graph, node);
                }
            }
            _ => debug_assert!(false, "a job result for a node that is not waiting for one"),
        }
    }
}

/// Redacts a call's results in place (before they are recorded or read by another node) and
/// notes how many replacements each field got.
fn redact_results(redactor: &Redactor, run: &mut TaskRun) {
    if !redactor.is_active() {
        return;
    }
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut add = |field: &str, n: usize| {
        if n > 0 {
            match counts.iter_mut().find(|(f, _)| f == field) {
                Some((_, c)) => *c += n as u64,
                None => counts.push((field.to_string(), n as u64)),
            }
        }
    };
    for attempt in &mut run.attempts {
        let o = &mut attempt.outcome;
        add("output", redactor.redact_json(&mut o.output));
        for (field, stream) in [("stdout", &mut o.stdout), ("stderr", &mut o.stderr)] {
            if let Some(c) = stream {
                let (text, n) = redactor.redact(&c.text);
                if n > 0 {
                    c.text = text.into_owned();
                }
                add(field, n);
            }
        }
        if let Some(e) = &mut o.error {
            let (text, n) = redactor.redact(e);
            if n > 0 {
                *e = text.into_owned();
            }
            add("error", n);
        }
    }
    run.redactions.extend(counts);
}
