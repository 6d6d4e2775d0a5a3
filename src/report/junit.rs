//! `kairos run --junit FILE`: a run as a JUnit XML report, for the test reporters of CI
//! systems (GitLab's `artifacts: reports: junit`, Jenkins, GitHub test-report actions).
//!
//! The report is read back from the ledger, so it says what the run committed and nothing
//! else, in commit order: the same run gives the same report at any `--jobs`. Its shape:
//!
//! - one `<testsuites>` holding one `<testsuite>` named after the workflow, with the run's
//!   seed, digests and status as `<properties>`;
//! - one `<testcase>` per node instance (`classname` the workflow, `name` the node id, or
//!   `id[k]` for each `for_each` item; a fan-out node without items is a case of its own);
//! - a failed node holds a `<failure>` with its error and the tail of its stderr; a skipped
//!   node a `<skipped>` with the reason; a node the policy denied a `<skipped>` whose message
//!   is `denied: REASON_CODE`; an approval the run paused at a `<skipped>` saying so.
//!
//! `time` is the only thing that does not come from the ledger: when the run was observed
//! (see `report::trace`), a case's time is that of its calls, else 0.
//!
//! Text is escaped for XML 1.0, which cannot hold most control characters at all, not even
//! as character references: those are written as their Unicode control pictures (`␛` for
//! ESC), so a tool's coloured stderr cannot make the file unreadable.

use crate::ledger::event::{Event, PauseReason, Status};
use crate::ledger::reader::{ReadError, Reader};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::time::Duration;

/// At most this many of the last lines of stderr go into a failure.
const TAIL_LINES: usize = 40;
/// ... and at most this many bytes of them.
const TAIL_BYTES: usize = 8 * 1024;

/// What a test case reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed {
        /// `failed` (the tool or a step before it failed) or `rejected` (an approval).
        kind: &'static str,
        message: String,
        /// The message and the tail of stderr.
        detail: String,
    },
    Skipped {
        message: String,
        detail: Option<String>,
    },
}

/// One node instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub verdict: Verdict,
}

/// A run read back from its ledger, as test cases.
#[derive(Debug, Default)]
pub struct Suite {
    pub workflow: String,
    pub properties: Vec<(&'static str, String)>,
    pub cases: Vec<Case>,
}

/// What is known of a node between its first event and its `End` (or `Skipped`).
#[derive(Default)]
struct Open {
    /// A fan-out node's `Start` (its instances are cases of their own).
    fan_out: bool,
    /// An `Error` event: the node could not run.
    error: Option<String>,
    /// The last attempt's stderr (and the stream's full size when the ledger kept a part).
    stderr: Option<(String, Option<u64>)>,
    /// An enforced denial: reason code and detail.
    denial: Option<(String, String)>,
}

impl Suite {
    /// Reads a ledger through `reader` (which checks its chain as it goes).
    pub fn read(mut reader: Reader<impl BufRead>) -> Result<Self, ReadError> {
        let mut suite = Suite::default();
        let mut open: HashMap<String, Open> = HashMap::new();
        let mut status = "incomplete".to_string();
        while let Some(line) = reader.next_line()? {
            let event = line.event()?;
            match event {
                Event::RunStart(e) => {
                    suite.workflow = e.workflow.into_owned();
                    suite.properties = vec![
                        ("kairos.workflow", suite.workflow.clone()),
                        ("kairos.workflow_sha256", e.workflow_sha256.into_owned()),
                        ("kairos.seed", e.seed.to_string()),
                        ("kairos.version", e.kairos_version.into_owned()),
                    ];
                }
                Event::Start(e) => {
                    entry(&mut open, &e.node).fan_out = e.for_each.is_some();
                }
                Event::ToolOutput(e) => {
                    let o = entry(&mut open, &e.node);
                    o.stderr = e.stderr.map(|s| (s.into_owned(), e.stderr_bytes));
                }
                Event::Error { node, message } => {
                    entry(&mut open, &node).error = Some(message.into_owned());
                }
                Event::PolicyDeny(e) if e.enforced => {
                    entry(&mut open, &e.node).denial =
                        Some((e.reason.into_owned(), e.detail.into_owned()));
                }
                Event::CallLimitExceeded(e) if e.enforced => {
                    let detail = format!("`max_calls` allows {} for `{}`", e.limit, e.key);
                    entry(&mut open, &e.node).denial = Some((e.reason.into_owned(), detail));
                }
                Event::Skipped { node, reason } => {
                    open.remove(node.as_ref());
                    suite.cases.push(Case {
                        name: node.into_owned(),
                        verdict: Verdict::Skipped {
                            message: reason.into_owned(),
                            detail: None,
                        },
                    });
                }
                Event::End(e) => {
                    let o = open.remove(e.node.as_ref()).unwrap_or_default();
                    if o.fan_out && e.instances.unwrap_or(0) > 0 {
                        continue;
                    }
                    let verdict = match e.status {
                        Status::Succeeded => Verdict::Passed,
                        Status::Skipped => Verdict::Skipped {
                            message: "skipped".into(),
                            detail: None,
                        },
                        Status::Denied => {
                            let (code, detail) = o.denial.unwrap_or_default();
                            Verdict::Skipped {
                                message: format!("denied: {code}"),
                                detail: Some(detail).filter(|d| !d.is_empty()),
                            }
                        }
                        Status::Failed => {
                            let message = e
                                .error
                                .map(|e| e.into_owned())
                                .or(o.error)
                                .unwrap_or_else(|| "failed".into());
                            let kind = if message.starts_with("rejected") {
                                "rejected"
                            } else {
                                "failed"
                            };
                            let detail = failure_detail(&message, o.stderr);
                            Verdict::Failed {
                                kind,
                                message,
                                detail,
                            }
                        }
                    };
                    suite.cases.push(Case {
                        name: e.node.into_owned(),
                        verdict,
                    });
                }
                Event::RunPaused(e) => {
                    status = format!("paused ({})", e.reason.name());
                    if e.reason == PauseReason::Approval {
                        for node in e.pending {
                            suite.cases.push(Case {
                                name: node.into_owned(),
                                verdict: Verdict::Skipped {
                                    message: "waiting for approval: the run paused".into(),
                                    detail: None,
                                },
                            });
                        }
                    }
                }
                Event::RunEnd(e) => status = e.status.name().to_string(),
                _ => {}
            }
        }
        suite.properties.push(("kairos.status", status));
        suite
            .properties
            .push(("kairos.ledger_head", reader.head().to_string()));
        Ok(suite)
    }

