//! Bounded work: waits end at the first Ctrl-C, durations have a maximum, retries count as
//! calls, templates run on fuel with an output cap, and `for_each` lists and values have a
//! size limit. Attack inputs are in `tests/fixtures/attacks/limits/`.

use crate::common::{Test, single, spawn};
use std::path::Path;
use std::time::{Duration, Instant};

/// Sends SIGINT (or SIGTERM), as Ctrl-C (or a service manager) does.
fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    use rustix::process::{Pid, kill_process};
    kill_process(Pid::from_child(child), signal).expect("send a signal");
}

/// Starts `kairos run` on `yaml` in `dir`, waits until it is in its wait (`ready` exists, or
/// a moment), sends `sig` once, and checks it pauses with exit 130 well before the wait ends.
fn first_signal_ends_the_wait(yaml: &str, sig: rustix::process::Signal) {
    let t = Test::new().workflow(yaml);
    let dir = t.path().to_path_buf();
    let mut child = spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    let started = Instant::now();
    while !dir.join("ready").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Past the command, into the wait that follows it.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(&child, sig);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kairos did not stop within 20 s of the first signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["event"].as_str(), last["reason"].as_str()),
        (Some("RunPaused"), Some("interrupted")),
        "{text}"
    );
    assert!(
        !text.contains("\"node\":\"wait\""),
        "a wait cut short is not committed: {text}"
    );
    drop(t);
}

#[test]
fn first_sigint_ends_a_long_sleep() {
    first_signal_ends_the_wait(
        "version: 1\nname: nap\npolicy: { preset: permissive }\nnodes:\n  - id: mark\n    run: touch ready\n  - id: wait\n    needs: [mark]\n    tool: sleep\n    with: { duration: 1h }\n",
        rustix::process::Signal::INT,
    );
}

#[test]
fn first_sigterm_ends_a_long_sleep() {
    first_signal_ends_the_wait(
        "version: 1\nname: nap\npolicy: { preset: permissive }\nnodes:\n  - id: mark\n    run: touch ready\n  - id: wait\n    needs: [mark]\n    tool: sleep\n    with: { duration: 1h }\n",
        rustix::process::Signal::TERM,
    );
}

#[test]
fn first_sigint_ends_a_retry_backoff() {
    first_signal_ends_the_wait(
        "version: 1\nname: flaky\npolicy: { preset: permissive }\nnodes:\n  - id: wait\n    run: touch ready; exit 1\n    retry: { attempts: 3, backoff: 1h }\n",
        rustix::process::Signal::INT,
    );
}

#[test]
fn durations_longer_than_a_week_are_invalid() {
    let yaml = "version: 1\nname: absurd\nnodes:\n  - id: wait\n    tool: sleep\n    with: { duration: 999999999h }\n";
    single(
        yaml,
        "invalid_value",
        6,
        23,
        "duration `999999999h` is longer than the longest allowed, 168h",
    );
    let yaml =
        "version: 1\nname: absurd\nnodes:\n  - id: a\n    tool: noop\n    timeout: 168h1ms\n";
    single(
        yaml,
        "invalid_value",
        6,
        14,
        "duration `168h1ms` is longer than the longest allowed, 168h",
    );
    let yaml = "version: 1\nname: fine\nnodes:\n  - id: a\n    tool: noop\n    timeout: 168h\n    retry: { attempts: 2, backoff: 1s, max_backoff: 168h }\n";
    Test::new()
        .workflow(yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(0);
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/attacks/limits")
            .join(name),
    )
    .unwrap()
}

#[test]
fn literal_for_each_over_the_item_limit_is_invalid() {
    let yaml = fixture("for_each_100001.yaml");
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "--format", "json", "wf.yaml"])
        .run()
        .code(2);
    let d = &out.json()["files"][0]["diagnostics"][0];
    assert_eq!(d["code"], "kairos::invalid_value", "{d}");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(5), Some(15))
    );
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("`for_each` lists 100001 items, more than the limit of 100000"),
        "{d}"
    );
}

#[test]
fn rendered_for_each_over_the_item_limit_fails_the_node() {
    let yaml = "version: 1\nname: wide\npolicy: { preset: permissive }\nnodes:\n  - id: many\n    run: seq 100001\n  - id: each\n    needs: [many]\n    for_each: \"nodes.many.stdout | lines | list\"\n    tool: noop\n";
    let out = Test::new()
        .workflow(yaml)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(1)
        .stderr_contains("gave 100001 items, more than the limit of 100000");
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(!ledger.contains("\"each[0]\""), "no instance ran");
}

