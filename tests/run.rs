//! `kairos run`: node semantics, tools and the ledger, through the real binary.

use crate::common::{Test, root};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Reads a ledger, checking the chain with this test's own hashing (not the writer's code).
pub fn read_ledger(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("ledger exists");
    assert!(text.ends_with('\n'), "ledger ends with a newline");
    let mut prev = "0".repeat(64);
    let mut events = Vec::new();
    for (i, line) in text.split_terminator('\n').enumerate() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i} is not JSON: {e}"));
        assert_eq!(v["seq"], i as u64, "seq of line {i}");
        assert_eq!(v["prev"], prev.as_str(), "prev of line {i}");
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        events.push(v);
    }
    events
}

/// Runs `yaml` with `args` and returns (exit code, events).
fn run(yaml: &str, args: &[&str]) -> (i32, Vec<Value>, String) {
    let t = Test::new().workflow(yaml);
    let ledger = t.path().join("ledger.jsonl");
    let out = t
        .args(["run", "wf.yaml", "--ledger", ledger.to_str().unwrap()])
        .args(args)
        .run();
    let events = if ledger.exists() {
        read_ledger(&ledger)
    } else {
        Vec::new()
    };
    (out.code, events, out.stdout + &out.stderr)
}

fn of<'a>(events: &'a [Value], kind: &str, node: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["node"] == node)
        .collect()
}

fn end_status(events: &[Value], node: &str) -> String {
    if !of(events, "Skipped", node).is_empty() {
        return "skipped".into();
    }
    of(events, "End", node).first().map_or_else(
        || "missing".into(),
        |e| e["status"].as_str().unwrap().to_string(),
    )
}

fn order(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "End" || e["event"] == "Skipped")
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

const HEAD: &str = "version: 1\nname: t\npolicy: { preset: permissive }\n";

#[test]
fn ledger_starts_with_run_start_and_ends_with_run_end() {
    let (code, events, _) = run(
        &format!(
            "{HEAD}seed: 3\ninputs:\n  who: {{ default: you }}\nnodes:\n  - id: a\n    tool: echo\n    with: {{ message: \"hi {{{{ inputs.who }}}}\" }}\noutputs:\n  said: \"{{{{ nodes.a.output }}}}\"\n"
        ),
        &[],
    );
    assert_eq!(code, 0);
    let start = &events[0];
    assert_eq!(start["event"], "RunStart");
    assert_eq!(start["format"], "kairos.ledger/1");
    assert_eq!(start["workflow"], "t");
    assert_eq!(start["seed"], 3);
    assert_eq!(start["inputs"]["who"], "you");
    assert!(
        start["workflow_source"]
            .as_str()
            .unwrap()
            .starts_with("version: 1\n")
    );
    assert_eq!(
        start["workflow_sha256"].as_str().unwrap(),
        hex::encode(Sha256::digest(
            start["workflow_source"].as_str().unwrap().as_bytes()
        ))
    );
    assert_eq!(
        start["policy"]["granted"].as_array().unwrap().len(),
        8,
        "permissive grants every capability"
    );
    assert_eq!(
        start["policy"]["layers"][0]["policy"]["preset"],
        "permissive"
    );
    assert_eq!(start["policy_sha256"].as_str().unwrap().len(), 64);
    let end = events.last().unwrap();
    assert_eq!(end["event"], "RunEnd");
    assert_eq!(end["status"], "succeeded");
    assert_eq!(end["counts"]["succeeded"], 1);
    assert_eq!(end["outputs"]["said"], "hi you");
    let out = &of(&events, "ToolOutput", "a")[0];
    assert_eq!(out["output"], "hi you");
    let startev = &of(&events, "Start", "a")[0];
    assert_eq!(startev["input"]["message"], "hi you");
    assert_eq!(startev["input_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn needs_if_and_skip_propagation() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: a\n    tool: noop\n  - id: off\n    if: \"false\"\n    tool: noop\n  - id: after_off\n    needs: [off]\n    tool: noop\n  - id: bad\n    run: \"exit 3\"\n  - id: after_bad\n    needs: [bad]\n    tool: noop\n  - id: independent\n    needs: [a]\n    tool: echo\n    with: {{ message: ok }}\n"
    );
    let (code, events, _) = run(&yaml, &[]);
    assert_eq!(code, 1, "a failed node fails the run");
    assert_eq!(end_status(&events, "off"), "skipped");
    assert_eq!(of(&events, "Skipped", "off")[0]["reason"], "`if` is false");
    assert_eq!(
        of(&events, "Skipped", "after_off")[0]["reason"],
        "`off` skipped"
    );
    assert_eq!(end_status(&events, "bad"), "failed");
    assert_eq!(of(&events, "ToolOutput", "bad")[0]["exit_code"], 3);
    assert_eq!(
        of(&events, "Skipped", "after_bad")[0]["reason"],
        "`bad` failed"
    );
    assert_eq!(
        end_status(&events, "independent"),
        "succeeded",
        "independent branches keep running"
    );
    assert_eq!(events.last().unwrap()["status"], "failed");
}

#[test]
fn continue_on_error_lets_dependents_run() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: bad\n    run: \"exit 1\"\n    continue_on_error: true\n  - id: next\n    needs: [bad]\n    tool: echo\n    with: {{ message: \"{{{{ nodes.bad.status }}}}\" }}\n"
    );
    let (code, events, _) = run(&yaml, &[]);
    assert_eq!(code, 0);
    assert_eq!(end_status(&events, "bad"), "failed");
    assert_eq!(of(&events, "ToolOutput", "next")[0]["output"], "failed");
    assert_eq!(events.last().unwrap()["status"], "succeeded");
}

