//! `kairos replay LEDGER`

use super::OutputFormat;
use crate::exit;
use crate::ledger::id::InstanceId;
use crate::ledger::{reader, state};
use crate::printable::printable;
use crate::record::redrive::{self, ReplayError};

use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ledger to replay.
    #[arg(value_name = "LEDGER")]
    pub ledger: PathBuf,
    /// The state as of this event (its `seq`).
    #[arg(long, value_name = "SEQ", conflicts_with_all = ["check", "against"])]
    pub until: Option<u64>,
    /// Print this node's full recorded output, raw (text as is, other values as JSON; all
    /// JSON with `--format json`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["check", "against"])]
    pub node: Option<String>,
    /// Re-drive the embedded workflow on the recorded results (no tool runs) and require the
    /// regenerated ledger to be byte-identical.
    #[arg(long, conflicts_with = "against")]
    pub check: bool,
    /// Re-drive this (changed) workflow on the recorded results and report the first
    /// divergence from the recorded run.
    #[arg(long, value_name = "WORKFLOW")]
    pub against: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// At most this many rows in the state table.
const TABLE_ROWS: usize = 200;

pub fn run(args: &Args) -> i32 {
    if args.check || args.against.is_some() {
        return redrive(args);
    }
    let mut r = match reader::open(&args.ledger) {
        Ok(r) => r,
        Err(e) => return read_error(e),
    };
    let state = match state::rebuild(&mut r, args.until) {
        Ok(s) => s,
        Err(e) => return read_error(e),
    };
    if let Some(id) = &args.node {
        return print_node(&state, id, args.format);
    }
    if args.format == OutputFormat::Json {
        super::print_json(&state);
        return exit::SUCCESS;
    }
    outln!(
        "workflow {} (sha256 {}), seed {}",
        state.workflow,
        &state.workflow_sha256.get(..12).unwrap_or_default(),
        state.seed
    );
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["node", "status", "attempts", "output"]);
    for n in state.nodes.iter().take(TABLE_ROWS) {
        let detail = n
            .error
            .as_deref()
            .or(n.reason.as_deref())
            .map(str::to_string)
            .unwrap_or_else(|| short(&n.output));
        table.add_row([
            &*printable(&n.node),
            n.status,
            &n.attempts.to_string(),
            &printable(&detail),
        ]);
    }
    outln!("{table}");
    if state.nodes.len() > TABLE_ROWS {
        outln!(
            "... and {} more nodes (--format json lists them all)",
            state.nodes.len() - TABLE_ROWS
        );
    }
    for d in &state.decisions {
        outln!("branch {} took {} (seq {})", d.node, d.arm, d.seq);
    }
    if let Value::Object(outputs) = &state.outputs {
        for (name, value) in outputs {
            outln!(
                "output {name}: {}",
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string)
            );
        }
    }
    outln!(
        "run {} after {} events, clock {}",
        state.status,
        state.events,
        state.clock
    );
    if !state.pending_approvals.is_empty() {
        outln!(
            "waiting for approval: {}",
            state.pending_approvals.join(", ")
        );
    }
    exit::SUCCESS
}

fn read_error(e: reader::ReadError) -> i32 {
    let code = e.exit_code();
    super::report_error(e);
    code
}

fn short(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let first = text.lines().next().unwrap_or_default();
    let mut s: String = first.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// `--node ID`: the output as is (text raw, other values as JSON), or with `--format json`
/// always as JSON (text quoted).
fn print_node(state: &state::RunState, id: &str, format: OutputFormat) -> i32 {
    let value = match state.get(id) {
        Some(n) if !n.output.is_null() || instances(state, id).next().is_none() => n.output.clone(),
        _ => {
            let outputs: Vec<Value> = instances(state, id).map(|n| n.output.clone()).collect();
            if outputs.is_empty() {
                errln!(
                    "error: the ledger has no node `{id}`{}",
                    if state.status == "incomplete" {
                        " (up to where it was read)"
                    } else {
                        ""
                    }
                );
                return exit::BAD_INPUT;
            }
            Value::Array(outputs)
        }
    };
    // Raw by design: this is how a node's output is taken out of a ledger as it was.
    match (format, value) {
        (OutputFormat::Table, Value::String(s)) => super::print::raw(&s),
        (OutputFormat::Table, other) => super::print::raw(&format!("{other}\n")),
        (OutputFormat::Json, value) => super::print_json(&value),
    }
    exit::SUCCESS
}

/// The `for_each` instances `id[0]`, `id[1]`, ... of `id`, in order.
fn instances<'a>(
    state: &'a state::RunState,
    id: &'a str,
) -> impl Iterator<Item = &'a state::NodeState> + 'a {
    (0..).map_while(move |k| state.get(InstanceId::item(id, k).as_str()))
}

fn redrive(args: &Args) -> i32 {
    let changed = match &args.against {
        Some(path) => match super::load_workflow(path) {
            Ok(w) => Some(w),
            Err(code) => return code,
        },
        None => None,
    };
    let outcome = match redrive::redrive(&args.ledger, changed.as_ref()) {
        Ok(o) => o,
        Err(ReplayError::Read(e)) => return read_error(e),
        Err(ReplayError::EmbeddedWorkflow(d)) => {
            let mut out = String::new();
            d.render(&mut out);
            super::print::err_raw(&out);
            errln!(
                "error: the workflow embedded in {} does not validate",
                args.ledger.display()
            );
            return exit::BAD_INPUT;
        }
        Err(e) => {
            super::report_error(e);
            return exit::BAD_INPUT;
        }
    };
    let code = if outcome.first_difference.is_none() {
        exit::SUCCESS
    } else {
        exit::NEGATIVE
    };
    if args.format == OutputFormat::Json {
        let doc = serde_json::json!({ "matches": code == exit::SUCCESS, "mode": if args.check { "check" } else { "against" }, "outcome": outcome });
        super::print_json(&doc);
        return code;
    }
    match &outcome.first_difference {
        None if args.check => outln!("replay matches ({} events)", outcome.events),
        None => outln!(
            "no divergence: the workflow behaves as recorded ({} events re-driven, no tool run)",
            outcome.events
        ),
        Some(d) => {
            outln!("replay diverges at seq {}: {}", d.seq, d.explanation);
            if let Some(div) = &d.divergence {
                match &div.recorded {
                    Some(rec) => outln!("  recorded input: {rec}"),
                    None => outln!("  recorded input: (no recorded call)"),
                }
                outln!("  asked input:    {}", div.asked);
                if let Some(rec) = &div.recorded {
                    request_changes(rec, &div.asked);
                }
            }
            if let Some(r) = &d.recorded {
                outln!("  recorded: {}", reader::body(r));
            }
            if let Some(r) = &d.replayed {
                outln!("  replayed: {}", reader::body(r));
            }
        }
    }
    code
}

/// What changed in a call's request, key by key, with a unified diff of each changed text (a
/// model call's messages as `role: content` lines).
fn request_changes(recorded: &serde_json::Value, asked: &serde_json::Value) {
    use crate::ledger::{calls, diff};
    for (key, a, b) in calls::changed_keys(recorded, asked) {
        let name = if key.is_empty() {
            "input"
        } else {
            key.as_str()
        };
        outln!("  changed `{name}`:");
        let text = diff::unified(a.as_deref().unwrap_or(""), b.as_deref().unwrap_or(""));
        for line in text.iter().flat_map(|t| t.lines()).skip(2) {
            outln!("    {line}");
        }
    }
}