#[test]
fn literal_strings_over_a_mebibyte_are_invalid() {
    let big = "x".repeat((1 << 20) + 1);
    let yaml = format!(
        "version: 1\nname: big\nnodes:\n  - id: a\n    tool: echo\n    with: {{ message: {big} }}\n"
    );
    single(
        &yaml,
        "invalid_value",
        6,
        22,
        "this string is 1048577 bytes long, more than the limit of 1048576 bytes",
    );
}

const RETRIES_OVER_ONE_CALL: &str = "version: 1
name: retries
policy: { preset: permissive, max_calls: { shell: 1 } }
nodes:
  - id: flaky
    run: echo ran >> calls.txt; exit 1
    retry: { attempts: 6, backoff: 1ms }
";

#[test]
fn retries_count_as_calls() {
    let out = Test::new()
        .workflow(RETRIES_OVER_ONE_CALL)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let dir = out.dir.path();
    assert_eq!(
        std::fs::read_to_string(dir.join("calls.txt")).unwrap(),
        "ran\n",
        "the command ran exactly once"
    );
    let ledger = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert!(ledger.contains("\"rules\":3"), "{ledger}");
    assert!(
        ledger.contains("\"event\":\"CallLimitExceeded\",\"clock\":3,\"node\":\"flaky\",\"reason\":\"CALL_LIMIT_EXCEEDED\",\"key\":\"shell\",\"limit\":1,\"enforced\":true}"),
        "{ledger}"
    );
    assert!(
        ledger.contains("\"node\":\"flaky\",\"status\":\"failed\",\"attempts\":1,\"error\":\"denied by policy: CALL_LIMIT_EXCEEDED\""),
        "{ledger}"
    );
    assert!(!ledger.contains("\"event\":\"Retry\""), "{ledger}");
    // The replay re-counts the retries from the record and writes the same ledger.
    Test::new()
        .args(["replay", "--check", "l.jsonl"])
        .run_in(dir)
        .code(0);
}