#[test]
fn branch_runs_one_arm_and_join_merges() {
    for (cond, taken, skipped) in [("true", "yes", "no"), ("false", "no", "yes")] {
        let yaml = format!(
            "{HEAD}nodes:\n  - id: b\n    branch: {{ if: \"{cond}\", then: [yes], else: [no] }}\n  - id: yes\n    tool: echo\n    with: {{ message: y }}\n  - id: no\n    tool: echo\n    with: {{ message: n }}\n  - id: after_no\n    needs: [no]\n    tool: noop\n  - id: merge\n    join: [yes, no]\n  - id: out\n    needs: [merge]\n    tool: template\n    with: {{ text: \"{{{{ nodes.yes.output or nodes.no.output }}}}\" }}\n"
        );
        let (code, events, _) = run(&yaml, &[]);
        assert_eq!(code, 0);
        let d = &of(&events, "BranchDecision", "b")[0];
        assert_eq!(d["value"], cond == "true");
        assert_eq!(d["arm"], if cond == "true" { "then" } else { "else" });
        assert_eq!(d["chosen"][0], taken);
        assert_eq!(d["skipped"][0], skipped);
        assert_eq!(end_status(&events, taken), "succeeded");
        assert_eq!(end_status(&events, skipped), "skipped");
        assert!(
            of(&events, "Skipped", skipped)[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("branch `b` chose")
        );
        let j = &of(&events, "JoinComplete", "merge")[0];
        assert_eq!(j["succeeded"], serde_json::json!([taken]));
        assert_eq!(
            of(&events, "ToolOutput", "out")[0]["output"],
            taken.chars().next().unwrap().to_string()
        );
    }
}

#[test]
fn join_is_skipped_when_nothing_it_joins_succeeded() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: a\n    if: \"false\"\n    tool: noop\n  - id: j\n    join: [a]\n"
    );
    let (code, events, _) = run(&yaml, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        of(&events, "Skipped", "j")[0]["reason"],
        "no joined node succeeded"
    );
}

