//! `kairos replay`: state rebuild, `--check` and `--against`, corrupt input.

use crate::common::{Test, copy_dir, rechain, root};

/// Runs `yaml` in `t`'s directory and leaves the ledger in `rec.jsonl`.
fn record(t: Test, args: &[&str]) -> crate::common::Output {
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "rec.jsonl"])
        .args(args)
        .run();
    assert!(
        out.code == 0 || out.code == 1 || out.code == 4,
        "{}",
        out.stderr
    );
    out
}

fn kairos(dir: &std::path::Path, args: &[&str]) -> crate::common::Output {
    Test::new().args(args).run_in(dir)
}

const FLOW: &str = "version: 1
name: flow
inputs:
  word: { default: hello }
policy: { preset: permissive }
nodes:
  - id: side
    run: touch touched
  - id: say
    needs: [side]
    run: echo {{ inputs.word }}
  - id: pick
    needs: [say]
    branch:
      if: \"nodes.say.output == 'hello'\"
      then: [yes]
      else: [no]
  - id: yes
    tool: echo
    with: { message: greeted }
  - id: no
    tool: echo
    with: { message: other }
  - id: each
    for_each: [a, b]
    tool: template
    with: { text: \"{{ item }}!\" }
";

#[test]
fn check_matches_for_every_example() {
    for entry in std::fs::read_dir(root().join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        // The examples that call a model need a server: tests/llm.rs runs and replays them
        // against a local one.
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("llm-"))
        {
            continue;
        }
        // The MCP example needs the reference server (installed by `.ci/run`).
        if path.ends_with("mcp-everything.yaml")
            && !crate::common::require_program_for("mcp-server-everything", "mcp-everything.yaml")
        {
            continue;
        }
        // Run from a copy of the repository's workflows/ so relative paths resolve as in the repo.
        let t = Test::new();
        let dir = t.path().to_path_buf();
        copy_dir(&root().join("workflows"), &dir.join("workflows"));
        let wf = format!("workflows/{}", path.file_name().unwrap().to_str().unwrap());
        // The HTTP example runs against a local server: tests run without the internet.
        let server = wf
            .ends_with("http-fetch.yaml")
            .then(crate::fake_http::httpbin);
        let inputs: Vec<String> = server
            .iter()
            .flat_map(|s| ["--input".into(), format!("base_url={}", s.url(""))])
            .collect();
        let out = Test::new()
            .args(["run", &wf, "-q", "--ledger", "rec.jsonl"])
            .args(&inputs)
            .run_in(&dir);
        assert!(out.code == 0 || out.code == 4, "{wf}: {}", out.stderr);
        let lines = std::fs::read_to_string(dir.join("rec.jsonl"))
            .unwrap()
            .lines()
            .count();
        kairos(&dir, &["replay", "rec.jsonl", "--check"])
            .code(0)
            .stdout_contains(&format!("replay matches ({lines} events)"));
        drop(t);
    }
}

#[test]
fn check_runs_no_tool() {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    let _rec = record(t, &[]);
    std::fs::remove_file(dir.join("touched")).unwrap();
    kairos(&dir, &["replay", "rec.jsonl", "--check"]).code(0);
    assert!(
        !dir.join("touched").exists(),
        "replay ran the shell command"
    );
    kairos(&dir, &["replay", "rec.jsonl", "--against", "wf.yaml"])
        .code(0)
        .stdout_contains("no divergence");
    assert!(
        !dir.join("touched").exists(),
        "replay --against ran the shell command"
    );
}

#[test]
fn check_catches_a_rechained_edit() {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    let _rec = record(t, &[]);
    let text = std::fs::read_to_string(dir.join("rec.jsonl")).unwrap();
    let forged = rechain(&text.replace("\"arm\":\"then\"", "\"arm\":\"else\""));
    std::fs::write(dir.join("forged.jsonl"), forged).unwrap();
    let out = kairos(&dir, &["replay", "forged.jsonl", "--check"]).code(1);
    out.stdout_contains("branch `pick` now takes `then` (the recording took `else`)");
}

fn against(edit: impl Fn(&str) -> String, expect: &str) {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    let _rec = record(t, &[]);
    std::fs::write(dir.join("changed.yaml"), edit(FLOW)).unwrap();
    let out = kairos(&dir, &["replay", "rec.jsonl", "--against", "changed.yaml"]).code(1);
    out.stdout_contains("replay diverges at seq")
        .stdout_contains(expect);
    assert!(!dir.join("changed-ran").exists());
}

#[test]
fn against_a_changed_shell_command() {
    against(
        |f| {
            f.replace(
                "run: echo {{ inputs.word }}",
                "run: echo {{ inputs.word }} again",
            )
        },
        "node `say`: the rendered input differs",
    );
}

#[test]
fn against_a_changed_branch_condition() {
    against(
        |f| f.replace("== 'hello'", "!= 'hello'"),
        "branch `pick` now takes `else` (the recording took `then`)",
    );
}