    /// The report as XML. `times`: per node instance, the time its calls took (cases not in
    /// it take 0).
    pub fn to_xml(&self, times: &HashMap<String, Duration>) -> String {
        let time = |c: &Case| times.get(&c.name).map_or(0.0, Duration::as_secs_f64);
        let total: f64 = self.cases.iter().map(time).sum();
        let failures = self
            .cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Failed { .. }))
            .count();
        let skipped = self
            .cases
            .iter()
            .filter(|c| matches!(c.verdict, Verdict::Skipped { .. }))
            .count();
        let counts = format!(
            "tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\"",
            self.cases.len()
        );
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let name = attr(&self.workflow);
        let _ = writeln!(x, "<testsuites name=\"kairos run {name}\" {counts}>");
        let _ = writeln!(x, "  <testsuite name=\"{name}\" {counts}>");
        x.push_str("    <properties>\n");
        for (key, value) in &self.properties {
            let _ = writeln!(
                x,
                "      <property name=\"{key}\" value=\"{}\"/>",
                attr(value)
            );
        }
        x.push_str("    </properties>\n");
        for case in &self.cases {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{name}\" time=\"{:.3}\"",
                attr(&case.name),
                time(case)
            );
            match &case.verdict {
                Verdict::Passed => x.push_str("/>\n"),
                Verdict::Failed {
                    kind,
                    message,
                    detail,
                } => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n    </testcase>",
                        attr(message),
                        text(detail)
                    );
                }
                Verdict::Skipped { message, detail } => {
                    let _ = write!(x, ">\n      <skipped message=\"{}\"", attr(message));
                    match detail {
                        Some(d) => {
                            let _ = write!(x, ">{}</skipped>", text(d));
                        }
                        None => x.push_str("/>"),
                    }
                    x.push_str("\n    </testcase>\n");
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

/// What is known of `node` so far.
fn entry<'m>(open: &'m mut HashMap<String, Open>, node: &str) -> &'m mut Open {
    if !open.contains_key(node) {
        open.insert(node.to_string(), Open::default());
    }
    open.get_mut(node).expect("inserted above")
}

/// A failure's text: the message (for a command, `exit code N`) and the last lines of
/// stderr.
fn failure_detail(message: &str, stderr: Option<(String, Option<u64>)>) -> String {
    let mut out = message.to_string();
    let Some((stderr, full)) = stderr.filter(|(s, _)| !s.trim().is_empty()) else {
        return out;
    };
    let lines: Vec<&str> = stderr.trim_end_matches('\n').lines().collect();
    let mut start = lines.len().saturating_sub(TAIL_LINES);
    while start < lines.len()
        && lines[start..].iter().map(|l| l.len() + 1).sum::<usize>() > TAIL_BYTES
    {
        start += 1;
    }
    let shown = &lines[start..];
    let _ = write!(out, "\n\nstderr");
    if start > 0 {
        let _ = write!(out, " (last {} of {} lines)", shown.len(), lines.len());
    }
    if let Some(bytes) = full {
        let _ = write!(out, " (the ledger keeps the first part of {bytes} bytes)");
    }
    out.push_str(":\n");
    out.push_str(&shown.join("\n"));
    // A single line longer than the limit: its end.
    if shown.is_empty()
        && let Some(last) = lines.last()
    {
        let mut cut = last.len().saturating_sub(TAIL_BYTES);
        while !last.is_char_boundary(cut) {
            cut += 1;
        }
        out.push_str(&last[cut..]);
    }
    out
}

