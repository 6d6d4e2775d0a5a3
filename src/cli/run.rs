//! `kairos run FILE`

use super::OutputFormat;
use crate::engine::{self, Observer, RunOptions, RunStatus};
use crate::exec::ExecutorKind;
use crate::exec::slurm::{self, Slurm};
use crate::exit;
use crate::printable::printable;
use crate::record::resume::{self, ResumeError};
use crate::report::{junit, progress::Progress, trace::Recorder};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workflow file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Worker threads for waiting work (default: the number of CPUs, at least 4).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Network calls running at once (default: 64, or the workflow's
    /// `network.max_concurrent` if lower); they do not take `--jobs` workers.
    #[arg(long, value_name = "N")]
    pub net_jobs: Option<usize>,
    /// RNG seed (overrides the workflow's `seed`).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Set an input (repeatable).
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub inputs: Vec<(String, String)>,
    /// Where to write the ledger; must not exist
    /// (default: .kairos/runs/NAME/NNNN.jsonl, the next free number).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// An organisation policy (a YAML file holding one policy mapping): the run gets what both
    /// it and the workflow allow.
    #[arg(long, value_name = "ORG.yaml")]
    pub policy: Option<PathBuf>,
    /// Approve this approval node (repeatable).
    #[arg(long, value_name = "ID")]
    pub approve: Vec<String>,
    /// Reject this approval node (repeatable).
    #[arg(long, value_name = "ID")]
    pub reject: Vec<String>,
    /// Who decides (recorded; checked against the policy's `approvers`).
    #[arg(long, value_name = "NAME")]
    pub approver: Option<String>,
    /// Why (recorded with the decision).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Continue a paused, interrupted or crashed run in this ledger (same workflow, inputs,
    /// seed and policy); committed results are reused, the rest runs.
    #[arg(long, value_name = "LEDGER", conflicts_with = "ledger")]
    pub resume: Option<PathBuf>,
    /// Write a JUnit XML report of the run here (one test case per node instance), for CI test
    /// reporters; replaced if it exists.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Chrome trace event file of the run here (one slice per call attempt, per
    /// thread), for Perfetto or chrome://tracing; replaced if it exists.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Where `shell` calls run: here, or one batch job per call on a Slurm cluster (settings
    /// from the `executor:` block; see docs/executors.md). Overrides the block's `kind`.
    #[arg(long, value_enum, value_name = "EXECUTOR")]
    pub executor: Option<Executor>,
}

/// `--executor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    /// This machine's worker threads (the default).
    Local,
    /// A Slurm cluster: `sbatch`, one `squeue` per interval, results from a shared directory.
    Slurm,
}

/// The Slurm coordinator of a run writing `ledger`, when `shell` calls go to Slurm (`spec`:
/// the run's `executor:` settings); `adopt` on a resumed run (jobs it left running are waited
/// for, not submitted again).
fn slurm_executor(
    args: &Args,
    spec: &crate::exec::ExecutorSpec,
    policy: &crate::policy::effective::Effective,
    ledger: &Path,
    cancel: &crate::cancel::Cancel,
) -> Result<Option<Arc<Slurm>>, String> {
    let kind = match args.executor {
        Some(Executor::Local) => ExecutorKind::Local,
        Some(Executor::Slurm) => ExecutorKind::Slurm,
        None => spec.kind.unwrap_or_default(),
    };
    if kind == ExecutorKind::Local {
        return Ok(None);
    }
    let (_, secrets) = policy.redaction();
    let config = slurm::Config::new(spec, ledger, &secrets, args.resume.is_some())
        .map_err(|e| format!("cannot set up the Slurm executor: {e}"))?;
    std::fs::create_dir_all(&config.run_dir).map_err(|e| {
        format!(
            "cannot create the Slurm work directory {}: {e}",
            config.run_dir.display()
        )
    })?;
    Ok(Some(Arc::new(Slurm::new(config, cancel.clone()))))
}

/// What a run writes besides its ledger, and the progress line: the files are created before
/// the run starts (a path that cannot be written stops it before anything runs) and written
/// once it has ended.
struct Reports {
    junit: Option<(PathBuf, File)>,
    trace: Option<(PathBuf, File)>,
    /// Timings, for the trace and the JUnit report's `time`.
    recorder: Option<Arc<Recorder>>,
    progress: Option<Progress>,
}

