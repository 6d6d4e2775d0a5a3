//! `loop:` nodes: iterations one after another, `until`, `max_iterations` and `on_max`,
//! loop-carried state, nesting, and the ledger's replay, diff and resume across iterations.

use crate::common::{Test, diagnostics};

/// A writer/reviewer loop: `score` rises by one per iteration; it ends at 3.
const REVIEW: &str = "version: 1
name: review
inputs:
  topic: { default: loops }
nodes:
  - id: brief
    tool: echo
    with: { message: 'write about {{ inputs.topic }}' }
  - id: review
    loop:
      max_iterations: 5
      state: { draft: '', score: 0 }
      update:
        draft: '{{ nodes.write.output }}'
        score: '{{ loop.state.score + 1 }}'
      until: 'loop.state.score >= 3'
      nodes:
        - id: write
          tool: echo
          with: { message: '{{ nodes.brief.output }} v{{ loop.iteration }}' }
        - id: check
          needs: [write]
          tool: echo
          with: { message: 'checked {{ nodes.write.output }}' }
        - id: side
          tool: echo
          with: { message: side }
  - id: done
    tool: echo
    with: { message: 'final {{ nodes.review.output.draft }}' }
outputs:
  final: '{{ nodes.review.output.draft }}'
";

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events<'a>(ledger: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    ledger.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn loop_ends_when_until_is_true_and_records_each_iteration() {
    let out = Test::new()
        .workflow(REVIEW)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0)
        .stdout_contains("output final: write about loops v3");
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let iterations = events(&ledger, "LoopIteration");
    assert_eq!(iterations.len(), 3);
    assert_eq!(iterations[0]["until"], false);
    assert!(iterations[0].get("ended").is_none());
    assert_eq!(iterations[2]["until"], true);
    assert_eq!(iterations[2]["ended"], "until");
    assert_eq!(iterations[2]["state"]["score"], 3);
    // Every body call is an ordinary recorded call, under its iteration's id.
    let starts: Vec<&str> = events(&ledger, "Start")
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert!(starts.contains(&"review#1/write") && starts.contains(&"review#3/check"));
    assert!(!starts.iter().any(|s| s.starts_with("review#4/")));
    // The loop's End comes after its last iteration, and `done` after the loop.
    let seq = |node: &str, kind: &str| {
        ledger
            .iter()
            .position(|e| e["node"] == node && e["event"] == kind)
            .unwrap()
    };
    assert!(seq("review", "LoopIteration") < seq("review", "End"));
    assert!(seq("review", "End") < seq("done", "Start"));
}

#[test]
fn loop_at_max_iterations_fails_by_default_and_succeeds_with_on_max_succeed() {
    let wf = |on_max: &str| {
        format!(
            "version: 1\nname: m\nnodes:\n  - id: l\n    loop:\n      max_iterations: 2\n{on_max}      until: 'false'\n      nodes:\n        - id: x\n          tool: echo\n          with: {{ message: hi }}\n"
        )
    };
    let out = Test::new()
        .workflow(&wf(""))
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(1);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let it = events(&ledger, "LoopIteration");
    assert_eq!(it.len(), 2);
    assert_eq!(it[1]["ended"], "max_iterations");
    let end = events(&ledger, "End")
        .into_iter()
        .find(|e| e["node"] == "l")
        .unwrap();
    assert_eq!(end["status"], "failed");
    assert!(end["error"].as_str().unwrap().contains("max_iterations"));
    Test::new()
        .workflow(&wf("      on_max: succeed\n"))
        .args(["run", "wf.yaml"])
        .run()
        .code(0);
}

#[test]
fn loop_state_and_previous_iteration_values_are_in_scope() {
    let wf = "version: 1
name: s
nodes:
  - id: l
    loop:
      max_iterations: 4
      on_max: succeed
      state: { log: [] }
      update: { log: '{{ loop.state.log + [nodes.x.output] }}' }
      output: '{{ loop.state.log | join(\",\") }}'
      nodes:
        - id: x
          tool: echo
          with: { message: '{{ loop.iteration }}:{{ loop.previous.x.output if loop.iteration > 1 else \"none\" }}' }
  - id: show
    tool: echo
    with: { message: '{{ nodes.l.output }}' }
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(0);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let outputs: Vec<&str> = events(&ledger, "ToolOutput")
        .iter()
        .map(|e| e["output"].as_str().unwrap())
        .collect();
    assert_eq!(
        outputs,
        [
            "1:none",
            "2:1:none",
            "3:2:1:none",
            "4:3:2:1:none",
            // `show` reads the loop's `output:` template over the final state.
            "1:none,2:1:none,3:2:1:none,4:3:2:1:none",
        ]
    );
    let last = events(&ledger, "LoopIteration").pop().unwrap().clone();
    assert_eq!(last["state"]["log"].as_array().unwrap().len(), 4);
}

