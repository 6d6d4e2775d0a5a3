//! `workflow:` nodes: another file run as a sub-graph of the same run and ledger.

use crate::common::{Test, diagnostics};

const CHILD: &str = "version: 1
name: child
inputs:
  who: {}
nodes:
  - id: greet
    tool: echo
    with: { message: 'hello {{ inputs.who }}' }
outputs:
  text: '{{ nodes.greet.output }}'
";

const PARENT: &str = "version: 1
name: parent
nodes:
  - id: sub
    workflow: { file: lib/child.yaml, inputs: { who: world } }
  - id: after
    tool: echo
    with: { message: 'got {{ nodes.sub.output.text }}' }
";

#[test]
fn a_call_runs_the_callee_under_its_id_and_records_its_file_and_digest() {
    let out = Test::new()
        .workflow(PARENT)
        .file("lib/child.yaml", CHILD)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0)
        .stdout_contains("got hello world");
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    let ledger: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let call = ledger
        .iter()
        .find(|e| e["event"] == "WorkflowCall")
        .unwrap();
    assert_eq!(call["node"], "sub");
    assert_eq!(call["file"], "lib/child.yaml");
    assert_eq!(call["sha256"], kairos::ledger::sha256_hex(CHILD.as_bytes()));
    assert!(
        ledger
            .iter()
            .any(|e| e["node"] == "sub/greet" && e["event"] == "ToolOutput")
    );
    // No host path in the ledger.
    assert!(!text.contains(out.dir.path().to_str().unwrap()));
    Test::new()
        .args(["replay", "--check", "l.jsonl"])
        .run_in(out.dir.path())
        .code(0);
}

#[test]
fn call_cycles_are_rejected_with_the_location_of_the_call() {
    let selfcall = "version: 1\nname: a\nnodes:\n  - id: me\n    workflow: { file: wf.yaml }\n";
    let d = diagnostics(selfcall);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].line, d[0].column), (5, 23));
    assert!(d[0].message.contains("cycle"), "{d:?}");
    let a = "version: 1\nname: a\nnodes:\n  - id: b\n    workflow: { file: b.yaml }\n";
    let b = "version: 1\nname: b\nnodes:\n  - id: a\n    workflow: { file: wf.yaml }\n";
    Test::new()
        .workflow(a)
        .file("b.yaml", b)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("cycle: wf.yaml -> b.yaml -> wf.yaml");
}

#[test]
fn a_called_workflows_errors_name_its_file_and_line() {
    let bad = "version: 1\nname: bad\nnodes:\n  - id: x\n    tool: ecko\n";
    let parent = "version: 1\nname: p\nnodes:\n  - id: c\n    workflow: { file: bad.yaml }\n";
    Test::new()
        .workflow(parent)
        .file("bad.yaml", bad)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("bad.yaml:5:11");
}

#[test]
fn a_called_workflows_policy_cannot_widen_the_callers() {
    // The callee asks for subprocess; the caller does not grant it.
    let callee = "version: 1\nname: wide\npolicy: { preset: permissive }\nnodes:\n  - id: sh\n    run: echo hi\n";
    let caller = "version: 1\nname: narrow\npolicy: { preset: restrictive }\nnodes:\n  - id: c\n    workflow: { file: wide.yaml }\n";
    Test::new()
        .workflow(caller)
        .file("wide.yaml", callee)
        .args(["run", "wf.yaml"])
        .run()
        .code(3);
    // The caller grants it, the callee does not: refused before the run, at the call, naming
    // the called file's policy; no ledger is written.
    let callee = "version: 1\nname: tight\npolicy: { preset: restrictive }\nnodes:\n  - id: sh\n    run: echo hi\n";
    let caller = "version: 1\nname: wide\npolicy: { preset: permissive }\nnodes:\n  - id: c\n    workflow: { file: tight.yaml }\n";
    let out = Test::new()
        .workflow(caller)
        .file("tight.yaml", callee)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(3)
        .stderr_contains("node `sh` of `tight.yaml` needs `subprocess`");
    assert!(!out.dir.path().join("l.jsonl").exists());
}

#[test]
fn a_call_needs_the_callees_required_inputs() {
    let parent = "version: 1\nname: p\nnodes:\n  - id: sub\n    workflow: { file: child.yaml, inputs: { whom: x } }\n";
    Test::new()
        .workflow(parent)
        .file("child.yaml", CHILD)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("needs input `who`")
        .stderr_contains("whom");
}