impl Reports {
    fn open(args: &Args, nodes: usize) -> Result<Self, String> {
        let create = |path: &Option<PathBuf>, what: &str| {
            path.as_ref()
                .map(|p| {
                    File::create(p)
                        .map(|f| (p.clone(), f))
                        .map_err(|e| format!("cannot create the {what} {}: {e}", p.display()))
                })
                .transpose()
        };
        let junit = create(&args.junit, "JUnit report")?;
        let trace = create(&args.trace, "trace")?;
        let recorder = (junit.is_some() || trace.is_some()).then(|| Arc::new(Recorder::new()));
        Ok(Self {
            junit,
            trace,
            recorder,
            progress: (!args.quiet).then(|| Progress::on_stderr(nodes)).flatten(),
        })
    }

    /// The engine's observer: the recorder, the progress line, both or none.
    fn observer(&self) -> Option<Arc<dyn Observer>> {
        let mut all: Vec<Arc<dyn Observer>> = Vec::new();
        if let Some(r) = &self.recorder {
            all.push(Arc::clone(r) as Arc<dyn Observer>);
        }
        if let Some(p) = &self.progress {
            all.push(p.observer());
        }
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Arc::new(engine::Observers(all))),
        }
    }

    /// Erases the progress line (before anything else is printed).
    fn end_progress(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
    }

    /// The run did not happen: the files created for it go.
    fn discard(mut self) {
        self.end_progress();
        for (path, _) in self.junit.iter().chain(&self.trace) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Writes the JUnit report (read back from `ledger`) and the trace; says on stderr what
    /// could not be written, and returns whether everything was.
    fn write(mut self, ledger: &Path, workflow: &str) -> bool {
        self.end_progress();
        let mut ok = true;
        let durations = self
            .recorder
            .as_ref()
            .map(|r| r.durations())
            .unwrap_or_default();
        if let Some((path, file)) = self.junit.take() {
            let written = crate::ledger::reader::open(ledger)
                .and_then(junit::Suite::read)
                .map_err(|e| e.to_string())
                .and_then(|suite| {
                    use std::io::Write;
                    let mut file = file;
                    file.write_all(suite.to_xml(&durations).as_bytes())
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                errln!(
                    "error: cannot write the JUnit report {}: {e}",
                    path.display()
                );
                ok = false;
            }
        }
        if let (Some((path, file)), Some(recorder)) = (self.trace.take(), &self.recorder)
            && let Err(e) = recorder.write(&format!("kairos run {workflow}"), file)
        {
            errln!("error: cannot write the trace {}: {e}", path.display());
            ok = false;
        }
        ok
    }
}

/// Asks on the terminal: the prompt, then approve or reject, then who decides (checked
/// against the `approvers` where the approval is). End of input leaves the decision open (the
/// run pauses).
fn ask_on_terminal() -> engine::Ask {
    engine::Ask(std::sync::Arc::new(
        move |id: &str, prompt: &str, approvers: &engine::ApproverCheck<'_>| {
            use std::io::BufRead;
            let mut lines = std::io::stdin().lock().lines();
            errln!("approval `{id}`: {prompt}");
            let approve = loop {
                err!("approve? [y/n] ");
                match lines.next()?.ok()?.trim() {
                    "y" | "yes" => break true,
                    "n" | "no" => break false,
                    _ => errln!("answer y or n"),
                }
            };
            let approver = loop {
                err!("your name: ");
                let name = lines.next()?.ok()?.trim().to_string();
                let name = (!name.is_empty()).then_some(name);
                match approvers(name.as_deref()) {
                    Ok(()) => break name,
                    Err(e) => errln!("{e}"),
                }
            };
            Some(engine::ApprovalDecision {
                approve,
                approver,
                reason: None,
            })
        },
    ))
}

/// The decisions given on the command line, checked against the workflow and the policy.
fn decisions(
    args: &Args,
    wf: &crate::workflow::Workflow,
    policy: &crate::policy::effective::Effective,
) -> Result<std::collections::BTreeMap<String, engine::ApprovalDecision>, String> {
    let mut out = std::collections::BTreeMap::new();
    let given = args
        .approve
        .iter()
        .map(|id| (id, true))
        .chain(args.reject.iter().map(|id| (id, false)));
    for (id, approve) in given {
        let Some(site) = crate::plan::approval_site(wf, id, policy) else {
            return Err(format!(
                "`{id}` is not an approval node of {} (nor a call the policy requires approval for)",
                wf.name
            ));
        };
        if out.contains_key(id) {
            return Err(format!("`{id}` is both approved and rejected"));
        }
        site.check_approver(policy, args.approver.as_deref())?;
        out.insert(
            id.clone(),
            engine::ApprovalDecision {
                approve,
                approver: args.approver.clone(),
                reason: args.reason.clone(),
            },
        );
    }
    Ok(out)
}