const NESTED: &str = "version: 1
name: nested
nodes:
  - id: items
    tool: echo
    with: { message: ab }
  - id: outer
    loop:
      max_iterations: 2
      nodes:
        - id: inner
          loop:
            max_iterations: 2
            on_max: succeed
            nodes:
              - id: x
                for_each: ['a', 'b', 'c']
                tool: echo
                with: { message: '{{ nodes.items.output }}-{{ item }}-{{ loop.iteration }}' }
              - id: r
                tool: echo
                with: { message: side }
      on_max: succeed
";

#[test]
fn for_each_inside_a_loop_inside_a_loop_has_nested_instance_ids() {
    let out = Test::new()
        .workflow(NESTED)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let x = ledger
        .iter()
        .find(|e| e["node"] == "outer#2/inner#1/x[2]" && e["event"] == "ToolOutput")
        .expect("the item's output");
    assert_eq!(x["output"], "ab-c-1");
    let loops: Vec<&str> = events(&ledger, "LoopIteration")
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        loops,
        [
            "outer#1/inner",
            "outer#1/inner",
            "outer",
            "outer#2/inner",
            "outer#2/inner",
            "outer"
        ]
    );
}

#[test]
fn loop_ledgers_are_the_same_at_any_jobs() {
    let t = Test::new().workflow(REVIEW).file("n.yaml", NESTED);
    let dir = t.path().to_path_buf();
    for wf in ["wf.yaml", "n.yaml"] {
        let mut ledgers = Vec::new();
        for jobs in ["1", "2", "8"] {
            let name = format!("{wf}-{jobs}.jsonl");
            Test::new()
                .args(["run", wf, "--jobs", jobs, "--ledger", &name, "-q"])
                .run_in(&dir)
                .code(0);
            ledgers.push(std::fs::read(dir.join(&name)).unwrap());
        }
        assert_eq!(ledgers[0], ledgers[1], "{wf}: --jobs 1 and 2");
        assert_eq!(ledgers[0], ledgers[2], "{wf}: --jobs 1 and 8");
    }
    drop(t);
}

#[test]
fn loop_replay_matches_and_against_reports_the_first_changed_iteration() {
    let t = Test::new().workflow(REVIEW).file(
        "changed.yaml",
        &REVIEW.replace(
            "v{{ loop.iteration }}'",
            "v{{ loop.iteration }}{{ \"!\" if loop.iteration == 2 else \"\" }}'",
        ),
    );
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-q"])
        .run_in(&dir)
        .code(0);
    Test::new()
        .args(["replay", "--check", "l.jsonl"])
        .run_in(&dir)
        .code(0)
        .stdout_contains("replay matches");
    Test::new()
        .args(["replay", "l.jsonl", "--against", "changed.yaml"])
        .run_in(&dir)
        .code(1)
        .stdout_contains("node `review#2/write`");
    // The state so far, in the middle of the loop: the first iteration's state.
    let ledger = lines(&dir.join("l.jsonl"));
    let first = ledger
        .iter()
        .position(|e| e["event"] == "LoopIteration")
        .unwrap();
    Test::new()
        .args(["replay", "l.jsonl", "--until", &first.to_string()])
        .run_in(&dir)
        .code(0)
        .stdout_contains("review#1/check")
        .stdout_contains("write about loops v1\",\"score\":1");
    drop(t);
}

#[test]
fn diff_aligns_loop_calls_by_iteration() {
    let t = Test::new()
        .workflow(REVIEW)
        .file("b.yaml", &REVIEW.replace("checked {{", "CHECKED {{"));
    let dir = t.path().to_path_buf();
    for (wf, l) in [("wf.yaml", "a.jsonl"), ("b.yaml", "b.jsonl")] {
        Test::new()
            .args(["run", wf, "--ledger", l, "-q"])
            .run_in(&dir)
            .code(0);
    }
    let out = Test::new()
        .args(["diff", "a.jsonl", "b.jsonl", "--format", "json"])
        .run_in(&dir)
        .code(1);
    let text = out.stdout;
    for n in 1..=3 {
        assert!(text.contains(&format!("review#{n}/check")), "{text}");
    }
    assert!(
        !text.contains("review#1/write"),
        "unchanged calls are aligned: {text}"
    );
    drop(t);
}

