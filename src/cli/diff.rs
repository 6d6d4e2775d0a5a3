//! `kairos diff A.jsonl B.jsonl`: where and how two ledgers differ.
//!
//! Exit 0 when the ledgers are equivalent (byte-identical, or the same events), 1 when they
//! differ; a ledger that cannot be read or is not one is reported as a diagnostic naming the
//! file and line, with exit 2 (1 for a broken chain or sequence), as `docs/exit-codes.md` says. The
//! comparison rules are those of [`crate::ledger::diff`].
//!
//! Table output (for people): one status line (`ledgers are identical (N events)`, `ledgers
//! are equivalent (N events): ...` or `ledgers differ`); for differing ledgers, the two files
//! and their event counts, a table `run | A | B` of the run differences (`RunStart` fields
//! first), a table `node | field | A | B` (the nodes of about the first 200 rows, then `... and
//! N more nodes differ`), the first divergent seq with both events, then the unified diffs
//! (at most 200 lines each). Values are cut to one line of 60 characters in the tables and
//! digests to 12 hex digits; `(none)` is a value the ledger does not have, `(not in A)`/`(not
//! in B)` marks a node only one ledger has. A rendered `input` that fits in its cells gets no
//! diff in the table. `--format json` has everything, whole.
//!
//! JSON output (for machines), one object, keys in this order:
//!
//! ```json
//! {
//!   "identical": false,
//!   "equivalent": false,
//!   "a": {"path": "a.jsonl", "events": 12, "head": "<sha256>", "kairos_version": "0.1.0"},
//!   "b": {"path": "b.jsonl", "events": 12, "head": "<sha256>", "kairos_version": "0.1.0"},
//!   "first_divergent_seq": 0,
//!   "first_divergence": {"seq": 3, "a": {"event": "ToolOutput", ...}, "b": {...}},
//!   "run": [{"field": "seed", "a": 1, "b": 2, "diff": null}],
//!   "nodes": [{"node": "r", "only_in": null,
//!              "differences": [{"field": "output", "a": 3, "b": 7, "diff": null}]}]
//! }
//! ```
//!
//! `head` is the SHA-256 of the ledger's last line. `first_divergent_seq` is the first line
//! whose events differ (0 when a `RunStart` field does); `first_divergence` is the first line
//! after `RunStart` whose events differ, with both events as objects (an event is `null`
//! where that ledger had ended). Both are `null` for equivalent ledgers; `first_divergence`
//! is also `null` when only `RunStart` differs. `a`/`b` of a difference are `null` where that
//! ledger has no such value; `diff` is a unified diff (`--- A`, `+++ B`) or `null`; `only_in`
//! is `"a"`, `"b"` or `null`. Nothing is printed on stdout when a ledger cannot be read.

use super::OutputFormat;
use crate::exit;
use crate::ledger::diff::{self, Comparison, Difference};
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first ledger.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second ledger.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// At most this many rows in the node table; `--format json` has them all.
const TABLE_ROWS: usize = 200;
/// At most this many characters of a value in a table cell.
const CELL_CHARS: usize = 60;
/// At most this many characters of an event shown as the first divergence.
const EVENT_CHARS: usize = 300;
/// At most this many lines of one unified diff in the table output.
const DIFF_LINES: usize = 200;

pub fn run(args: &Args) -> i32 {
    // The table shows the first nodes only: the comparison need not keep the others.
    let max_nodes = match args.format {
        OutputFormat::Table => TABLE_ROWS,
        OutputFormat::Json => usize::MAX,
    };
    let comparison = match diff::compare_limited(&args.a, &args.b, max_nodes) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            super::report_error(e);
            return code;
        }
    };
    // Through `print`: the table escaped for a terminal, JSON as it is; a closed or full stdout
    // is handled there.
    match args.format {
        OutputFormat::Json => {
            let mut text = serde_json::to_string_pretty(&Report(&comparison)).unwrap_or_default();
            text.push('\n');
            super::print::raw(&text);
        }
        OutputFormat::Table => super::print::people(&to_table(&comparison)),
    }
    if comparison.equivalent() {
        exit::SUCCESS
    } else {
        exit::NEGATIVE
    }
}