/// The decisions given on the command line that the ledger at `path` does not record: the run
/// paused or stopped before it reached them (a decision is recorded when it is taken).
fn unreached_decisions(args: &Args, path: &Path) -> Vec<String> {
    let mut given: Vec<&String> = args.approve.iter().chain(&args.reject).collect();
    if given.is_empty() {
        return Vec::new();
    }
    let Ok(mut reader) = crate::ledger::reader::open(path) else {
        return Vec::new();
    };
    use crate::ledger::event::{Event, Kind};
    while !given.is_empty()
        && let Ok(Some(line)) = reader.next_line()
    {
        // Only the lines of decisions are read whole.
        if line.kind().ok() == Some(Kind::ApprovalResolved)
            && let Ok(Event::ApprovalResolved(r)) = line.event()
        {
            given.retain(|id| id.as_str() != &*r.node);
        }
    }
    given.into_iter().cloned().collect()
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, found `{s}`"))
}

/// At most this many rows in the summary table; `--format json` has them all.
const TABLE_ROWS: usize = 200;

/// Admission: loads the workflow, its effective policy and executor settings, and runs the
/// static checks; on a refusal, prints why and gives the exit code. The workflow lives until
/// the process exits and is not freed then: for a large graph, freeing hundreds of thousands
/// of small allocations is measurable and of no use.
fn admit(
    args: &Args,
) -> Result<
    (
        std::mem::ManuallyDrop<crate::workflow::Workflow>,
        crate::policy::effective::Effective,
        crate::exec::ExecutorSpec,
    ),
    i32,
> {
    let started = std::time::Instant::now();
    let wf = match crate::workflow::load_file(&args.file) {
        Ok(w) => std::mem::ManuallyDrop::new(w),
        Err(e) => {
            if args.format == OutputFormat::Json && !args.quiet {
                print_not_run(args, "invalid", super::load_error_records(&args.file, &e));
            }
            return Err(super::load_failed(e));
        }
    };
    if std::env::var_os("KAIROS_TIMINGS").is_some() {
        // For benchmarks: loading (reading, parsing, validating) apart from running.
        errln!(
            "kairos: timings: load {:.3} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let (policy, executor_spec) = super::effective_policy(&wf, args.policy.as_deref())?;
    // The static check: under `enforce`, a tool the policy does not allow refuses the run
    // before anything starts.
    let violations = crate::plan::check_capabilities(&wf, &policy);
    if !violations.is_empty() && policy.enforcement == crate::policy::Enforcement::Enforce {
        let n = violations.len();
        let d = crate::workflow::Diagnostics {
            source: std::sync::Arc::new(miette::NamedSource::new(
                wf.file.clone(),
                wf.source.to_string(),
            )),
            errors: violations,
        };
        let mut out = String::new();
        d.render(&mut out);
        super::print::err_raw(&out);
        errln!(
            "error: the policy refuses this run ({n} capability violation{}); nothing was run",
            if n == 1 { "" } else { "s" }
        );
        if args.format == OutputFormat::Json && !args.quiet {
            print_not_run(args, "refused", serde_json::json!(d.records()));
        }
        return Err(exit::POLICY);
    }
    if let Err(e) = crate::plan::resolve_inputs(&wf, &args.inputs)
        .map(drop)
        .and_then(|()| crate::plan::check_redaction(&policy))
    {
        super::report_error(e);
        return Err(exit::BAD_INPUT);
    }
    Ok((wf, policy, executor_spec))
}

pub fn run(args: &Args) -> i32 {
    let cancel = crate::cancel::Cancel::default();
    crate::interrupt::install(cancel.clone());
    let (wf, policy, executor_spec) = match admit(args) {
        Ok(admitted) => admitted,
        Err(code) => return code,
    };
    let approvals = match decisions(args, &wf, &policy) {
        Ok(d) => d,
        Err(message) => {
            errln!("error: {message}; no decision recorded");
            return exit::BAD_INPUT;
        }
    };
    let reports = match Reports::open(args, wf.nodes.len()) {
        Ok(r) => r,
        Err(message) => {
            errln!("error: {message}");
            return exit::BAD_INPUT;
        }
    };
    let mut options = RunOptions {
        jobs: args.jobs.unwrap_or(0),
        net_jobs: args.net_jobs.unwrap_or(0),
        seed: args.seed,
        inputs: args.inputs.clone(),
        summary: !args.quiet,
        approvals,
        ask: std::io::IsTerminal::is_terminal(&std::io::stdin()).then(ask_on_terminal),
        cancel,
        rules: Default::default(),
        observer: reports.observer(),
        shell: None,
    };
    let mut executor = None;
    let mut use_executor = |options: &mut RunOptions, ledger: &Path| {
        let slurm = slurm_executor(args, &executor_spec, &policy, ledger, &options.cancel)?;
        if let Some(slurm) = &slurm {
            // A worker waits (without CPU) for each job in flight: there must be enough.
            let in_flight = slurm.config().max_in_flight;
            options.jobs = args.jobs.unwrap_or(engine::default_jobs().max(in_flight));
            options.shell = Some(Arc::clone(slurm) as Arc<dyn crate::exec::ShellBackend>);
        }
        executor = slurm;
        Ok::<(), String>(())
    };
    let (path, result) = if let Some(ledger) = &args.resume {
        if let Err(message) = use_executor(&mut options, ledger) {
            reports.discard();
            errln!("error: {message}");
            return exit::BAD_INPUT;
        }
        let result = resume::resume(ledger, &wf, &policy, options, |dropped| {
            errln!("resuming {}: {dropped}", ledger.display());
        });
        let result = match result {
            Ok(report) => Ok(report),
            Err(ResumeError::Engine(e)) => Err(e),
            Err(ResumeError::Plan(e)) => {
                reports.discard();
                super::report_error(e);
                return exit::BAD_INPUT;
            }
            Err(e @ (ResumeError::Decided { .. } | ResumeError::Io { .. })) => {
                reports.discard();
                errln!("error: {e}");
                return exit::BAD_INPUT;
            }
            Err(e) => {
                reports.discard();
                super::report_error(e);
                return exit::BAD_INPUT;
            }
        };
        (ledger.clone(), result)
    } else {
        let (path, file) = match open_ledger(args.ledger.as_deref(), &wf.name) {
            Ok(x) => x,
            Err(message) => {
                reports.discard();
                errln!("error: {message}");
                return exit::BAD_INPUT;
            }
        };
        if let Err(message) = use_executor(&mut options, &path) {
            reports.discard();
            errln!("error: {message}");
            drop(file);
            let _ = std::fs::remove_file(&path);
            return exit::BAD_INPUT;
        }
        (path, engine::run(&wf, &options, &policy, file))
    };
    if let Some(slurm) = &executor
        && std::env::var_os("KAIROS_TIMINGS").is_some()
    {
        print_slurm_counts(slurm);
    }
    if let (Some(slurm), Some(recorder)) = (&executor, &reports.recorder) {
        recorder.add_jobs(slurm.jobs());
    }
    drop(executor);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            reports.discard();
            super::report_error(e);
            return exit::BAD_INPUT;
        }
    };
    conclude(args, &wf, &path, &report, reports)
}