#[test]
fn fork_spawns_its_children() {
    let (code, events, _) = run(
        &std::fs::read_to_string(root().join("workflows/fork-join.yaml")).unwrap(),
        &["-j", "8"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        of(&events, "ForkSpawn", "start")[0]["children"],
        serde_json::json!(["fetch_a", "fetch_b", "fetch_c"])
    );
    assert_eq!(
        of(&events, "JoinComplete", "gather")[0]["succeeded"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Commit order is canonical: declaration order among ready nodes, whatever finished first.
    assert_eq!(
        order(&events),
        ["start", "fetch_a", "fetch_b", "fetch_c", "gather"]
    );
}

#[test]
fn priority_orders_ready_nodes() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: low\n    tool: noop\n  - id: high\n    priority: 5\n    tool: noop\n  - id: mid\n    priority: 1\n    tool: noop\n"
    );
    let (_, events, _) = run(&yaml, &[]);
    assert_eq!(order(&events), ["high", "mid", "low"]);
}

#[test]
fn for_each_instances_and_collected_outputs() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: each\n    for_each: [a, b, c]\n    if: \"item != 'b'\"\n    tool: template\n    with: {{ text: \"{{{{ index }}}}={{{{ item }}}}\" }}\n  - id: all\n    needs: [each]\n    tool: template\n    with: {{ text: \"{{{{ nodes.each.output | tojson }}}}\" }}\n  - id: sh\n    for_each: \"[1, 2]\"\n    run: echo {{{{ item }}}}\n"
    );
    let (code, events, _) = run(&yaml, &["-j", "2"]);
    assert_eq!(code, 0);
    assert_eq!(of(&events, "ToolOutput", "each[0]")[0]["output"], "0=a");
    assert_eq!(
        of(&events, "Skipped", "each[1]")[0]["reason"],
        "`if` is false"
    );
    assert_eq!(of(&events, "ToolOutput", "each[2]")[0]["output"], "2=c");
    assert_eq!(of(&events, "End", "each")[0]["instances"], 3);
    let all: Value = serde_json::from_str(
        of(&events, "ToolOutput", "all")[0]["output"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(all, serde_json::json!(["0=a", null, "2=c"]));
    assert_eq!(of(&events, "ToolOutput", "sh[1]")[0]["stdout"], "2\n");
}

#[test]
fn timeout_fails_the_node() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: slow\n    timeout: 100ms\n    tool: sleep\n    with: {{ duration: 10s }}\n"
    );
    let (code, events, _) = run(&yaml, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        of(&events, "End", "slow")[0]["error"],
        "timed out after 100ms"
    );
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: tree\n    timeout: 300ms\n    run: \"sleep 100 & sleep 100\"\n"
    );
    let (code, events, _) = run(&yaml, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        of(&events, "End", "tree")[0]["error"],
        "timed out after 300ms"
    );
}

#[test]
fn retries_are_recorded_with_a_reproducible_backoff() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: flaky\n    retry: {{ attempts: 3, backoff: 10ms, factor: 2 }}\n    run: \"exit 1\"\n"
    );
    let (code, a, _) = run(&yaml, &[]);
    let (_, b, _) = run(&yaml, &["-j", "1"]);
    assert_eq!(code, 1);
    let retries = of(&a, "Retry", "flaky");
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["attempt"], 2);
    let d1 = retries[0]["delay_ms"].as_u64().unwrap();
    let d2 = retries[1]["delay_ms"].as_u64().unwrap();
    assert!(
        (5..=10).contains(&d1) && (10..=20).contains(&d2),
        "{d1} {d2}"
    );
    assert_eq!(of(&a, "End", "flaky")[0]["attempts"], 3);
    assert_eq!(a, b, "the jittered schedule is the same on every run");
}

#[test]
fn random_is_seeded_per_node() {
    let yaml = format!(
        "{HEAD}seed: 1\nnodes:\n  - id: r\n    tool: random\n    with: {{ int: [1, 1000000] }}\n  - id: s\n    tool: random\n    with: {{ shuffle: [1, 2, 3, 4, 5, 6, 7, 8] }}\n"
    );
    let (_, a, _) = run(&yaml, &[]);
    let (_, b, _) = run(&yaml, &[]);
    let (_, c, _) = run(&yaml, &["--seed", "2"]);
    let draw = |e: &[Value]| of(e, "ToolOutput", "r")[0]["output"].clone();
    assert_eq!(draw(&a), draw(&b));
    assert_ne!(draw(&a), draw(&c));
    assert_eq!(c[0]["seed"], 2);
}

#[test]
fn inputs_are_overridable_and_checked() {
    let yaml = format!(
        "{HEAD}inputs:\n  n: {{ default: 1 }}\n  who:\nnodes:\n  - id: a\n    tool: template\n    with: {{ text: \"{{{{ inputs.n + 1 }}}} {{{{ inputs.who }}}}\" }}\n"
    );
    let (code, events, _) = run(&yaml, &["--input", "n=41", "--input", "who=me"]);
    assert_eq!(code, 0);
    assert_eq!(of(&events, "ToolOutput", "a")[0]["output"], "42 me");
    let (code, events, out) = run(&yaml, &["--input", "n=1"]);
    assert_eq!(code, 2);
    assert!(
        events.is_empty(),
        "nothing written for a run that cannot start"
    );
    assert!(out.contains("input `who` has no default"), "{out}");
    let (code, _, out) = run(&yaml, &["--input", "nn=1", "--input", "who=x"]);
    assert_eq!(code, 2);
    assert!(out.contains("unknown input `nn`"), "{out}");
}