/// The JSON report, serialized as it is written (unified diffs are computed one at a time).
struct Report<'a>(&'a Comparison);

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_struct("Report", 9)?;
        m.serialize_field("identical", &c.identical)?;
        m.serialize_field("equivalent", &c.equivalent())?;
        m.serialize_field("a", &Ledger(&c.a))?;
        m.serialize_field("b", &Ledger(&c.b))?;
        m.serialize_field("first_divergent_seq", &c.first_divergent_seq)?;
        let divergence = c
            .first_divergence
            .as_ref()
            .map(|d| json!({"seq": d.seq, "a": event(d.a.as_deref()), "b": event(d.b.as_deref())}));
        m.serialize_field("first_divergence", &divergence)?;
        m.serialize_field("run", &Differences(&c.run))?;
        m.serialize_field("nodes", &Nodes(&c.nodes))?;
        m.end()
    }
}

/// An event body as a JSON object (text that is not one stays text).
fn event(body: Option<&str>) -> Option<Value> {
    body.map(|b| {
        let text = format!("{{{b}}}");
        serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
    })
}

struct Ledger<'a>(&'a diff::LedgerInfo);

impl Serialize for Ledger<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_struct("Ledger", 4)?;
        m.serialize_field("path", &l.path)?;
        m.serialize_field("events", &l.events)?;
        m.serialize_field("head", &l.head)?;
        m.serialize_field("kairos_version", &l.kairos_version)?;
        m.end()
    }
}

struct Nodes<'a>(&'a [diff::NodeDiff]);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for n in self.0 {
            seq.serialize_element(&Node(n))?;
        }
        seq.end()
    }
}

struct Node<'a>(&'a diff::NodeDiff);

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0;
        let mut m = s.serialize_struct("Node", 3)?;
        m.serialize_field("node", &n.node)?;
        m.serialize_field("only_in", &n.only_in.map(|w| w.name()))?;
        m.serialize_field("differences", &Differences(&n.differences))?;
        m.end()
    }
}

struct Differences<'a>(&'a [Difference]);

impl Serialize for Differences<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for d in self.0 {
            seq.serialize_element(&DifferenceJson(d))?;
        }
        seq.end()
    }
}

struct DifferenceJson<'a>(&'a Difference);

impl Serialize for DifferenceJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_struct("Difference", 4)?;
        m.serialize_field("field", &d.field)?;
        m.serialize_field("a", &d.a)?;
        m.serialize_field("b", &d.b)?;
        m.serialize_field("diff", &d.diff())?;
        m.end()
    }
}

/// The table output, for people: the status line, then each section in turn.
fn to_table(c: &Comparison) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let o = &mut out;
    let versions = match (&c.a.kairos_version, &c.b.kairos_version) {
        (Some(x), Some(y)) if x != y => format!(" (written by kairos {x} and {y})"),
        _ => String::new(),
    };
    if c.identical {
        let _ = writeln!(o, "ledgers are identical ({} events)", c.a.events);
        return out;
    }
    if c.equivalent() {
        let _ = writeln!(
            o,
            "ledgers are equivalent ({} events): the same events, not the same bytes{versions}",
            c.a.events
        );
        return out;
    }
    let _ = writeln!(o, "ledgers differ{versions}");
    let _ = writeln!(o, "A: {} ({} events)", c.a.path, c.a.events);
    let _ = writeln!(o, "B: {} ({} events)", c.b.path, c.b.events);

    // Unified diffs come after the tables, in the order of their rows.
    let mut diffs: Vec<(String, &Difference)> = Vec::new();
    if !c.run.is_empty() {
        run_table(o, &c.run, &mut diffs);
    }
    if !c.nodes.is_empty() {
        node_table(o, c, &mut diffs);
    }
    first_divergence(o, c);
    unified_diffs(o, diffs);
    out
}

/// The table `run | A | B` of the run differences; adds those with a unified diff to `diffs`.
fn run_table<'c>(o: &mut String, run: &'c [Difference], diffs: &mut Vec<(String, &'c Difference)>) {
    let mut table = new_table(&["run", "A", "B"]);
    for d in run {
        table.add_row([
            d.field.clone(),
            cell(&d.field, d.a.as_ref()),
            cell(&d.field, d.b.as_ref()),
        ]);
        if d.has_diff() {
            let title = match d.field.as_str() {
                "workflow_sha256" => "workflow source".to_string(),
                "policy_sha256" => "policy".to_string(),
                field => format!("run {field}"),
            };
            diffs.push((title, d));
        }
    }
    let _ = writeln!(o, "{table}");
}