/// The Slurm coordinator's counts, on stderr, for `KAIROS_TIMINGS` (docs/executors.md).
fn print_slurm_counts(slurm: &crate::exec::slurm::Slurm) {
    let s = slurm.stats();
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    errln!(
        "kairos: slurm: {} submitted, {} submit retries, {} adopted, {} status queries, {} accounting queries, {} cancelled",
        n(&s.submitted),
        n(&s.submit_retries),
        n(&s.adopted),
        n(&s.status_queries),
        n(&s.accounting_queries),
        n(&s.cancelled)
    );
}

/// What follows a run that ran: its reports, the exit code, and the summary.
fn conclude(
    args: &Args,
    wf: &crate::workflow::Workflow,
    path: &Path,
    report: &engine::RunReport,
    reports: Reports,
) -> i32 {
    let reports_written = reports.write(path, &wf.name);
    let code = match report.status {
        RunStatus::Succeeded => exit::SUCCESS,
        RunStatus::Failed => exit::NEGATIVE,
        RunStatus::Denied => exit::POLICY,
        RunStatus::Paused => exit::PAUSED,
        RunStatus::Interrupted => exit::INTERRUPTED,
    };
    if report.status == RunStatus::Interrupted {
        errln!(
            "interrupted; resume with: kairos run {} --resume {}",
            args.file.display(),
            path.display()
        );
    }
    if matches!(report.status, RunStatus::Paused | RunStatus::Interrupted) {
        for id in unreached_decisions(args, path) {
            errln!(
                "note: the run stopped before it reached `{id}`: its decision is not kept; give it again when resuming"
            );
        }
    }
    // The run's own outcome comes first; a report that could not be written is bad input
    // only when there is nothing worse to say.
    let code = if reports_written || code != exit::SUCCESS {
        code
    } else {
        exit::BAD_INPUT
    };
    // Templates that failed at run time are reported like validation errors, on stderr; the
    // ledger keeps the short message.
    if args.format == OutputFormat::Table {
        super::print::err_raw(&crate::report::template::render(
            &wf.file,
            &wf.source,
            &report.template_failures,
        ));
    }
    if args.quiet {
        return code;
    }
    print_summary(args, wf, path, report);
    code
}