#[test]
fn retries_beyond_the_limit_run_under_audit() {
    let yaml = RETRIES_OVER_ONE_CALL.replace(
        "max_calls: { shell: 1 }",
        "max_calls: { shell: 1 }, enforcement: audit",
    );
    let out = Test::new()
        .workflow(&yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(1);
    let dir = out.dir.path();
    assert_eq!(
        std::fs::read_to_string(dir.join("calls.txt"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    let ledger = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert_eq!(
        ledger.matches("\"event\":\"CallLimitExceeded\"").count(),
        5,
        "every retry over the limit is recorded: {ledger}"
    );
    assert!(!ledger.contains("\"enforced\":true"), "{ledger}");
}

/// Several retrying nodes and instances share one budget: which retries run must not depend
/// on which worker gets there first.
const SHARED_BUDGET: &str = "version: 1
name: shared
policy: { preset: permissive, max_calls: { shell: 9 } }
nodes:
  - id: fan
    for_each: [a, b, c, d, e, f]
    run: \"echo {{ item }} >> calls.txt; test -e ok-{{ item }} || { touch ok-{{ item }}; exit 1; }\"
    retry: { attempts: 3, backoff: 2ms }
  - id: other
    run: echo other >> calls.txt; exit 1
    retry: { attempts: 3, backoff: 1ms }
  - id: late
    needs: [other]
    run: echo late >> calls.txt
";

#[test]
fn retries_sharing_a_budget_are_granted_alike_at_any_jobs() {
    let mut ledgers = Vec::new();
    for jobs in ["1", "2", "8"] {
        let out = Test::new()
            .workflow(SHARED_BUDGET)
            .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "-j", jobs])
            .run()
            .code(3);
        let dir = out.dir.path();
        let mut calls: Vec<String> = std::fs::read_to_string(dir.join("calls.txt"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        calls.sort();
        // Six first attempts, then the retries of a, b and c (instance order); d, e and f
        // are refused theirs, and `other` its first call.
        assert_eq!(
            calls,
            ["a", "a", "b", "b", "c", "c", "d", "e", "f"],
            "--jobs {jobs}"
        );
        ledgers.push(std::fs::read_to_string(dir.join("l.jsonl")).unwrap());
    }
    assert_eq!(ledgers[0], ledgers[1], "--jobs 1 and 2");
    assert_eq!(ledgers[0], ledgers[2], "--jobs 1 and 8");
    assert_eq!(
        ledgers[0]
            .matches("\"event\":\"CallLimitExceeded\"")
            .count(),
        4,
        "{}",
        ledgers[0]
    );
}

/// Runs an attack workflow from the fixtures; returns its output and ledger.
fn run_attack(name: &str) -> (crate::common::Output, String) {
    let out = Test::new()
        .workflow(&fixture(name))
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run();
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    (out, ledger)
}

#[test]
fn template_nested_loops_run_out_of_fuel() {
    let started = Instant::now();
    let (out, ledger) = run_attack("template_nested_loops.yaml");
    let out = out
        .code(1)
        .stderr_contains("kairos::template_failed")
        .stderr_contains("evaluation ran out of fuel");
    assert!(out.stderr.contains("wf.yaml:7:"), "{}", out.stderr);
    assert!(
        ledger.contains("\"event\":\"Error\",\"clock\":2,\"node\":\"spin\",\"message\":\"`text`: evaluation ran out of fuel (its budget is 1000000 units of work and memory; docs/workflow.md#limits)\"}"),
        "{ledger}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn template_recursive_macro_runs_out_of_fuel() {
    let started = Instant::now();
    let (out, _) = run_attack("template_recursive_macro.yaml");
    out.code(1).stderr_contains("evaluation ran out of fuel");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn template_doubling_stops_at_the_output_cap() {
    let (out, ledger) = run_attack("template_doubling.yaml");
    out.code(1)
        .stderr_contains("node `d17`: `with.message`: the rendered text is 8388608 bytes");
    assert!(
        ledger.contains("\"node\":\"d17\",\"message\":\"`message`: the rendered text is 8388608 bytes, more than the limit of 4194304 bytes (docs/workflow.md#limits)\"}"),
        "the node's error says why"
    );
    // 64 bytes doubled 16 times is the largest value that passes.
    assert!(ledger.contains("\"node\":\"d16\",\"status\":\"succeeded\""));
    assert!(ledger.contains("\"node\":\"d17\",\"status\":\"failed\""));
    assert!(
        ledger.len() < 64 << 20,
        "the ledger stays small: {}",
        ledger.len()
    );
}

#[test]
fn a_pure_tools_timeout_covers_its_rendering() {
    let yaml = "version: 1\nname: slow\nnodes:\n  - id: spin\n    tool: template\n    timeout: 1ms\n    with:\n      text: '{% for a in \"0123456789\" * 30 %}{% for b in \"0123456789\" * 30 %}x{% endfor %}{% endfor %}'\n";
    let out = Test::new()
        .workflow(yaml)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run()
        .code(1);
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(
        ledger.contains("\"attempt\":1,\"output\":null,\"error\":\"timed out after 1ms\"}"),
        "{ledger}"
    );
    // The recorded timeout replays as it was recorded.
    Test::new()
        .args(["replay", "--check", "l.jsonl"])
        .run_in(out.dir.path())
        .code(0);
}

#[test]
fn first_sigint_stops_a_fan_out_of_heavy_templates() {
    let t = Test::new().workflow(&fixture("template_heavy_fan_out.yaml"));
    let dir = t.path().to_path_buf();
    let mut child = spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    std::thread::sleep(Duration::from_millis(1000));
    let sent = Instant::now();
    signal(&child, rustix::process::Signal::INT);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kairos did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert!(text.trim_end().ends_with("\"reason\":\"interrupted\",\"pending\":[],\"resume\":\"kairos run WORKFLOW --resume LEDGER\"}"), "{text}");
    drop(t);
}

#[test]
fn a_call_waiting_for_its_turn_does_not_start_after_ctrl_c() {
    // `limited` is ready at once but, under a call limit, waits for `first` to commit; it is
    // a pure tool, which would run inline the moment its turn comes.
    let yaml = "version: 1\nname: turn\npolicy: { preset: permissive, max_calls: { limited: 5 } }\nnodes:\n  - id: first\n    run: touch ready; sleep 1\n  - id: limited\n    tool: echo\n    with: { message: started }\n";
    let t = Test::new().workflow(yaml);
    let dir = t.path().to_path_buf();
    let mut child = spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    let started = Instant::now();
    while !dir.join("ready").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, rustix::process::Signal::INT);
    let status = child.wait().unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert!(
        text.contains("\"node\":\"first\""),
        "the running node finished: {text}"
    );
    assert!(
        !text.contains("\"node\":\"limited\""),
        "no node starts after Ctrl-C: {text}"
    );
    drop(t);
}
