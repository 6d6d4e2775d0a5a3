//! `kairos diff`: equivalent and differing ledger pairs made by real runs, the table and JSON
//! reports, and every kind of damaged input.

use crate::common::{Output, Test, rechain};
use serde_json::Value;
use std::path::Path;

/// Writes `yaml` next to the ledger and runs it into `ledger` (in `dir`) with `args`.
fn record(dir: &Path, yaml: &str, ledger: &str, args: &[&str]) {
    let wf = format!("{ledger}.yaml");
    std::fs::write(dir.join(&wf), yaml).unwrap();
    let out = Test::new()
        .args(["run", wf.as_str(), "-q", "--ledger", ledger])
        .args(args)
        .run_in(dir);
    assert!(
        out.code == 0 || out.code == 1,
        "run failed:\n{}",
        out.stderr
    );
}

fn kairos(dir: &Path, args: &[&str]) -> Output {
    Test::new().args(args).run_in(dir)
}

fn diff_json(dir: &Path, a: &str, b: &str, code: i32) -> Value {
    kairos(dir, &["diff", a, b, "--format", "json"])
        .code(code)
        .json()
}

fn lines(dir: &Path, ledger: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(ledger))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The 0-based line of the first event of `kind` for `node`.
fn seq_of(dir: &Path, ledger: &str, kind: &str, node: &str) -> u64 {
    lines(dir, ledger)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == kind && e["node"] == node)
        .unwrap_or_else(|| panic!("no {kind} of {node} in {ledger}"))["seq"]
        .as_u64()
        .unwrap()
}

/// The fields of one node's differences in a JSON report.
fn fields(doc: &Value, node: &str) -> Vec<String> {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("node {node} not reported: {doc:#}"))["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}

fn difference<'a>(doc: &'a Value, node: &str, field: &str) -> &'a Value {
    doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .and_then(|n| {
            n["differences"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["field"] == field)
        })
        .unwrap_or_else(|| panic!("no {field} difference of {node}: {doc:#}"))
}

fn run_fields(doc: &Value) -> Vec<String> {
    doc["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}

const FLOW: &str = "version: 1
name: flow
seed: 1
inputs:
  who: { default: alice }
  go: { default: true }
policy: { preset: permissive }
nodes:
  - id: greet
    run: echo hello {{ inputs.who }}
  - id: r
    tool: random
    with: { int: [1, 1000000000] }
  - id: pick
    branch: { if: \"inputs.go\", then: [yes], else: [no] }
  - id: yes
    tool: echo
    with: { message: went }
  - id: no
    tool: echo
    with: { message: stayed }
  - id: each
    for_each: [1, 2]
    tool: template
    with: { text: \"{{ item }}\" }
outputs:
  said: \"{{ nodes.greet.output }}\"
";

#[test]
fn identical_ledgers_are_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "a.jsonl", &[]);
    record(d, FLOW, "b.jsonl", &[]);
    let n = lines(d, "a.jsonl").len();
    kairos(d, &["diff", "a.jsonl", "b.jsonl"])
        .code(0)
        .stdout_contains(&format!("ledgers are identical ({n} events)"));
    let doc = diff_json(d, "a.jsonl", "b.jsonl", 0);
    assert_eq!(doc["identical"], true);
    assert_eq!(doc["equivalent"], true);
    assert_eq!(doc["a"]["events"], n);
    assert_eq!(doc["b"]["events"], n);
    assert_eq!(doc["a"]["head"], doc["b"]["head"]);
    assert_eq!(doc["first_divergent_seq"], Value::Null);
    assert_eq!(doc["run"], serde_json::json!([]));
    assert_eq!(doc["nodes"], serde_json::json!([]));
    // A ledger compared with itself.
    kairos(d, &["diff", "a.jsonl", "a.jsonl"]).code(0);
}

#[test]
fn a_different_seed_is_reported_first_then_the_random_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "a.jsonl", &["--seed", "1"]);
    record(d, FLOW, "b.jsonl", &["--seed", "2"]);
    let out = kairos(d, &["diff", "a.jsonl", "b.jsonl"]).code(1);
    let text = &out.stdout;
    assert!(text.starts_with("ledgers differ\n"), "{text}");
    let seed = text.find("│ seed ").expect("seed row");
    let node = text.find("│ r ").expect("row of node r");
    assert!(seed < node, "the seed comes before the nodes:\n{text}");
    assert!(text.contains("first divergent seq: 0 (RunStart"), "{text}");

    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["equivalent"], false);
    assert_eq!(run_fields(&doc), ["seed"]);
    assert_eq!(doc["run"][0]["a"], 1);
    assert_eq!(doc["run"][0]["b"], 2);
    assert_eq!(doc["first_divergent_seq"], 0);
    // Only the random node differs; the first event after RunStart that differs is its output.
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(fields(&doc, "r"), ["output"]);
    let out = difference(&doc, "r", "output");
    assert!(out["a"].is_u64() && out["b"].is_u64() && out["a"] != out["b"]);
    assert_eq!(out["diff"], Value::Null, "numbers get no line diff");
    let seq = seq_of(d, "a.jsonl", "ToolOutput", "r");
    let div = &doc["first_divergence"];
    assert_eq!(div["seq"], seq);
    assert_eq!(div["a"]["event"], "ToolOutput");
    assert_eq!(div["a"]["node"], "r");
    assert_eq!(div["b"]["output"], out["b"]);
}