#[test]
fn resume_continues_a_loop_cut_in_the_middle_of_an_iteration() {
    let t = Test::new().workflow(REVIEW);
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "--ledger", "full.jsonl", "-q"])
        .run_in(&dir)
        .code(0);
    let full = std::fs::read_to_string(dir.join("full.jsonl")).unwrap();
    // Cut after the `End` of `review#2/write`: iteration 2 is half done; then tear the next line.
    let cut = full
        .lines()
        .position(|l| l.contains("\"End\"") && l.contains("review#2/write"))
        .unwrap();
    let mut prefix: String = full
        .lines()
        .take(cut + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    let torn = full.lines().nth(cut + 1).unwrap();
    prefix.push_str(&torn[..torn.len() / 2]);
    std::fs::write(dir.join("cut.jsonl"), &prefix).unwrap();
    Test::new()
        .args(["run", "wf.yaml", "--resume", "cut.jsonl", "-q"])
        .run_in(&dir)
        .code(0);
    assert_eq!(
        std::fs::read_to_string(dir.join("cut.jsonl")).unwrap(),
        full
    );
    drop(t);
}

#[test]
fn reading_a_body_node_from_outside_its_loop_is_an_error_with_location() {
    let wf = "version: 1
name: r
nodes:
  - id: l
    loop:
      max_iterations: 2
      nodes:
        - id: x
          tool: echo
          with: { message: hi }
  - id: y
    tool: echo
    with: { message: '{{ nodes.x.output }}' }
";
    let d = diagnostics(wf);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].line, 13);
    assert!(
        d[0].help
            .as_deref()
            .unwrap()
            .contains("read `nodes.l.output` instead"),
        "{d:?}"
    );
}

#[test]
fn body_nodes_get_the_same_diagnostics_with_locations() {
    let wf = "version: 1
name: b
nodes:
  - id: l
    loop:
      max_iterations: 20000
      nodes:
        - id: x
          tool: ecko
        - id: y
          needs: [nope]
          tool: echo
          with: { message: '{{ inputs.missing }} {{ loop.bogus }}' }
";
    let d = diagnostics(wf);
    let at: Vec<(u64, &str)> = d.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert!(
        at.iter()
            .any(|(l, m)| *l == 6 && m.contains("max_iterations")),
        "{at:?}"
    );
    assert!(
        at.iter().any(|(l, m)| *l == 9 && m.contains("ecko")),
        "{at:?}"
    );
    assert!(
        at.iter().any(|(l, m)| *l == 11 && m.contains("nope")),
        "{at:?}"
    );
    assert!(
        at.iter().any(|(l, m)| *l == 13 && m.contains("missing")),
        "{at:?}"
    );
    assert!(
        at.iter().any(|(l, m)| *l == 13 && m.contains("bogus")),
        "{at:?}"
    );
}

#[test]
fn max_calls_of_a_body_node_counts_every_iteration() {
    let wf = "version: 1
name: c
policy: { max_calls: { x: 2 } }
nodes:
  - id: l
    loop:
      max_iterations: 3
      on_max: succeed
      nodes:
        - id: x
          tool: echo
          with: { message: hi }
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let limited = events(&ledger, "CallLimitExceeded");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["node"], "l#3/x");
}

#[test]
fn graph_draws_loops_as_clusters() {
    let t = Test::new().workflow(REVIEW);
    let dir = t.path().to_path_buf();
    let mermaid = Test::new()
        .args(["graph", "wf.yaml"])
        .run_in(&dir)
        .code(0)
        .stdout;
    assert!(
        mermaid.contains("subgraph cn1[\"review (loop, at most 5)\"]"),
        "{mermaid}"
    );
    assert!(mermaid.contains("n1_0 --> n1_1"), "{mermaid}");
    let dot = Test::new()
        .args(["graph", "wf.yaml", "--format", "dot"])
        .run_in(&dir)
        .code(0)
        .stdout;
    assert!(dot.contains("subgraph cluster_n1 {"), "{dot}");
    if crate::common::require_program("dot") {
        std::fs::write(dir.join("g.dot"), &dot).unwrap();
        let status = std::process::Command::new("dot")
            .args(["-Tsvg", "-o"])
            .arg(dir.join("g.svg"))
            .arg(dir.join("g.dot"))
            .status()
            .unwrap();
        assert!(status.success(), "Graphviz rejects:\n{dot}");
    }
    drop(t);
}