#[test]
fn interpolated_values_cannot_inject_shell_commands() {
    let t = Test::new().workflow(&format!(
        "{HEAD}nodes:\n  - id: evil\n    tool: echo\n    with: {{ message: \"$(touch pwned); touch pwned2 `touch pwned3`\" }}\n  - id: victim\n    run: echo {{{{ nodes.evil.output }}}}\n"
    ));
    let dir = t.path().to_path_buf();
    let _out = t
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !dir.join(f).exists(),
            "{f} was created: the output was interpreted by a shell"
        );
    }
    let events = read_ledger(&dir.join("l.jsonl"));
    assert_eq!(
        of(&events, "ToolOutput", "victim")[0]["output"],
        "$(touch pwned); touch pwned2 `touch pwned3`"
    );
}

/// A node that reads another only in the value of a slice (`(nodes.a.output | list)[:2]`)
/// waits for it and sees its value: the reference counts as any other.
#[test]
fn a_reference_in_a_sliced_value_waits_for_the_node_and_reads_it() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: b\n    tool: template\n    with: {{ text: \"{{{{ (nodes.a.output | list)[:2] | join(',') }}}}\" }}\n  - id: a\n    tool: random\n    with: {{ shuffle: [x, y, z] }}\n"
    );
    let (code, events, stderr) = run(&yaml, &["-q"]);
    assert_eq!(code, 0, "{stderr}");
    let drawn = of(&events, "ToolOutput", "a")[0]["output"].clone();
    let shown = of(&events, "ToolOutput", "b")[0]["output"].clone();
    assert_eq!(
        shown,
        format!(
            "{},{}",
            drawn[0].as_str().unwrap(),
            drawn[1].as_str().unwrap()
        )
    );
}

/// A null (and any value that is not text) reads as JSON in what kairos prints and records:
/// `null`, `true`, `[null,false]`, never Python's `None`, `True`, `[None, False]`.
#[test]
fn a_null_output_prints_as_null() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: a\n    tool: noop\n  - id: b\n    tool: echo\n    with: {{ message: \"{{{{ nodes.a.output }}}} {{{{ true }}}}\" }}\noutputs:\n  nothing: \"{{{{ nodes.a.output }}}}\"\n  list: \"{{{{ [none, false] }}}}\"\n"
    );
    let t = Test::new().workflow(&yaml);
    let out = t
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0)
        .stdout_contains("output nothing: null\n")
        .stdout_contains("output list: [null,false]\n");
    let events = read_ledger(&out.dir.path().join("l.jsonl"));
    assert_eq!(of(&events, "ToolOutput", "b")[0]["output"], "null true");
}

#[test]
fn ledgers_do_not_depend_on_directory_or_jobs() {
    let yaml = std::fs::read_to_string(root().join("workflows/quickstart.yaml"))
        .unwrap()
        .replace("ls workflows", "wc -c wf.yaml");
    let mut ledgers = Vec::new();
    for jobs in ["1", "2", "8"] {
        let t = Test::new().workflow(&yaml);
        let path = t.path().join("l.jsonl");
        let _out = t
            .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-j", jobs])
            .run()
            .code(0);
        ledgers.push(std::fs::read(path).unwrap());
    }
    assert_eq!(ledgers[0], ledgers[1]);
    assert_eq!(ledgers[0], ledgers[2]);
}

#[test]
fn an_existing_ledger_is_never_overwritten() {
    let t = Test::new()
        .workflow(&format!("{HEAD}nodes:\n  - id: a\n    tool: noop\n"))
        .file("taken.jsonl", "precious\n");
    let dir = t.path().to_path_buf();
    let _out = t
        .args(["run", "wf.yaml", "--ledger", "taken.jsonl"])
        .run()
        .code(2)
        .stderr_contains("already exists");
    assert_eq!(
        std::fs::read_to_string(dir.join("taken.jsonl")).unwrap(),
        "precious\n"
    );
}

#[test]
fn default_ledger_paths_count_up() {
    let t = Test::new().workflow(&format!("{HEAD}nodes:\n  - id: a\n    tool: noop\n"));
    let dir = t.path().to_path_buf();
    let wf = dir.join("wf.yaml");
    for n in 1..=2 {
        Test::new()
            .args(["run", wf.to_str().unwrap()])
            .run_in(&dir)
            .code(0)
            .stdout_contains(&format!(".kairos/runs/t/000{n}.jsonl"));
    }
    assert_eq!(
        std::fs::read(dir.join(".kairos/runs/t/0001.jsonl")).unwrap(),
        std::fs::read(dir.join(".kairos/runs/t/0002.jsonl")).unwrap()
    );
}