#[test]
fn a_different_shell_output_shows_the_input_digest_and_a_unified_diff() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "a.jsonl", &["--input", "who=alice"]);
    record(d, FLOW, "b.jsonl", &["--input", "who=bob"]);
    let out = kairos(d, &["diff", "a.jsonl", "b.jsonl"]).code(1);
    let text = &out.stdout;
    for needle in [
        "│ inputs.who ",
        "│ greet ",
        "input_sha256",
        "node greet output:\n--- A\n+++ B\n@@ -1 +1 @@\n-hello alice\n+hello bob\n",
        "run outputs.said:\n--- A\n+++ B\n",
    ] {
        assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
    }
    assert!(
        !text.contains("┆ stdout "),
        "stdout repeats output:\n{text}"
    );
    assert!(
        text.find("│ inputs.who ").unwrap() < text.find("│ greet ").unwrap(),
        "{text}"
    );

    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    assert_eq!(run_fields(&doc), ["inputs.who", "outputs.said"]);
    assert_eq!(doc["run"][0]["a"], "alice");
    assert_eq!(doc["run"][0]["b"], "bob");
    assert_eq!(doc["nodes"][0]["node"], "greet");
    assert_eq!(doc["nodes"][0]["only_in"], Value::Null);
    assert_eq!(fields(&doc, "greet"), ["input_sha256", "input", "output"]);
    let digest = difference(&doc, "greet", "input_sha256");
    assert_eq!(digest["a"].as_str().unwrap().len(), 64);
    assert_ne!(digest["a"], digest["b"]);
    assert_eq!(
        difference(&doc, "greet", "input")["b"],
        serde_json::json!({"run": "echo hello bob"})
    );
    let output = difference(&doc, "greet", "output");
    assert_eq!(output["a"], "hello alice");
    assert_eq!(output["b"], "hello bob");
    assert_eq!(
        output["diff"],
        "--- A\n+++ B\n@@ -1 +1 @@\n-hello alice\n+hello bob\n"
    );
    // The first event after RunStart that differs is the shell node's Start (its input).
    assert_eq!(doc["first_divergence"]["seq"], 1);
    assert_eq!(doc["first_divergence"]["a"]["event"], "Start");
}