/// A random workflow with loops: top-level nodes around a loop whose body is a random DAG of
/// sleeps, processes, random draws, `for_each` and reads of the previous iteration, sometimes
/// with a loop nested in the body. Timing varies from run to run; the ledger must not.
fn looping(n: usize, seed: u64) -> String {
    let mut state = seed | 1;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m.max(1) as u64) as usize
    };
    let mut y = String::from(
        "version: 1\nname: prop\nseed: 3\npolicy: { preset: permissive }\nnodes:\n  - id: before\n    tool: sleep\n    with: { duration: 2ms }\n  - id: l\n    loop:\n",
    );
    let iterations = 1 + next(4);
    let _ = std::fmt::Write::write_fmt(
        &mut y,
        format_args!(
            "      max_iterations: {iterations}\n      on_max: succeed\n      state: {{ n: 0 }}\n      update: {{ n: '{{{{ loop.state.n + 1 }}}}' }}\n      until: 'loop.state.n >= {}'\n      nodes:\n",
            1 + next(iterations + 1)
        ),
    );
    for i in 0..n {
        let _ = std::fmt::Write::write_fmt(&mut y, format_args!("        - id: b{i}\n"));
        if i > 0 && next(2) == 0 {
            let _ = std::fmt::Write::write_fmt(
                &mut y,
                format_args!("          needs: [b{}]\n", next(i)),
            );
        }
        if next(4) == 0 {
            let _ = std::fmt::Write::write_fmt(
                &mut y,
                format_args!("          priority: {}\n", next(3)),
            );
        }
        let body = match next(7) {
            0 => "          tool: sleep\n          with: { duration: 1ms }\n".to_string(),
            1 => format!("          run: echo b{i}-{{{{ loop.iteration }}}}\n"),
            2 => "          tool: random\n          with: { int: [1, 100] }\n".to_string(),
            3 => "          for_each: [a, b]\n          tool: sleep\n          with: { duration: 1ms }\n".to_string(),
            4 if i > 0 => format!(
                "          tool: echo\n          with: {{ message: \"{{{{ loop.previous.b{}.status if loop.iteration > 1 else 'first' }}}}\" }}\n",
                next(i)
            ),
            5 => format!(
                "          loop:\n            max_iterations: 2\n            on_max: succeed\n            nodes:\n              - id: inner{i}\n                tool: random\n                with: {{ int: [1, 9] }}\n              - id: nap{i}\n                tool: sleep\n                with: {{ duration: 1ms }}\n"
            ),
            _ => "          tool: noop\n".to_string(),
        };
        y.push_str(&body);
    }
    y.push_str("  - id: after\n    tool: echo\n    with: { message: '{{ nodes.l.output.n }}' }\n  - id: side\n    run: echo side\n");
    y
}

fn ledger_at(yaml: &str, jobs: &str) -> Vec<u8> {
    let t = Test::new().workflow(yaml);
    let path = t.path().join("l.jsonl");
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "-j", jobs])
        .run();
    assert!(
        out.code == 0 || out.code == 1,
        "exit {}: {}\n{yaml}",
        out.code,
        out.stderr
    );
    std::fs::read(path).expect("ledger written")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 6, ..Default::default() })]

    #[test]
    fn loop_ledgers_are_identical_at_jobs_1_2_and_8(n in 2usize..12, seed in proptest::prelude::any::<u64>()) {
        let yaml = looping(n, seed);
        let reference = ledger_at(&yaml, "1");
        proptest::prop_assert!(String::from_utf8_lossy(&reference).contains("\"LoopIteration\""));
        for jobs in ["2", "8"] {
            let other = ledger_at(&yaml, jobs);
            proptest::prop_assert!(other == reference, "loop ledger differs at --jobs {}\n{}", jobs, yaml);
        }
    }
}