#[test]
fn approval_nodes_pause_the_run() {
    let yaml = format!(
        "{HEAD}nodes:\n  - id: ask\n    approval: {{ prompt: \"ship {{{{ nodes.other.output }}}}?\" }}\n  - id: other\n    tool: echo\n    with: {{ message: it }}\n  - id: after\n    needs: [ask]\n    tool: noop\n"
    );
    let (code, events, out) = run(&yaml, &[]);
    assert_eq!(code, 4, "{out}");
    assert_eq!(
        order(&events),
        ["other"],
        "everything that does not wait for the decision ran first"
    );
    let n = events.len();
    assert_eq!(events[n - 2]["event"], "ApprovalRequested");
    assert_eq!(events[n - 2]["prompt"], "ship it?");
    assert_eq!(events[n - 1]["event"], "RunPaused");
    assert_eq!(events[n - 1]["pending"], serde_json::json!(["ask"]));
}

#[test]
fn json_summary() {
    let t = Test::new().workflow(&format!(
        "{HEAD}nodes:\n  - id: a\n    tool: echo\n    with: {{ message: hi }}\n"
    ));
    let out = t
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(0);
    let doc = out.json();
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["events"], 5);
    assert_eq!(doc["nodes"][0]["output"], "hi");
    assert_eq!(doc["chain_head"].as_str().unwrap().len(), 64);
}

#[test]
fn a_long_chain_runs_without_recursion() {
    let mut yaml = String::from("version: 1\nname: chain\nnodes:\n  - id: n0\n    tool: noop\n");
    let n = 100_000;
    for i in 1..n {
        yaml.push_str(&format!(
            "  - id: n{i}\n    needs: [n{}]\n    tool: noop\n",
            i - 1
        ));
    }
    let (code, events, _) = run(&yaml, &["-q"]);
    assert_eq!(code, 0);
    assert_eq!(events.len(), 2 * n + 2);
    assert_eq!(events.last().unwrap()["counts"]["succeeded"], n as u64);
}