/// The run's summary on stdout: a table for people (cells escaped before the table is laid
/// out, so columns line up), or JSON.
fn print_summary(
    args: &Args,
    wf: &crate::workflow::Workflow,
    path: &Path,
    report: &engine::RunReport,
) {
    match args.format {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "template_errors": crate::report::template::to_json(
                    &wf.file,
                    &wf.source,
                    &report.template_failures,
                ),
                "status": report.status.name(),
                "ledger": path.display().to_string(),
                "events": report.ledger_lines,
                "chain_head": report.chain_head,
                "counts": report.counts.to_json(),
                "outputs": report.outputs,
                "pending_approvals": report.pending_approvals,
                "nodes": report.nodes,
            });
            let mut doc = doc;
            // Only for runs that called a model, as `RunEnd.usage`.
            if !report.usage.is_empty() {
                doc["usage"] = serde_json::to_value(&report.usage).unwrap_or_default();
            }
            super::print_json(&doc);
        }
        OutputFormat::Table => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(["node", "kind", "status", "attempts", "output"]);
            for n in report.nodes.iter().take(TABLE_ROWS) {
                table.add_row([
                    &*printable(&n.node),
                    n.kind,
                    n.status,
                    &n.attempts.to_string(),
                    &printable(&n.output),
                ]);
            }
            outln!("{table}");
            if report.nodes.len() > TABLE_ROWS {
                outln!(
                    "... and {} more nodes (--format json lists them all)",
                    report.nodes.len() - TABLE_ROWS
                );
            }
            for (name, value) in &report.outputs {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                outln!("output {name}: {text}");
            }
            let c = report.counts;
            outln!(
                "run {}: {} succeeded, {} failed, {} skipped, {} denied",
                report.status.name(),
                c.succeeded,
                c.failed,
                c.skipped,
                c.denied
            );
            for (model, u) in &report.usage {
                outln!(
                    "tokens {}: {} ({} in, {} out) in {} call{}",
                    printable(if model.is_empty() {
                        "(unnamed model)"
                    } else {
                        model
                    }),
                    u.total_tokens,
                    u.input_tokens,
                    u.output_tokens,
                    u.calls,
                    if u.calls == 1 { "" } else { "s" }
                );
            }
            if !report.pending_approvals.is_empty() {
                outln!(
                    "waiting for approval: {}",
                    report.pending_approvals.join(", ")
                );
                outln!(
                    "resume with: kairos run {} --resume {} --approve {} --approver NAME",
                    args.file.display(),
                    path.display(),
                    report.pending_approvals[0]
                );
            }
            outln!(
                "ledger: {} ({} events)",
                path.display(),
                report.ledger_lines
            );
        }
    }
}

/// `--format json` of a run that did not start: the workflow is `invalid`, or the policy
/// `refused` it; no ledger is written.
fn print_not_run(args: &Args, status: &str, diagnostics: serde_json::Value) {
    super::print_json(&serde_json::json!({
        "file": args.file.display().to_string(),
        "status": status,
        "ledger": null,
        "diagnostics": diagnostics,
    }));
}

/// Creates the ledger file without ever replacing one: an explicit path must not exist; the
/// default is the next free `.kairos/runs/NAME/NNNN.jsonl`, claimed atomically.
fn open_ledger(explicit: Option<&Path>, name: &str) -> Result<(PathBuf, File), String> {
    // Locked while the run writes it, so that a `--resume` of it waits for the run to end
    // (`ledger/lock.rs`); a new file cannot be busy.
    let create = |p: &Path| {
        let file = File::options().write(true).create_new(true).open(p)?;
        crate::ledger::lock::exclusive(&file);
        Ok::<File, std::io::Error>(file)
    };
    if let Some(path) = explicit {
        return match create(path) {
            Ok(f) => Ok((path.to_path_buf(), f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(format!(
                "ledger {} already exists; kairos never overwrites a ledger (choose another --ledger path)",
                path.display()
            )),
            Err(e) => Err(format!("cannot create ledger {}: {e}", path.display())),
        };
    }
    let dir = Path::new(".kairos").join("runs").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut next = 1 + std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str()?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    loop {
        let path = dir.join(format!("{next:04}.jsonl"));
        match create(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
            Err(e) => return Err(format!("cannot create ledger {}: {e}", path.display())),
        }
    }
}