#[test]
fn for_each_on_a_loop_is_refused_with_its_location() {
    let wf = "version: 1
name: r
nodes:
  - id: l
    for_each: [1, 2]
    loop:
      max_iterations: 2
      nodes:
        - id: ok
          approval: { prompt: go? }
";
    let d = diagnostics(wf);
    let at: Vec<(u64, &str)> = d.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert_eq!(at.len(), 1, "{at:?}");
    assert!(
        at[0].0 == 5 && at[0].1.contains("`for_each` is for task nodes"),
        "{at:?}"
    );
}

/// A loop whose body appends to a file per call, so a test can count the calls that ran.
const COUNTED: &str = "version: 1
name: counted
policy: { preset: permissive }
nodes:
  - id: l
    loop:
      max_iterations: 4
      on_max: succeed
      nodes:
        - id: work
          run: echo {{ loop.iteration }} >> calls.txt
        - id: nap
          needs: [work]
          tool: sleep
          with: { duration: 150ms }
  - id: after
    run: echo done
";

#[test]
fn ctrl_c_in_a_loop_pauses_and_resume_runs_only_what_had_not_committed() {
    let t = Test::new().workflow(COUNTED);
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "-q", "--ledger", "full.jsonl"])
        .run_in(&dir)
        .code(0);
    let full = std::fs::read_to_string(dir.join("full.jsonl")).unwrap();
    std::fs::remove_file(dir.join("calls.txt")).unwrap();
    let child = crate::common::spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    // Interrupt once the second iteration has begun (the ledger holds the first one).
    let mut waited = 0;
    while !std::fs::read_to_string(dir.join("l.jsonl"))
        .unwrap_or_default()
        .contains("\"iteration\":1")
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
        assert!(waited < 3000, "the first iteration never committed");
    }
    {
        use rustix::process::{Pid, Signal, kill_process};
        kill_process(Pid::from_child(&child), Signal::INT).expect("send SIGINT");
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paused = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert!(paused.trim_end().ends_with("}") && paused.contains("\"RunPaused\""));
    assert!(
        !paused.contains("\"node\":\"l\",\"status\""),
        "the loop did not end"
    );
    let ran_before = std::fs::read_to_string(dir.join("calls.txt")).unwrap();
    Test::new()
        .args(["run", "wf.yaml", "--resume", "l.jsonl", "-q"])
        .run_in(&dir)
        .code(0);
    assert_eq!(std::fs::read_to_string(dir.join("l.jsonl")).unwrap(), full);
    // Every iteration's `work` ran exactly once, over the two invocations.
    let all = std::fs::read_to_string(dir.join("calls.txt")).unwrap();
    assert_eq!(all, "1\n2\n3\n4\n", "before the interrupt: {ran_before:?}");
    drop(t);
}

#[test]
fn secrets_in_loop_state_are_masked_in_the_ledger() {
    let wf = "version: 1
name: masked
policy: { secrets: [LOOP_TOKEN] }
inputs:
  token: { default: '' }
nodes:
  - id: l
    loop:
      max_iterations: 1
      on_max: succeed
      state: { seen: '' }
      update: { seen: '{{ nodes.x.output }}' }
      nodes:
        - id: x
          tool: echo
          with: { message: 'token {{ inputs.token }}' }
";
    let out = Test::new()
        .workflow(wf)
        .env("LOOP_TOKEN", "s3cr3t-value")
        .args([
            "run",
            "wf.yaml",
            "--ledger",
            "l.jsonl",
            "--input",
            "token=s3cr3t-value",
        ])
        .run()
        .code(0);
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(text.contains("\"event\":\"LoopIteration\""));
    assert!(!text.contains("s3cr3t-value"), "{text}");
}

/// A reviewer loop whose second iteration asks a person, and a node after the loop.
const REVIEWED: &str = "version: 1
name: reviewed
policy: { preset: permissive }
nodes:
  - id: draft
    loop:
      max_iterations: 3
      on_max: succeed
      nodes:
        - id: write
          tool: template
          with: { text: 'draft {{ loop.iteration }}' }
        - id: ok
          if: loop.iteration == 2
          needs: [write]
          approval: { prompt: 'ship {{ nodes.write.output }}?' }
      until: loop.iteration == 2
  - id: after
    needs: [draft]
    run: echo shipped >> shipped.txt
";