/// `s` escaped for an attribute value in double quotes: whitespace other than spaces is kept
/// as character references (a parser would turn it into spaces).
fn attr(s: &str) -> String {
    escape(s, true)
}

/// `s` escaped for element content.
fn text(s: &str) -> String {
    escape(s, false)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            // A parser turns a carriage return into a line feed unless it is a reference.
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            // Not allowed in XML 1.0 in any form: shown as its control picture.
            '\0'..='\x1f' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}')),
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_break_the_file() {
        assert_eq!(
            text("a\x1b[31mred\x1b[0m & <b>\r\n\tz\0"),
            "a␛[31mred␛[0m &amp; &lt;b&gt;&#13;\n\tz␀"
        );
        assert_eq!(attr("say \"hi\"\n\tnow"), "say &quot;hi&quot;&#10;&#9;now");
        assert_eq!(text("\u{FFFE}\u{FFFF}é"), "\u{FFFD}\u{FFFD}é");
    }

    #[test]
    fn a_failure_keeps_the_tail_of_stderr() {
        let stderr: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let d = failure_detail("exit code 2", Some((stderr, None)));
        assert!(
            d.starts_with("exit code 2\n\nstderr (last 40 of 100 lines):\nline 61\n"),
            "{d}"
        );
        assert!(d.ends_with("line 100"), "{d}");
        let d = failure_detail("boom", Some(("x".repeat(20_000), None)));
        assert!(d.len() < TAIL_BYTES + 100, "{}", d.len());
        assert!(d.ends_with("xxx"));
        assert_eq!(failure_detail("boom", Some(("\n".into(), None))), "boom");
    }

    fn suite(yaml: &str, args: &[(&str, &str)]) -> Suite {
        let wf = crate::workflow::load_str("wf.yaml", yaml).expect("valid workflow");
        let policy = crate::policy::effective::Effective::new(crate::plan::layers(&wf, None));
        let inputs = crate::plan::resolve_inputs(&wf, &[]).unwrap();
        let options = crate::engine::RunOptions {
            approvals: args
                .iter()
                .map(|(id, d)| {
                    (
                        id.to_string(),
                        crate::engine::ApprovalDecision {
                            approve: *d == "approve",
                            approver: None,
                            reason: Some("no".into()),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        };
        let memory = crate::ledger::writer::Memory::default();
        crate::engine::run_to(
            &wf,
            &options,
            &policy,
            &inputs,
            memory.clone(),
            &crate::engine::Live,
        )
        .unwrap();
        let bytes = memory.take();
        Suite::read(Reader::new(bytes.as_slice(), "l.jsonl")).unwrap()
    }

    #[test]
    fn one_case_per_node_instance_in_commit_order() {
        let s = suite(
            "version: 1
name: cases
policy: { preset: permissive, deny: [fs_write] }
nodes:
  - id: ok
    tool: echo
    with: { message: hi }
  - id: each
    for_each: [1, 2]
    tool: assert
    with: { that: 'item == 1', message: 'not one' }
  - id: after
    needs: [each]
    tool: noop
  - id: none
    for_each: []
    tool: noop
  - id: gate
    approval: { prompt: go? }
",
            &[("gate", "reject")],
        );
        assert_eq!(s.workflow, "cases");
        let names: Vec<&str> = s.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ok", "each[0]", "each[1]", "after", "none", "gate"]);
        assert_eq!(s.cases[0].verdict, Verdict::Passed);
        assert!(
            matches!(&s.cases[2].verdict, Verdict::Failed { kind: "failed", message, .. } if message == "assertion failed: not one"),
            "{:?}",
            s.cases[2]
        );
        assert!(
            matches!(&s.cases[3].verdict, Verdict::Skipped { message, .. } if message == "`each` failed")
        );
        assert_eq!(s.cases[4].verdict, Verdict::Passed);
        assert!(matches!(
            &s.cases[5].verdict,
            Verdict::Failed {
                kind: "rejected",
                ..
            }
        ));
        let status = s.properties.iter().find(|(k, _)| *k == "kairos.status");
        assert_eq!(status.unwrap().1, "failed");
        let xml = s.to_xml(&HashMap::from([("ok".into(), Duration::from_millis(1500))]));
        assert!(xml.contains(
            "<testsuite name=\"cases\" tests=\"6\" failures=\"2\" errors=\"0\" skipped=\"1\" time=\"1.500\">"
        ), "{xml}");
        assert!(
            xml.contains("<testcase name=\"ok\" classname=\"cases\" time=\"1.500\"/>"),
            "{xml}"
        );
    }

    #[test]
    fn a_paused_approval_is_skipped_and_the_status_says_why() {
        let s = suite(
            "version: 1
name: paused
nodes:
  - id: ship
    approval: { prompt: ship? }
",
            &[],
        );
        assert_eq!(
            s.cases,
            [Case {
                name: "ship".into(),
                verdict: Verdict::Skipped {
                    message: "waiting for approval: the run paused".into(),
                    detail: None
                }
            }]
        );
        let status = s.properties.iter().find(|(k, _)| *k == "kairos.status");
        assert_eq!(status.unwrap().1, "paused (approval)");
    }
}