/// The table `node | field | A | B` of the first nodes that differ, and how many more do;
/// adds the differences with a unified diff to `diffs`.
fn node_table<'c>(o: &mut String, c: &'c Comparison, diffs: &mut Vec<(String, &'c Difference)>) {
    let mut table = new_table(&["node", "field", "A", "B"]);
    let (mut rows, mut shown) = (0, 0u64);
    for n in &c.nodes {
        if rows >= TABLE_ROWS {
            break;
        }
        shown += 1;
        let absent = match n.only_in {
            Some(diff::Which::A) => "(not in B)",
            Some(diff::Which::B) => "(not in A)",
            None => "(none)",
        };
        for d in &n.differences {
            rows += 1;
            let show = |v: Option<&Value>| match v {
                None => absent.to_string(),
                v => cell(&d.field, v),
            };
            table.add_row([
                n.node.clone(),
                d.field.clone(),
                show(d.a.as_ref()),
                show(d.b.as_ref()),
            ]);
            // A rendered input that fits in its cells needs no diff to be read.
            let fits = |v: Option<&Value>| !cell(&d.field, v).ends_with('…');
            let whole = d.field == "input" && fits(d.a.as_ref()) && fits(d.b.as_ref());
            if d.has_diff() && !whole {
                diffs.push((format!("node {} {}", n.node, d.field), d));
            }
        }
    }
    let _ = writeln!(o, "{table}");
    if c.nodes_differing > shown {
        let _ = writeln!(
            o,
            "... and {} more nodes differ (--format json lists them all)",
            c.nodes_differing - shown
        );
    }
}

/// The first divergent seq, and the first divergent events after `RunStart`.
fn first_divergence(o: &mut String, c: &Comparison) {
    if c.first_divergent_seq == Some(0) {
        let _ = writeln!(
            o,
            "first divergent seq: 0 (RunStart, see the run differences)"
        );
    }
    match &c.first_divergence {
        Some(d) if c.first_divergent_seq == Some(0) => {
            let _ = writeln!(o, "first divergent event after RunStart: seq {}", d.seq);
        }
        Some(d) => {
            let _ = writeln!(o, "first divergent seq: {}", d.seq);
        }
        None if c.first_divergent_seq.is_some() => {
            let _ = writeln!(o, "the events after RunStart are the same");
        }
        None => {}
    }
    if let Some(d) = &c.first_divergence {
        for (name, body) in [("A", &d.a), ("B", &d.b)] {
            let text = match body {
                Some(b) => cut(&format!("{{{b}}}"), EVENT_CHARS),
                None => "(the ledger has ended)".to_string(),
            };
            let _ = writeln!(o, "  {name}: {text}");
        }
    }
}

/// The unified diffs under their titles, each cut to [`DIFF_LINES`] lines.
fn unified_diffs(o: &mut String, diffs: Vec<(String, &Difference)>) {
    for (title, d) in diffs {
        let Some(text) = d.diff() else { continue };
        let _ = writeln!(o, "\n{title}:");
        let lines = text.lines().count();
        for line in text.lines().take(DIFF_LINES) {
            let _ = writeln!(o, "{line}");
        }
        if lines > DIFF_LINES {
            let _ = writeln!(
                o,
                "... {} more lines (--format json has the whole diff)",
                lines - DIFF_LINES
            );
        }
    }
}

fn new_table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(header.to_vec());
    table
}

/// A value for a table cell: its first line, cut to fit; a digest shortened.
fn cell(field: &str, value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(none)".into();
    };
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if field.ends_with("sha256") && text.len() == 64 && text.is_ascii() {
        return format!("{}…", &text[..12]);
    }
    if text.is_empty() {
        return "\"\"".into();
    }
    let first = text.lines().next().unwrap_or_default();
    let mut s = cut(first, CELL_CHARS);
    if first.len() < text.len() && !s.ends_with('…') {
        s.push('…');
    }
    if s.is_empty() {
        s.push('…');
    }
    // Escaped here, before the table is laid out, so that columns line up.
    crate::printable::printable(&s).into_owned()
}

/// `text` cut to at most `max` characters, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