#[test]
fn an_approval_in_a_loop_body_pauses_the_run_and_resume_takes_the_decision() {
    let t = Test::new().workflow(REVIEWED);
    let dir = t.path().to_path_buf();
    // Decided up front: the ledger a paused-then-resumed run must end up with.
    Test::new()
        .args(["run", "wf.yaml", "-q", "--ledger", "upfront.jsonl"])
        .args(["--approve", "draft#2/ok", "--approver", "ann"])
        .run_in(&dir)
        .code(0);
    let upfront = std::fs::read_to_string(dir.join("upfront.jsonl")).unwrap();
    assert!(upfront.contains("\"ApprovalResolved\""), "{upfront}");
    for jobs in ["1", "8"] {
        Test::new()
            .args([
                "run",
                "wf.yaml",
                "-q",
                "--ledger",
                &format!("j{jobs}.jsonl"),
                "--jobs",
                jobs,
            ])
            .args(["--approve", "draft#2/ok", "--approver", "ann"])
            .run_in(&dir)
            .code(0);
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("j{jobs}.jsonl"))).unwrap(),
            upfront,
            "--jobs {jobs}"
        );
    }
    std::fs::remove_file(dir.join("shipped.txt")).unwrap();

    let paused = Test::new()
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run_in(&dir)
        .code(4);
    assert!(
        paused.stdout.contains("--approve draft#2/ok"),
        "{}",
        paused.stdout
    );
    let ledger = lines(&dir.join("l.jsonl"));
    let requested = events(&ledger, "ApprovalRequested");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["node"], "draft#2/ok");
    assert_eq!(requested[0]["prompt"], "ship draft 2?");
    let trailer = ledger.last().unwrap();
    assert_eq!(trailer["event"], "RunPaused");
    assert_eq!(trailer["pending"], serde_json::json!(["draft#2/ok"]));
    // Nothing after the loop ran.
    assert!(!dir.join("shipped.txt").exists());

    // An id that is no approval is refused before anything runs.
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "--resume",
            "l.jsonl",
            "--approve",
            "draft#2/write",
        ])
        .run_in(&dir)
        .code(2)
        .stderr_contains("not an approval node");
    Test::new()
        .args(["run", "wf.yaml", "-q", "--resume", "l.jsonl"])
        .args(["--approve", "draft#2/ok", "--approver", "ann"])
        .run_in(&dir)
        .code(0);
    assert_eq!(
        std::fs::read_to_string(dir.join("l.jsonl")).unwrap(),
        upfront
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("shipped.txt")).unwrap(),
        "shipped\n"
    );
    Test::new()
        .args(["replay", "--check", "l.jsonl"])
        .run_in(&dir)
        .code(0);
    drop(t);
}

#[test]
fn a_rejection_in_a_loop_body_fails_the_loop() {
    let out = Test::new()
        .workflow(REVIEWED)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .args(["--reject", "draft#2/ok", "--reason", "not yet"])
        .run()
        .code(1);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let it = events(&ledger, "LoopIteration");
    assert_eq!(it.len(), 2);
    assert_eq!(it[1]["ended"], "failed");
    let skipped = events(&ledger, "Skipped");
    assert!(skipped.iter().any(|e| e["node"] == "after"), "{skipped:?}");
}

#[test]
fn a_call_that_needs_an_approval_inside_a_loop_waits_for_it() {
    let wf = "version: 1
name: gated
policy: { preset: permissive, require_approval: [subprocess] }
nodes:
  - id: l
    loop:
      max_iterations: 2
      on_max: succeed
      nodes:
        - id: x
          run: echo hi
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(4);
    let dir = out.dir.path();
    let ledger = lines(&dir.join("l.jsonl"));
    let requested = events(&ledger, "ApprovalRequested");
    assert_eq!(requested[0]["node"], "l#1/x");
    assert!(events(&ledger, "ToolOutput").is_empty());
    // Each iteration's call is its own decision.
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "--resume",
            "l.jsonl",
            "--approve",
            "l#1/x",
        ])
        .run_in(dir)
        .code(4);
    let ledger = lines(&dir.join("l.jsonl"));
    assert_eq!(
        ledger.last().unwrap()["pending"],
        serde_json::json!(["l#2/x"])
    );
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--resume",
            "l.jsonl",
            "--approve",
            "l#2/x",
        ])
        .run_in(dir)
        .code(0);
    let ledger = lines(&dir.join("l.jsonl"));
    assert_eq!(events(&ledger, "ToolOutput").len(), 2);
    assert_eq!(events(&ledger, "ApprovalResolved").len(), 2);
}