#[test]
fn a_different_workflow_is_reported_first_then_its_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let edited = FLOW.replace("message: went", "message: gone").replace(
        "outputs:",
        "  - id: extra\n    needs: [greet]\n    tool: echo\n    with: { message: new }\noutputs:",
    );
    record(d, FLOW, "a.jsonl", &[]);
    record(d, &edited, "b.jsonl", &[]);
    let out = kairos(d, &["diff", "a.jsonl", "b.jsonl"]).code(1);
    let text = &out.stdout;
    let digest = text.find("│ workflow_sha256 ").expect("workflow row");
    let node = text.find("│ yes ").expect("row of node yes");
    assert!(digest < node, "{text}");
    assert!(text.contains("workflow source:\n--- A\n+++ B\n"), "{text}");
    assert!(
        text.contains("-    with: { message: went }\n+    with: { message: gone }\n"),
        "{text}"
    );
    assert!(text.contains("+  - id: extra\n"), "{text}");
    assert!(text.contains("(not in A)"), "{text}");

    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    let run = run_fields(&doc);
    assert_eq!(run[0], "workflow_sha256", "{doc:#}");
    assert!(!run.contains(&"seed".to_string()));
    let wf = &doc["run"][0];
    assert_eq!(wf["a"].as_str().unwrap().len(), 64);
    assert!(
        wf["diff"]
            .as_str()
            .unwrap()
            .contains("+    with: { message: gone }")
    );
    // Nodes in A's order, then B's own.
    let nodes: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["yes", "extra"], "{doc:#}");
    assert_eq!(difference(&doc, "yes", "output")["b"], "gone");
    let extra = &doc["nodes"][1];
    assert_eq!(extra["only_in"], "b");
    assert_eq!(fields(&doc, "extra"), ["status", "output"]);
    assert_eq!(difference(&doc, "extra", "status")["a"], Value::Null);
    assert_eq!(difference(&doc, "extra", "status")["b"], "succeeded");
    // Swapped, the extra node is only in A.
    let doc = diff_json(d, "b.jsonl", "a.jsonl", 1);
    assert_eq!(doc["nodes"][1]["only_in"], "a");
    kairos(d, &["diff", "b.jsonl", "a.jsonl"])
        .code(1)
        .stdout_contains("(not in B)");
}

#[test]
fn a_flipped_branch_shows_the_decision_and_both_arms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "a.jsonl", &["--input", "go=true"]);
    record(d, FLOW, "b.jsonl", &["--input", "go=false"]);
    let out = kairos(d, &["diff", "a.jsonl", "b.jsonl"]).code(1);
    assert!(out.stdout.contains("│ pick "), "{}", out.stdout);
    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    assert_eq!(run_fields(&doc), ["inputs.go"]);
    assert_eq!(fields(&doc, "pick"), ["branch"]);
    assert_eq!(difference(&doc, "pick", "branch")["a"], "then");
    assert_eq!(difference(&doc, "pick", "branch")["b"], "else");
    // The arm that ran on one side only is compared on its result, not its input.
    assert_eq!(fields(&doc, "yes"), ["status", "skip_reason", "output"]);
    assert_eq!(difference(&doc, "yes", "status")["a"], "succeeded");
    assert_eq!(difference(&doc, "yes", "status")["b"], "skipped");
    assert_eq!(
        difference(&doc, "yes", "skip_reason")["b"],
        "branch `pick` chose `else`"
    );
    assert_eq!(difference(&doc, "no", "status")["a"], "skipped");
    assert_eq!(difference(&doc, "no", "output")["b"], "stayed");
    let nodes: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["pick", "yes", "no"]);
    assert_eq!(
        doc["first_divergence"]["seq"],
        seq_of(d, "a.jsonl", "BranchDecision", "pick")
    );
}

#[test]
fn only_the_kairos_version_differing_is_equivalent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "a.jsonl", &[]);
    let text = std::fs::read_to_string(d.join("a.jsonl")).unwrap();
    let version = format!("\"kairos_version\":\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(text.contains(&version));
    let other = rechain(&text.replacen(&version, "\"kairos_version\":\"9.9.9\"", 1));
    std::fs::write(d.join("b.jsonl"), other).unwrap();
    kairos(d, &["diff", "a.jsonl", "b.jsonl"])
        .code(0)
        .stdout_contains("ledgers are equivalent")
        .stdout_contains("9.9.9");
    let doc = diff_json(d, "a.jsonl", "b.jsonl", 0);
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["equivalent"], true);
    assert_eq!(doc["b"]["kairos_version"], "9.9.9");
    assert_eq!(doc["first_divergent_seq"], Value::Null);
    assert_ne!(doc["a"]["head"], doc["b"]["head"]);
}