#[test]
fn against_an_added_node() {
    against(
        |f| {
            f.replace(
                "  - id: yes\n",
                "  - id: extra\n    needs: [say]\n    run: touch changed-ran\n  - id: yes\n",
            )
        },
        "node `extra`: no recorded result for this call",
    );
}

#[test]
fn against_a_removed_node() {
    against(
        |f| {
            f.replace("  - id: side\n    run: touch touched\n", "")
                .replace("    needs: [side]\n", "")
        },
        "a node was added, removed or reordered",
    );
}

#[test]
fn against_a_changed_input_default() {
    against(
        |f| f.replace("default: hello", "default: bonjour"),
        "node `say`: the rendered input differs",
    );
}

#[test]
fn against_keeps_inputs_given_explicitly() {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    let _rec = record(t, &["--input", "word=hi"]);
    kairos(&dir, &["replay", "rec.jsonl", "--against", "wf.yaml"]).code(0);
}

#[test]
fn state_until_and_node() {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    let _rec = record(t, &[]);
    let full = kairos(&dir, &["replay", "rec.jsonl", "--format", "json"])
        .code(0)
        .json();
    assert_eq!(full["status"], "succeeded");
    assert_eq!(full["decisions"][0]["arm"], "then");
    let nodes = full["nodes"].as_array().unwrap();
    let status = |id: &str| nodes.iter().find(|n| n["node"] == id).unwrap()["status"].clone();
    assert_eq!(status("no"), "skipped");
    assert_eq!(status("each[1]"), "succeeded");
    // As of the `say` node's Start: `side` is done, `say` is running, nothing after it exists.
    let text = std::fs::read_to_string(dir.join("rec.jsonl")).unwrap();
    let say_start = text
        .lines()
        .position(|l| l.contains("\"event\":\"Start\"") && l.contains("\"node\":\"say\""))
        .unwrap();
    let early = kairos(
        &dir,
        &[
            "replay",
            "rec.jsonl",
            "--until",
            &say_start.to_string(),
            "--format",
            "json",
        ],
    )
    .code(0)
    .json();
    assert_eq!(early["status"], "incomplete");
    assert_eq!(early["events"], say_start as u64 + 1);
    let early_nodes: Vec<&str> = early["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(early_nodes, ["side", "say"]);
    assert_eq!(early["nodes"][1]["status"], "running");
    let at0 = kairos(
        &dir,
        &["replay", "rec.jsonl", "--until", "0", "--format", "json"],
    )
    .code(0)
    .json();
    assert_eq!(at0["nodes"].as_array().unwrap().len(), 0);
    kairos(&dir, &["replay", "rec.jsonl"])
        .code(0)
        .stdout_contains("branch pick took then")
        .stdout_contains("run succeeded after");
    let raw = kairos(&dir, &["replay", "rec.jsonl", "--node", "say"]).code(0);
    assert_eq!(raw.stdout, "hello");
    let each = kairos(&dir, &["replay", "rec.jsonl", "--node", "each"]).code(0);
    assert_eq!(each.stdout.trim(), "[\"a!\",\"b!\"]");
    kairos(&dir, &["replay", "rec.jsonl", "--node", "nope"])
        .code(2)
        .stderr_contains("no node `nope`");
}

#[test]
fn corrupt_ledgers_are_diagnosed() {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    let _rec = record(t, &[]);
    let good = std::fs::read_to_string(dir.join("rec.jsonl")).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let cases: Vec<(&str, String, i32, &str)> = vec![
        ("empty.jsonl", String::new(), 2, "is empty"),
        (
            "notjson.jsonl",
            "hello\n".into(),
            2,
            "notjson.jsonl:1: not a JSON object",
        ),
        (
            "torn.jsonl",
            good[..good.len() - 5].to_string(),
            2,
            "the last line is incomplete",
        ),
        (
            "broken.jsonl",
            good.replacen("\"hello\"", "\"HELLO\"", 1),
            1,
            "broken chain",
        ),
        (
            "foreign.jsonl",
            rechain(&good.replace("kairos.ledger/1", "kairos.ledger/7")),
            2,
            "unsupported ledger format `kairos.ledger/7`",
        ),
        (
            "notledger.jsonl",
            "{\"name\":\"x\"}\n".into(),
            2,
            "not a kairos ledger",
        ),
        (
            "swapped.jsonl",
            format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]),
            1,
            "swapped.jsonl:2: expected seq 1, found 2",
        ),
    ];
    for (name, text, code, message) in cases {
        std::fs::write(dir.join(name), text).unwrap();
        for extra in [&[][..], &["--check"][..]] {
            let mut args = vec!["replay", name];
            args.extend_from_slice(extra);
            kairos(&dir, &args).code(code).stderr_contains(message);
        }
    }
    let broken = kairos(&dir, &["replay", "broken.jsonl"]).code(1);
    let bad_line = good.lines().position(|l| l.contains("\"hello\"")).unwrap() + 2;
    broken.stderr_contains(&format!("broken.jsonl:{bad_line}: broken chain"));
    kairos(&dir, &["replay", "missing.jsonl"])
        .code(2)
        .stderr_contains("cannot read missing.jsonl");
}