/// The shape an `agent:` node will expand to: a body that asks a "model" (here a one-item
/// `random` choice giving the list of tool calls, shorter each turn), runs every call it asked for in
/// parallel (`for_each` over this iteration's answer), and appends the results to the
/// conversation; the loop ends when the answer asks for no calls.
#[test]
fn an_agent_shaped_loop_fans_out_over_the_calls_each_turn_asks_for() {
    let wf = "version: 1
name: agent-shape
nodes:
  - id: agent
    loop:
      max_iterations: 5
      state: { messages: [] }
      update:
        messages: '{{ loop.state.messages + [nodes.model.output] + nodes.tools.output }}'
      until: 'nodes.model.output | length == 0'
      output: '{{ loop.state.messages | length }}'
      nodes:
        - id: model
          tool: random
          with:
            choice: ['{{ [[\"search\", \"fetch\"], [\"fetch\"], []][loop.iteration - 1] }}']
        - id: tools
          needs: [model]
          for_each: nodes.model.output
          tool: template
          with: { text: 'result of {{ item }} in turn {{ loop.iteration }}' }
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-j", "4"])
        .run()
        .code(0);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let calls: Vec<&str> = events(&ledger, "ToolOutput")
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .filter(|n| n.contains("/tools["))
        .collect();
    assert_eq!(
        calls,
        ["agent#1/tools[0]", "agent#1/tools[1]", "agent#2/tools[0]"]
    );
    let it = events(&ledger, "LoopIteration");
    assert_eq!(it.len(), 3);
    assert_eq!(it[2]["ended"], "until");
    // Two answers with calls, three results, one final answer.
    assert_eq!(it[2]["state"]["messages"].as_array().unwrap().len(), 6);
}

/// Crash test: kill -9 at several moments of a loop, resume, and compare with an
/// uninterrupted run.
#[test]
fn kill_9_in_a_loop_then_resume_gives_the_uninterrupted_ledger() {
    let wf = COUNTED.replace(" >> calls.txt", "");
    let t = Test::new().workflow(&wf);
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "-q", "--ledger", "full.jsonl"])
        .run_in(&dir)
        .code(0);
    let full = std::fs::read(dir.join("full.jsonl")).unwrap();
    let mut resumed = 0;
    for (k, delay) in [40u64, 170, 260, 390, 520].into_iter().enumerate() {
        let ledger = format!("k{k}.jsonl");
        let mut child = crate::common::spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", &ledger]);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        let prefix = std::fs::read_to_string(dir.join(&ledger)).unwrap_or_default();
        if !prefix.contains('\n') || prefix.contains("\"RunEnd\"") {
            continue; // nothing to resume, or the run finished first
        }
        Test::new()
            .args(["run", "wf.yaml", "-q", "--resume", &ledger])
            .run_in(&dir)
            .code(0);
        assert_eq!(
            std::fs::read(dir.join(&ledger)).unwrap(),
            full,
            "killed after {delay} ms"
        );
        resumed += 1;
    }
    assert!(resumed > 0, "no kill landed in the middle of the run");
    drop(t);
}

#[test]
fn a_failing_update_fails_the_loop_with_a_located_diagnostic() {
    let wf = "version: 1
name: bad
nodes:
  - id: l
    loop:
      max_iterations: 2
      state: { s: 0 }
      update: { s: '{{ nodes.x.output + 1 }}' }
      nodes:
        - id: x
          tool: echo
          with: { message: hi }
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(1)
        .stderr_contains("kairos::template_failed")
        .stderr_contains("wf.yaml:8:");
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let it = events(&ledger, "LoopIteration");
    assert_eq!(
        (it.len(), &it[0]["ended"]),
        (1, &serde_json::json!("failed"))
    );
    assert_eq!(it[0]["state"]["s"], 0, "the state is not updated");
}