#[test]
fn kill_9_leaves_a_valid_chain_prefix() {
    let mut yaml =
        String::from("version: 1\nname: crash\npolicy: { preset: permissive }\nnodes:\n");
    for i in 0..400 {
        // 400 x 10 ms on 2 workers: at least 2 s, so the kill lands mid-run.
        yaml.push_str(&format!("  - id: s{i}\n    run: sleep 0.01\n"));
    }
    for delay_ms in [150u64, 400] {
        let t = Test::new().workflow(&yaml);
        let mut child = crate::common::spawn(
            t.path(),
            &["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "-j", "2"],
        );
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A kill before the ledger file exists (a loaded machine) leaves an empty prefix.
        let text = std::fs::read_to_string(t.path().join("l.jsonl")).unwrap_or_default();
        // Every complete line parses and chains; only the last may be torn.
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        let torn = &text[complete.len()..];
        assert!(
            torn.is_empty() || serde_json::from_str::<Value>(torn).is_err() || !torn.ends_with('}')
        );
        std::fs::write(t.path().join("prefix.jsonl"), complete).unwrap();
        let events = if complete.is_empty() {
            Vec::new()
        } else {
            read_ledger(&t.path().join("prefix.jsonl"))
        };
        if let Some(first) = events.first() {
            assert_eq!(first["event"], "RunStart");
        }
        assert!(
            events.iter().all(|e| e["event"] != "RunEnd"),
            "the run was killed before it ended"
        );
    }
}

#[test]
fn readme_chain_check_accepts_a_ledger_and_rejects_an_edit() {
    if !crate::common::require_program("python3") {
        return;
    }
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("```python\n")
        .expect("README has the chain check")
        + "```python\n".len();
    let script = &readme[start..start + readme[start..].find("```").unwrap()];
    let t = Test::new()
        .workflow(&format!(
            "{HEAD}nodes:\n  - id: a\n    tool: echo\n    with: {{ message: hi }}\n"
        ))
        .file("check.py", script);
    let dir = t.path().to_path_buf();
    let _out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let check = |file: &str| {
        std::process::Command::new("python3")
            .arg("check.py")
            .arg(file)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let ok = check("l.jsonl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "chain ok");
    let edited = std::fs::read_to_string(dir.join("l.jsonl"))
        .unwrap()
        .replacen("\"hi\"", "\"ho\"", 1);
    std::fs::write(dir.join("edited.jsonl"), edited).unwrap();
    assert!(
        !check("edited.jsonl").status.success(),
        "an edited ledger must fail the check"
    );
}

#[test]
fn readme_quickstart_runs_twice_in_a_row() {
    let t = Test::new();
    let dir = t.path().to_path_buf();
    crate::common::copy_dir(&root().join("workflows"), &dir.join("workflows"));
    for n in 1..=2 {
        Test::new()
            .args(["run", "workflows/quickstart.yaml"])
            .run_in(&dir)
            .code(0)
            .stdout_contains("run succeeded")
            .stdout_contains(&format!(".kairos/runs/quickstart/000{n}.jsonl"));
    }
    drop(t);
}

#[test]
fn a_wide_fan_out_runs() {
    let n = 100_000;
    let mut yaml = String::from("version: 1\nname: fan\nnodes:\n  - id: root\n    tool: noop\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - id: c{i}\n    needs: [root]\n    tool: noop\n"
        ));
    }
    let (code, events, _) = run(&yaml, &["-q"]);
    assert_eq!(code, 0);
    assert_eq!(events.len(), 2 * (n + 1) + 2);
    // Ready children commit in declaration order.
    assert_eq!(events[3]["node"], "c0");
    assert_eq!(events[events.len() - 2]["node"], format!("c{}", n - 1));
}

#[test]
fn timings_report_the_loading_time_on_stderr_only() {
    let yaml = "version: 1\nname: t\nnodes:\n  - id: a\n    tool: noop\n";
    let run_with = |timings: bool| {
        let mut t = Test::new().workflow(yaml);
        if timings {
            t = t.env("KAIROS_TIMINGS", "1");
        }
        let ledger = t.path().join("l.jsonl");
        let out = t
            .args(["run", "wf.yaml", "-q", "--ledger", ledger.to_str().unwrap()])
            .run();
        (out, std::fs::read_to_string(ledger).unwrap())
    };
    let (with, ledger_with) = run_with(true);
    let (without, ledger_without) = run_with(false);
    assert_eq!((with.code, without.code), (0, 0));
    let line = with.stderr.trim();
    let ms: f64 = line
        .strip_prefix("kairos: timings: load ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("unexpected stderr {line:?}"))
        .parse()
        .unwrap();
    assert!(ms >= 0.0);
    assert_eq!(without.stderr, "");
    assert_eq!(
        ledger_with, ledger_without,
        "timings never reach the ledger"
    );
}

/// A template that fails at run time is reported like a validation error: file, line and
/// column of the part that failed, what it was, and what was in scope.
#[test]
fn a_runtime_template_error_points_at_the_file_line_and_column() {
    let wf = "version: 1\nname: tt\ninputs:\n  size: { default: 2 }\nnodes:\n  - id: a\n    tool: echo\n    with: { message: \"hi\" }\n  - id: b\n    needs: [a]\n    tool: template\n    with:\n      text: \"count {{ nodes.a.output.missing }} of {{ inputs.size }}\"\n";
    Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(1)
        .stderr_contains("kairos::template_failed")
        .stderr_contains("node `b`: `with.text`: undefined value")
        .stderr_contains("[wf.yaml:13:23]")
        .stderr_contains("`nodes.a.output.missing` failed here")
        .stderr_contains("in scope: inputs: size; nodes: a (succeeded); run: seed, name");
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(1);
    let e = &out.json()["template_errors"][0];
    assert_eq!(
        (e["file"].as_str(), e["line"].as_u64(), e["column"].as_u64()),
        (Some("wf.yaml"), Some(13), Some(23))
    );
    assert_eq!(e["expression"], "nodes.a.output.missing");
    assert_eq!(e["node"], "b");
}

/// Conditions, fan-out expressions and outputs are located too.
#[test]
fn runtime_errors_in_conditions_and_outputs_are_located() {
    let wf = "version: 1\nname: tt\nnodes:\n  - id: b\n    tool: noop\n  - id: a\n    if: \"nodes.b.output.nope > 1\"\n    tool: noop\noutputs:\n  x: \"{{ nodes.b.output.gone }}\"\n";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(1);
    let errors = out.json()["template_errors"].clone();
    let at: Vec<(String, u64)> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        at,
        [("`if`".to_string(), 7), ("output `x`".to_string(), 10)]
    );
}