#[test]
fn a_cut_off_ledger_differs_where_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "a.jsonl", &[]);
    // A valid prefix (as a crash leaves it): the first node's events and nothing after.
    let all = lines(d, "a.jsonl");
    let keep = seq_of(d, "a.jsonl", "Start", "r") as usize;
    std::fs::write(d.join("b.jsonl"), all[..keep].join("\n") + "\n").unwrap();
    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    assert_eq!(doc["first_divergent_seq"], keep);
    assert_eq!(doc["first_divergence"]["b"], Value::Null);
    assert_eq!(doc["first_divergence"]["a"]["node"], "r");
    let status = doc["run"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["field"] == "status")
        .expect("status difference");
    assert_eq!(status["a"], "succeeded");
    assert_eq!(status["b"], "unfinished");
    assert_eq!(doc["nodes"][0]["node"], "r");
    assert_eq!(doc["nodes"][0]["only_in"], "a");
    kairos(d, &["diff", "a.jsonl", "b.jsonl"])
        .code(1)
        .stdout_contains("(the ledger has ended)");
}

/// `text` with its line `index` (0-based) replaced.
fn with_line(text: &str, index: usize, line: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[index] = line;
    lines.join("\n") + "\n"
}

#[test]
fn damaged_or_foreign_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    record(d, FLOW, "good.jsonl", &[]);
    let good = std::fs::read_to_string(d.join("good.jsonl")).unwrap();
    let n = good.lines().count();
    // The shell node's Start line renders `hello alice`; editing it breaks the next line's
    // link (lines are 1-based in messages).
    let edited = good
        .lines()
        .position(|l| l.contains("echo hello alice"))
        .unwrap();
    let cases: Vec<(&str, String, i32, String)> = vec![
        (
            "empty.jsonl",
            String::new(),
            2,
            "empty.jsonl is empty".into(),
        ),
        (
            "text.jsonl",
            "this is not json\n".into(),
            2,
            "text.jsonl:1: not a JSON object".into(),
        ),
        (
            "late.jsonl",
            with_line(&good, 2, "not json either"),
            2,
            "late.jsonl:3: not a JSON object".into(),
        ),
        (
            "torn.jsonl",
            good[..good.len() - 1].to_string(),
            2,
            format!("torn.jsonl:{n}: the last line is incomplete"),
        ),
        (
            "broken.jsonl",
            good.replacen("echo hello alice", "echo hello mallory", 1),
            1,
            format!("broken.jsonl:{}: broken chain", edited + 2),
        ),
        (
            "foreign.jsonl",
            rechain(&good.replace("kairos.ledger/1", "kairos.ledger/9")),
            2,
            "unsupported ledger format `kairos.ledger/9`".into(),
        ),
        (
            "other.jsonl",
            "{\"name\":\"x\",\"items\":[1,2]}\n".into(),
            2,
            "other.jsonl:1: not a kairos ledger".into(),
        ),
    ];
    for (name, text, code, message) in &cases {
        std::fs::write(d.join(name), text).unwrap();
        // Damage is found on either side, in both output formats, and never as a difference.
        for args in [
            ["diff", "good.jsonl", name, "--format", "table"],
            ["diff", name, "good.jsonl", "--format", "json"],
        ] {
            let out = kairos(d, &args)
                .code(*code)
                .stderr_contains(message.as_str());
            assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    }
    // Identical damaged files are damaged, not identical.
    std::fs::copy(d.join("broken.jsonl"), d.join("broken2.jsonl")).unwrap();
    kairos(d, &["diff", "broken.jsonl", "broken2.jsonl"])
        .code(1)
        .stderr_contains("broken chain");
    kairos(d, &["diff", "torn.jsonl", "torn.jsonl"])
        .code(2)
        .stderr_contains("the last line is incomplete");
    kairos(d, &["diff", "empty.jsonl", "empty.jsonl"])
        .code(2)
        .stderr_contains("is empty");
    // Lines out of order.
    let l: Vec<&str> = good.lines().collect();
    let mut swapped = vec![l[0], l[2], l[1]];
    swapped.extend(&l[3..]);
    std::fs::write(d.join("swapped.jsonl"), swapped.join("\n") + "\n").unwrap();
    kairos(d, &["diff", "good.jsonl", "swapped.jsonl"])
        .code(1)
        .stderr_contains("swapped.jsonl:2: expected seq 1, found 2");
    // Missing files and bad invocations.
    kairos(d, &["diff", "good.jsonl", "missing.jsonl"])
        .code(2)
        .stderr_contains("cannot read missing.jsonl");
    kairos(d, &["diff", "missing.jsonl", "good.jsonl"])
        .code(2)
        .stderr_contains("cannot read missing.jsonl");
    kairos(d, &["diff", "good.jsonl"]).code(2);
    kairos(d, &["diff", "good.jsonl", "good.jsonl", "--format", "xml"]).code(2);
}

