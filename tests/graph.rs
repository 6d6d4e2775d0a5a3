//! `kairos graph`: Mermaid and DOT renderings.

use crate::common::{Test, root};

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
            .expect("Graphviz `dot` is installed (apt-get install graphviz)");
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