#[test]
fn graph_draws_a_call_as_a_cluster_of_the_callees_nodes() {
    let t = Test::new().workflow(PARENT).file("lib/child.yaml", CHILD);
    let dir = t.path().to_path_buf();
    let mermaid = Test::new()
        .args(["graph", "wf.yaml"])
        .run_in(&dir)
        .code(0)
        .stdout;
    assert!(
        mermaid.contains("subgraph cn0[\"sub (calls lib/child.yaml)\"]"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("n0_0[\"greet<br/><i>echo</i>\"]"),
        "{mermaid}"
    );
    let json = Test::new()
        .args(["graph", "wf.yaml", "--format", "json"])
        .run_in(&dir)
        .code(0)
        .json();
    assert_eq!(json["nodes"][0]["kind"], "workflow");
    assert_eq!(json["nodes"][0]["graph"]["nodes"][0]["id"], "greet");
    drop(t);
}

#[test]
fn a_changed_callee_makes_replay_report_the_call() {
    let t = Test::new().workflow(PARENT).file("lib/child.yaml", CHILD);
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-q"])
        .run_in(&dir)
        .code(0);
    std::fs::write(dir.join("lib/child.yaml"), CHILD.replace("hello", "bye")).unwrap();
    let out = Test::new()
        .args(["replay", "l.jsonl", "--against", "wf.yaml"])
        .run_in(&dir)
        .code(1);
    assert!(
        out.stdout.contains("WorkflowCall of `sub` differs"),
        "{}",
        out.stdout
    );
    drop(t);
}

#[test]
fn replay_check_takes_the_called_file_from_the_ledger() {
    let t = Test::new().workflow(PARENT).file("lib/child.yaml", CHILD);
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-q"])
        .run_in(&dir)
        .code(0);
    // Neither the workflow nor the called file is at hand: the ledger is enough.
    let elsewhere = Test::new();
    std::fs::copy(dir.join("l.jsonl"), elsewhere.path().join("l.jsonl")).unwrap();
    Test::new()
        .args(["replay", "--check", "l.jsonl"])
        .run_in(elsewhere.path())
        .code(0)
        .stdout_contains("replay matches");
    drop(t);
}

#[test]
fn a_call_of_a_missing_file_a_directory_or_an_absolute_path_is_refused_at_the_call() {
    for (file, message) in [
        ("nope.yaml", "not found, or not a regular file"),
        ("lib", "not found, or not a regular file"),
        ("/etc/hostname", "relative to the calling file"),
    ] {
        let parent =
            format!("version: 1\nname: p\nnodes:\n  - id: c\n    workflow: {{ file: {file} }}\n");
        let out = Test::new()
            .workflow(&parent)
            .file("lib/child.yaml", CHILD)
            .args(["validate", "wf.yaml"])
            .run()
            .code(2)
            .stderr_contains(message);
        assert!(out.stderr.contains("wf.yaml:5:"), "{file}: {}", out.stderr);
    }
}

/// What a loop body's or a called file's tasks need is checked before anything runs, as a
/// top-level task's is: `validate` fails, and `run` starts nothing and writes no ledger.
#[test]
fn capabilities_of_bodies_and_callees_are_checked_before_the_run() {
    let callee = "version: 1\nname: sub\nnodes:\n  - id: sh\n    run: echo hi\n";
    let call = "version: 1\nname: c\npolicy: { allow: [net] }\nnodes:\n  - id: first\n    tool: echo\n    with: { message: hi }\n  - id: w\n    needs: [first]\n    workflow: { file: sub.yaml }\n";
    let body = "version: 1\nname: l\npolicy: { allow: [net] }\nnodes:\n  - id: lp\n    loop:\n      max_iterations: 1\n      until: \"true\"\n      nodes:\n        - id: s\n          run: echo hi\n";
    for (yaml, node) in [(call, "`w`"), (body, "`s`")] {
        let t = Test::new().workflow(yaml).file("sub.yaml", callee);
        let out = t.args(["validate", "wf.yaml"]).run().code(3);
        assert!(
            out.stderr
                .contains(&format!("node {node} needs `subprocess`")),
            "{}",
            out.stderr
        );
        let out = Test::new()
            .workflow(yaml)
            .file("sub.yaml", callee)
            .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
            .run()
            .code(3);
        assert!(
            !out.dir.path().join("l.jsonl").exists(),
            "a ledger was written"
        );
    }
}

/// Each call site reads its file again: files that call the next one several times would grow
/// exponentially, so the calls read in all are bounded (`limits::CALLS`).
#[test]
fn calls_that_multiply_are_refused_past_the_limit() {
    let file = |i: usize, last: bool| {
        let mut yaml = format!("version: 1\nname: f{i}\nnodes:\n");
        for k in 0..4 {
            if last {
                yaml.push_str(&format!("  - {{ id: n{k}, tool: noop }}\n"));
            } else {
                yaml.push_str(&format!(
                    "  - {{ id: n{k}, workflow: {{ file: f{}.yaml }} }}\n",
                    i + 1
                ));
            }
        }
        yaml
    };
    // 4 + 16 + 64 + 256 + 1,024 calls: past 1,000 in the fifth level.
    let mut t = Test::new().workflow(&file(0, false));
    for i in 1..=5 {
        t = t.file(&format!("f{i}.yaml"), &file(i, i == 5));
    }
    t.args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("read more than 1000 files in all");
    // Four levels (340 calls) are fine.
    let mut t = Test::new().workflow(&file(0, false));
    for i in 1..=4 {
        t = t.file(&format!("f{i}.yaml"), &file(i, i == 4));
    }
    t.args(["validate", "wf.yaml"]).run().code(0);
}

#[test]
fn a_callees_secrets_are_masked_in_the_whole_run() {
    // The caller does not list the secret; the called file does. Its value comes in through
    // the caller's input and is echoed on both sides of the call.
    let child = "version: 1
name: child
inputs:
  who: {}
policy:
  secrets: [CALLEE_TOKEN]
nodes:
  - id: greet
    tool: echo
    with: { message: 'inside {{ inputs.who }}' }
";
    let parent = "version: 1
name: parent
inputs:
  token: {}
nodes:
  - id: before
    tool: echo
    with: { message: 'outside {{ inputs.token }}' }
  - id: sub
    workflow: { file: lib/child.yaml, inputs: { who: '{{ inputs.token }}' } }
";
    let secret = "s3cr3t-callee-value-81";
    let out = Test::new()
        .workflow(parent)
        .file("lib/child.yaml", child)
        .env("CALLEE_TOKEN", secret)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--input"])
        .args([format!("token={secret}")])
        .run()
        .code(0);
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(text.contains("outside [REDACTED:CALLEE_TOKEN]"), "{text}");
    assert!(text.contains("inside [REDACTED:CALLEE_TOKEN]"), "{text}");
    crate::secrets::assert_no_trace("ledger", &text, secret);
    crate::secrets::assert_no_trace("stdout", &out.stdout, secret);
}

#[test]
fn an_approval_in_a_called_workflow_pauses_the_run_under_the_calls_id() {
    let child = "version: 1
name: child
nodes:
  - id: ok
    approval: { prompt: publish? }
  - id: publish
    needs: [ok]
    tool: echo
    with: { message: published }
outputs:
  said: '{{ nodes.publish.output }}'
";
    let parent = "version: 1
name: parent
nodes:
  - id: notes
    workflow: { file: lib/child.yaml }
  - id: after
    tool: echo
    with: { message: 'got {{ nodes.notes.output.said }}' }
";
    let out = Test::new()
        .workflow(parent)
        .file("lib/child.yaml", child)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(4)
        .stdout_contains("--approve notes/ok");
    let dir = out.dir.path();
    // A node the callee does not have, or one that is not an approval, is refused.
    for wrong in ["notes/nope", "notes/publish", "notes#1/ok"] {
        Test::new()
            .args(["run", "wf.yaml", "--resume", "l.jsonl", "--approve", wrong])
            .run_in(dir)
            .code(2)
            .stderr_contains("not an approval node");
    }
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "--resume",
            "l.jsonl",
            "--approve",
            "notes/ok",
        ])
        .run_in(dir)
        .code(0)
        .stdout_contains("got published");
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert!(
        text.contains(r#""event":"ApprovalResolved","clock""#),
        "{text}"
    );
    assert!(
        text.contains(r#""node":"notes/ok","decision":"approved""#),
        "{text}"
    );
}

#[test]
fn a_template_failure_in_a_called_workflow_is_located_in_the_called_file() {
    let child = "version: 1
name: child
nodes:
  - id: bad
    tool: echo
    with: { message: '{{ 1 / 0 }}' }
";
    let parent =
        "version: 1\nname: parent\nnodes:\n  - id: sub\n    workflow: { file: lib/child.yaml }\n";
    let out = Test::new()
        .workflow(parent)
        .file("lib/child.yaml", child)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let e = &doc["template_errors"][0];
    assert_eq!(e["node"], "sub/bad");
    assert_eq!(e["file"], "lib/child.yaml");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(6), Some(23))
    );
    Test::new()
        .args(["run", "wf.yaml", "--ledger", "l2.jsonl", "-q"])
        .run_in(out.dir.path())
        .code(1)
        .stderr_contains("lib/child.yaml:6:23");
}