#[test]
fn differences_only_an_earlier_attempt_shows_are_the_nodes_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The first attempt prints the note and fails; the second succeeds the same way in both
    // runs, so only the first attempt's output tells the ledgers apart.
    let yaml = "version: 1
name: flaky
policy: { preset: permissive }
nodes:
  - id: flaky
    run: \"if [ -f done ]; then echo ok; else cat note; touch done; exit 1; fi\"
    retry: { attempts: 2, backoff: 10ms }
";
    for (sub, note) in [("a", "first"), ("b", "second")] {
        std::fs::create_dir(d.join(sub)).unwrap();
        std::fs::write(d.join(sub).join("note"), note).unwrap();
        record(&d.join(sub), yaml, &format!("../{sub}.jsonl"), &[]);
    }
    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    assert_eq!(doc["run"], serde_json::json!([]), "{doc:#}");
    assert_eq!(fields(&doc, "flaky"), ["events"]);
    let events = difference(&doc, "flaky", "events");
    assert_eq!(events["a"]["count"], events["b"]["count"]);
    assert_ne!(events["a"]["sha256"], events["b"]["sha256"]);
    assert_eq!(
        doc["first_divergent_seq"], 3,
        "RunStart, Start, PolicyAllow, then the first ToolOutput"
    );
    assert_eq!(doc["first_divergence"]["a"]["stdout"], "first");
    assert_eq!(doc["first_divergence"]["b"]["stdout"], "second");
}

#[test]
fn the_table_stops_at_200_rows_and_json_has_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let items: Vec<String> = (0..250).map(|i| i.to_string()).collect();
    let yaml = format!(
        "version: 1
name: many
policy: {{ preset: permissive }}
nodes:
  - id: each
    for_each: [{}]
    tool: random
    with: {{ int: [1, 1000000000] }}
",
        items.join(", ")
    );
    record(d, &yaml, "a.jsonl", &["--seed", "1"]);
    record(d, &yaml, "b.jsonl", &["--seed", "2"]);
    let out = kairos(d, &["diff", "a.jsonl", "b.jsonl"]).code(1);
    assert!(out.stdout.contains("│ each[199] "), "{}", out.stdout);
    assert!(!out.stdout.contains("│ each[200] "), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("... and 50 more nodes differ (--format json lists them all)"),
        "{}",
        out.stdout
    );
    let doc = diff_json(d, "a.jsonl", "b.jsonl", 1);
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 250);
    assert_eq!(nodes[0]["node"], "each[0]");
    assert_eq!(nodes[249]["node"], "each[249]");
}