#[test]
fn a_nested_body_reading_a_later_top_level_node_makes_the_outer_loop_wait_for_it() {
    let wf = "version: 1
name: nest
nodes:
  - id: outer
    loop:
      max_iterations: 2
      on_max: succeed
      nodes:
        - id: mid
          tool: echo
          with: { message: 'mid {{ loop.iteration }}' }
        - id: inner
          loop:
            max_iterations: 1
            on_max: succeed
            state: { first: '{{ nodes.mid.output }}' }
            nodes:
              - id: leaf
                tool: echo
                with: { message: '{{ nodes.late.output }} / {{ loop.state.first }}' }
  - id: nap
    tool: sleep
    with: { duration: 30ms }
  - id: late
    needs: [nap]
    tool: echo
    with: { message: late }
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-j", "4"])
        .run()
        .code(0);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let leaf: Vec<&str> = events(&ledger, "ToolOutput")
        .iter()
        .filter(|e| e["node"].as_str().unwrap().ends_with("/leaf"))
        .map(|e| e["output"].as_str().unwrap())
        .collect();
    assert_eq!(leaf, ["late / mid 1", "late / mid 2"]);
    let at = |node: &str| ledger.iter().position(|e| e["node"] == node).unwrap();
    assert!(
        at("late") < at("outer#1/mid"),
        "the loop waits for what its body reads"
    );
    let graph = Test::new()
        .args(["graph", "wf.yaml"])
        .run_in(out.dir.path())
        .code(0)
        .stdout;
    assert!(graph.contains("n2 -.-> n0"), "{graph}");
    assert!(graph.contains("n0_0 -.-> n0_1"), "{graph}");
}

#[test]
fn participants_take_turns_by_if_until_one_says_done() {
    let wf = "version: 1
name: turns
nodes:
  - id: chat
    loop:
      max_iterations: 6
      state: { transcript: [] }
      update:
        transcript: \"{{ loop.state.transcript + [nodes.alice.output if loop.iteration % 2 == 1 else nodes.bob.output] }}\"
      until: \"'DONE' in loop.state.transcript[-1]\"
      nodes:
        - id: alice
          if: 'loop.iteration % 2 == 1'
          tool: template
          with: { text: 'alice, turn {{ loop.iteration }}' }
        - id: bob
          if: 'loop.iteration % 2 == 0'
          tool: template
          with: { text: \"bob, turn {{ loop.iteration }}{{ ' DONE' if loop.iteration >= 4 else '' }}\" }
";
    let out = Test::new()
        .workflow(wf)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let ledger = lines(&out.dir.path().join("l.jsonl"));
    let last = events(&ledger, "LoopIteration").pop().unwrap().clone();
    assert_eq!(last["iteration"], 4);
    assert_eq!(
        last["state"]["transcript"],
        serde_json::json!([
            "alice, turn 1",
            "bob, turn 2",
            "alice, turn 3",
            "bob, turn 4 DONE"
        ])
    );
    let skipped: Vec<&str> = events(&ledger, "Skipped")
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        ["chat#1/bob", "chat#2/alice", "chat#3/bob", "chat#4/alice"]
    );
}

#[test]
fn diff_reports_a_different_number_of_iterations() {
    let t = Test::new()
        .workflow(REVIEW)
        .file("b.yaml", &REVIEW.replace("score >= 3", "score >= 4"));
    let dir = t.path().to_path_buf();
    for (wf, l) in [("wf.yaml", "a.jsonl"), ("b.yaml", "b.jsonl")] {
        Test::new()
            .args(["run", wf, "--ledger", l, "-q"])
            .run_in(&dir)
            .code(0);
    }
    let out = Test::new()
        .args(["diff", "a.jsonl", "b.jsonl", "--format", "json"])
        .run_in(&dir)
        .code(1)
        .json();
    let nodes = out["nodes"].as_array().unwrap();
    let review = nodes.iter().find(|n| n["node"] == "review").unwrap();
    let iterations = review["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["field"] == "iterations")
        .unwrap();
    assert_eq!((&iterations["a"], &iterations["b"]), (&3.into(), &4.into()));
    let only_b = nodes
        .iter()
        .find(|n| n["node"] == "review#4/write")
        .unwrap();
    assert_eq!(only_b["only_in"], "b");
    drop(t);
}

#[test]
fn a_decision_the_run_does_not_reach_is_named_when_it_pauses() {
    let wf = "version: 1
name: gated
policy: { preset: permissive, require_approval: [subprocess] }
nodes:
  - id: l
    loop:
      max_iterations: 2
      on_max: succeed
      nodes:
        - id: x
          run: echo hi
";
    let out = Test::new()
        .workflow(wf)
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "l.jsonl",
            "--approve",
            "l#2/x",
        ])
        .run()
        .code(4)
        .stderr_contains("the run stopped before it reached `l#2/x`");
    assert!(!out.stderr.contains("l#1/x`"), "{}", out.stderr);
}
