//! `--format json` on every command that reports something: one test per command, each
//! parsing what the command prints. (`graph` has its own in `graph.rs`: there `--format`
//! chooses among Mermaid, DOT and JSON.)

use crate::common::{Output, Test};
use std::path::Path;

const FLOW: &str = "version: 1
name: formats
policy: { preset: permissive }
inputs:
  word: { default: hello }
nodes:
  - id: greet
    tool: echo
    with: { message: \"{{ inputs.word }}\" }
  - id: count
    needs: [greet]
    run: echo 3
outputs:
  said: \"{{ nodes.greet.output }}\"
";

fn kairos(dir: &Path, args: &[&str]) -> Output {
    Test::new().args(args).run_in(dir)
}

/// A directory with `wf.yaml` and its ledger `a.jsonl`.
fn recorded() -> (Test, std::path::PathBuf) {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "a.jsonl"]).code(0);
    (t, dir)
}

#[test]
fn run_reports_json() {
    let (_t, dir) = recorded();
    let doc = kairos(
        &dir,
        &["run", "wf.yaml", "--ledger", "b.jsonl", "--format", "json"],
    )
    .code(0)
    .json();
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["ledger"], "b.jsonl");
    assert_eq!(doc["events"], 9);
    assert_eq!(doc["chain_head"].as_str().unwrap().len(), 64);
    assert_eq!(doc["counts"]["succeeded"], 2);
    assert_eq!(doc["outputs"]["said"], "hello");
    assert_eq!(doc["nodes"][1]["node"], "count");
    assert_eq!(doc["nodes"][1]["output"], "3");
    // A run that cannot start says why, in JSON too.
    std::fs::write(
        dir.join("bad.yaml"),
        "version: 1\nname: b\nnodes:\n  - id: x\n",
    )
    .unwrap();
    let doc = kairos(&dir, &["run", "bad.yaml", "--format", "json"])
        .code(2)
        .json();
    assert_eq!(doc["status"], "invalid");
    assert_eq!(doc["diagnostics"][0]["code"], "kairos::no_node_kind");
    let refused = FLOW.replace("preset: permissive", "preset: restrictive");
    std::fs::write(dir.join("refused.yaml"), refused).unwrap();
    let doc = kairos(&dir, &["run", "refused.yaml", "--format", "json"])
        .code(3)
        .json();
    assert_eq!(doc["status"], "refused");
    assert_eq!(doc["ledger"], serde_json::Value::Null);
    assert_eq!(
        doc["diagnostics"][0]["code"],
        "kairos::capability_not_granted"
    );
}

#[test]
fn validate_reports_json() {
    let (_t, dir) = recorded();
    let doc = kairos(&dir, &["validate", "wf.yaml", "--format", "json"])
        .code(0)
        .json();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["files"][0]["nodes"], 2);
    assert_eq!(doc["files"][0]["capabilities"][0], "subprocess");
}

#[test]
fn replay_reports_json() {
    let (_t, dir) = recorded();
    let doc = kairos(&dir, &["replay", "a.jsonl", "--format", "json"])
        .code(0)
        .json();
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["nodes"][0]["output"], "hello");
    // One node's output: raw text by default, JSON with --format json.
    kairos(&dir, &["replay", "a.jsonl", "--node", "greet"])
        .code(0)
        .stdout_contains("hello");
    let doc = kairos(
        &dir,
        &["replay", "a.jsonl", "--node", "greet", "--format", "json"],
    )
    .code(0)
    .json();
    assert_eq!(doc, "hello");
    let doc = kairos(&dir, &["replay", "a.jsonl", "--check", "--format", "json"])
        .code(0)
        .json();
    assert_eq!(doc["matches"], true);
}

#[test]
fn diff_reports_json() {
    let (_t, dir) = recorded();
    kairos(
        &dir,
        &[
            "run", "wf.yaml", "-q", "--ledger", "b.jsonl", "--input", "word=bye",
        ],
    )
    .code(0);
    let doc = kairos(&dir, &["diff", "a.jsonl", "b.jsonl", "--format", "json"])
        .code(1)
        .json();
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["a"]["path"], "a.jsonl");
    assert_eq!(doc["nodes"][0]["node"], "greet");
}

#[test]
fn keygen_sign_and_verify_report_json() {
    let (_t, dir) = recorded();
    let key = kairos(&dir, &["keygen", "--out", "ci", "--format", "json"])
        .code(0)
        .json();
    assert_eq!(key["keyid"].as_str().unwrap().len(), 64);
    assert_eq!(key["private_key"], "ci.key");
    let signed = kairos(
        &dir,
        &["sign", "a.jsonl", "--key", "ci.key", "--format", "json"],
    )
    .code(0)
    .json();
    assert_eq!(signed["keyid"], key["keyid"]);
    assert_eq!(signed["envelope"], "a.jsonl.intoto.json");
    assert_eq!(signed["signatures"], 1);
    let verified = kairos(
        &dir,
        &["verify", "a.jsonl", "--key", "ci.pub", "--format", "json"],
    )
    .code(0)
    .json();
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["signers"][0]["keyid"], key["keyid"]);
    assert_eq!(verified["records"], signed["records"]);
}
