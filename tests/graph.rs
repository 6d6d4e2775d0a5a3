//! `kairos graph`: Mermaid and DOT renderings.

use crate::common::{Test, require_program, root};

const BRANCHY: &str = "version: 1
name: g
nodes:
  - id: start
    fork: [a, b]
  - id: a
    tool: noop
  - id: b
    tool: noop
  - id: pick
    needs: [a]
    branch: { if: \"true\", then: [yes], else: [no] }
  - id: yes
    tool: echo
    with: { message: \"{{ nodes.b.output }}\" }
  - id: no
    tool: noop
  - id: ask
    approval: { prompt: ok? }
  - id: end
    join: [yes, no]
";

#[test]
fn mermaid_shows_kinds_arms_fork_and_join() {
    let out = Test::new()
        .workflow(BRANCHY)
        .args(["graph", "wf.yaml"])
        .run()
        .code(0);
    insta::assert_snapshot!(out.stdout);
    out.stdout_contains("flowchart TD")
        .stdout_contains("n3{\"pick<br/><i>branch</i>\"}")
        .stdout_contains("n3 -->|then| n4")
        .stdout_contains("n3 -->|else| n5")
        .stdout_contains("n0 -->|fork| n1")
        .stdout_contains("n4 -->|join| n7")
        .stdout_contains("n2 -.-> n4")
        .stdout_contains("n6{{\"ask<br/><i>approval</i>\"}}");
}

#[test]
fn dot_shows_kinds_arms_fork_and_join() {
    let out = Test::new()
        .workflow(BRANCHY)
        .args(["graph", "--format", "dot", "wf.yaml"])
        .run()
        .code(0);
    insta::assert_snapshot!(out.stdout);
    out.stdout_contains("digraph \"g\" {")
        .stdout_contains("n3 [label=\"pick\\n(branch)\", shape=diamond];")
        .stdout_contains("n3 -> n4 [label=\"then\"];")
        .stdout_contains("n3 -> n5 [label=\"else\"];")
        .stdout_contains("n0 -> n1 [label=\"fork\"];")
        .stdout_contains("n4 -> n7 [label=\"join\"];")
        .stdout_contains("n2 -> n4 [style=dashed];");
}

/// Graphviz must accept the DOT of every example (`.ci/run` installs graphviz).
#[test]
fn graphviz_accepts_the_dot_of_every_example() {
    if !require_program("dot") {
        return;
    }
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = Test::new()
            .args(["graph", "--format", "dot", &path.display().to_string()])
            .run()
            .code(0);
        let mut dot = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start Graphviz `dot`");
        use std::io::Write;
        dot.stdin
            .take()
            .unwrap()
            .write_all(out.stdout.as_bytes())
            .unwrap();
        let result = dot.wait_with_output().unwrap();
        assert!(
            result.status.success(),
            "dot rejected {}: {}",
            path.display(),
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(String::from_utf8_lossy(&result.stdout).contains("<svg"));
        count += 1;
    }
    assert!(count >= 7);
}

#[test]
fn graph_of_an_invalid_workflow_is_bad_input() {
    Test::new()
        .workflow("version: 1\nname: g\nnodes:\n  - id: a\n    needs: [b]\n    tool: noop\n")
        .args(["graph", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("`needs` names unknown node `b`");
}

#[test]
fn ids_with_quotes_are_escaped_in_labels() {
    let out = Test::new()
        .workflow("version: 1\nname: g\ndescription: x\nnodes:\n  - id: a-b\n    tool: noop\n")
        .args(["graph", "--format", "dot", "wf.yaml"])
        .run()
        .code(0);
    out.stdout_contains("n0 [label=\"a-b\\n(noop)\", shape=box];");
}

/// A test that needs an outside program skips with a notice when the program is missing, and
/// fails under CI (`CI=true`), where `.ci/run` installs it. Runs the Graphviz test above in a
/// child process of this test binary, with a `PATH` that holds nothing.
#[test]
fn a_missing_outside_program_skips_with_a_notice_or_fails_under_ci() {
    let empty = tempfile::tempdir().unwrap();
    let run = |ci: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "graph::graphviz_accepts_the_dot_of_every_example",
            "--exact",
            "--test-threads=1",
        ])
        .env("PATH", empty.path())
        .env_remove("CI");
        if ci {
            cmd.env("CI", "true");
        }
        cmd.output().unwrap()
    };
    let local = run(false);
    let stderr = String::from_utf8_lossy(&local.stderr);
    assert!(local.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "skipped: graph::graphviz_accepts_the_dot_of_every_example needs `dot` (install graphviz)"
        ),
        "{stderr}"
    );
    let ci = run(true);
    assert!(
        !ci.status.success(),
        "{}",
        String::from_utf8_lossy(&ci.stdout)
    );
    assert!(String::from_utf8_lossy(&ci.stdout).contains("under CI a missing program is an error"));
}

#[test]
fn json_lists_nodes_and_edges_with_their_kinds() {
    let doc = Test::new()
        .workflow(BRANCHY)
        .args(["graph", "--format", "json", "wf.yaml"])
        .run()
        .code(0)
        .json();
    assert_eq!(doc["workflow"], "g");
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 8);
    assert_eq!(
        nodes[3],
        serde_json::json!({"id": "pick", "kind": "branch", "tool": null})
    );
    assert_eq!(
        nodes[4],
        serde_json::json!({"id": "yes", "kind": "task", "tool": "echo"})
    );
    let edges: Vec<(&str, &str, &str)> = doc["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["kind"].as_str().unwrap(),
            )
        })
        .collect();
    for edge in [
        ("start", "a", "fork"),
        ("a", "pick", "needs"),
        ("pick", "yes", "then"),
        ("pick", "no", "else"),
        ("b", "yes", "data"),
        ("yes", "end", "join"),
    ] {
        assert!(edges.contains(&edge), "{edge:?} not in {edges:?}");
    }
}

/// `kairos graph big.yaml | head -1`: once the reader has gone, kairos stops writing quietly
/// (no panic, no backtrace). The output is larger than a pipe holds, so it cannot all be
/// written before the reader goes.
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let mut yaml = String::from("version: 1\nname: big\nnodes:\n");
    for i in 0..3000 {
        yaml.push_str(&format!("  - id: node_{i}\n    tool: noop\n"));
    }
    let t = Test::new().workflow(&yaml);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("kairos"))
        .args(["graph", "wf.yaml"])
        .current_dir(t.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
