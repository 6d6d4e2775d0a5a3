//! What a run writes besides its ledger (`docs/cli.md`): the JUnit report (`--junit`), read by
//! an independent parser as CI reporters read it; the Chrome trace (`--trace`); the progress
//! line on a terminal, driven through a pseudo-terminal. None of them changes the ledger.

use crate::common::{Test, require_program, require_python_module, root};
use serde_json::Value;
use std::path::Path;

/// Every outcome a test case can have, a fan-out node, and a stderr with control characters.
const MIXED: &str = r#"version: 1
name: mixed
policy: { preset: permissive, paths: { read: ["allowed/*"] } }
nodes:
  - id: ok
    tool: echo
    with: { message: fine }
  - id: broken
    run: |
      printf 'first line\n' >&2
      printf 'colour \033[31mred\033[0m, bell \007, <tag> & "quote"\n' >&2
      exit 2
  - id: after
    needs: [broken]
    tool: noop
  - id: secret
    tool: file.read
    with: { path: /etc/hostname }
  - id: each
    for_each: [1, 2]
    tool: assert
    with: { that: "item == 1", message: "not one" }
"#;

/// Reads a JUnit report with `tests/fixtures/check_junit.py` (junitparser, and the schema's
/// rules); `None` when Python or junitparser is missing (the test is then skipped).
fn parse_junit(path: &Path) -> Option<Value> {
    if !require_python_module("junitparser", "pip install junitparser") {
        return None;
    }
    let out = std::process::Command::new("python3")
        .arg(root().join("tests/fixtures/check_junit.py"))
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the report breaks the JUnit schema:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    Some(serde_json::from_slice(&out.stdout).expect("the checker prints JSON"))
}

#[test]
fn junit_report_is_read_by_an_independent_parser() {
    let out = Test::new()
        .workflow(MIXED)
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "l.jsonl",
            "--junit",
            "junit.xml",
        ])
        .run()
        .code(3);
    let path = out.dir.path().join("junit.xml");
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(!xml.contains('\x1b') && !xml.contains('\x07'), "{xml}");
    let Some(suites) = parse_junit(&path) else {
        return;
    };
    let suite = &suites[0];
    assert_eq!(suites.as_array().unwrap().len(), 1);
    assert_eq!(suite["name"], "mixed");
    assert_eq!(
        (
            &suite["tests"],
            &suite["failures"],
            &suite["errors"],
            &suite["skipped"]
        ),
        (
            &Value::from(6),
            &Value::from(2),
            &Value::from(0),
            &Value::from(2)
        )
    );
    assert_eq!(suite["properties"]["kairos.status"], "denied");
    let head = read_head(&out.dir.path().join("l.jsonl"));
    assert_eq!(suite["properties"]["kairos.ledger_head"], head);
    let cases: Vec<(&str, &str)> = suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["classname"], "mixed");
            let kind = c["results"][0]["kind"].as_str().unwrap_or("passed");
            (c["name"].as_str().unwrap(), kind)
        })
        .collect();
    assert_eq!(
        cases,
        [
            ("ok", "passed"),
            ("broken", "failure"),
            ("after", "skipped"),
            ("secret", "skipped"),
            ("each[0]", "passed"),
            ("each[1]", "failure"),
        ]
    );
    let result = |i: usize| &suite["cases"][i]["results"][0];
    assert_eq!(result(1)["message"], "exit code 2");
    let text = result(1)["text"].as_str().unwrap();
    assert!(
        text.contains("stderr:\nfirst line\ncolour ␛[31mred␛[0m, bell ␇, <tag> & \"quote\""),
        "{text:?}"
    );
    assert_eq!(result(2)["message"], "`broken` failed");
    assert_eq!(result(3)["message"], "denied: PATH_NOT_PERMITTED");
    assert_eq!(result(5)["message"], "assertion failed: not one");
}

/// The SHA-256 of a ledger's last line.
fn read_head(path: &Path) -> String {
    use sha2::Digest;
    let text = std::fs::read_to_string(path).unwrap();
    hex::encode(sha2::Sha256::digest(
        text.lines().last().unwrap().as_bytes(),
    ))
}

/// The report without its times: what the ledger decides.
fn without_times(xml: &str) -> String {
    regex::Regex::new(r#" time="[0-9.]+""#)
        .unwrap()
        .replace_all(xml, "")
        .into_owned()
}

#[test]
fn junit_report_is_the_same_at_any_jobs_but_for_its_times() {
    let reports: Vec<String> = ["1", "4"]
        .iter()
        .map(|jobs| {
            let out = Test::new()
                .workflow(MIXED)
                .args([
                    "run",
                    "wf.yaml",
                    "-q",
                    "--junit",
                    "junit.xml",
                    "--jobs",
                    jobs,
                ])
                .run()
                .code(3);
            std::fs::read_to_string(out.dir.path().join("junit.xml")).unwrap()
        })
        .collect();
    assert_eq!(without_times(&reports[0]), without_times(&reports[1]));
}

#[test]
fn a_report_path_that_cannot_be_written_stops_the_run_before_it_starts() {
    for flag in ["--junit", "--trace"] {
        let out = Test::new()
            .workflow(MIXED)
            .args([
                "run",
                "wf.yaml",
                "--ledger",
                "l.jsonl",
                flag,
                "no/such/dir/out",
            ])
            .run()
            .code(2)
            .stderr_contains("no/such/dir/out");
        assert!(
            !out.dir.path().join("l.jsonl").exists(),
            "{flag}: nothing ran"
        );
    }
}

/// A retried call on a worker, an inline tool, a fan-out, and an approval decided up front.
const TRACED: &str = "version: 1
name: traced
policy: { preset: permissive }
nodes:
  - id: flaky
    run: exit 3
    retry: { attempts: 2, backoff: 20ms }
    continue_on_error: true
  - id: greet
    tool: echo
    with: { message: hi }
  - id: nap
    for_each: [a, b]
    tool: sleep
    with: { duration: 10ms }
  - id: ship
    needs: [greet]
    approval: { prompt: ship? }
";

#[test]
fn trace_has_a_slice_per_attempt_on_the_thread_that_ran_it() {
    let out = Test::new()
        .workflow(TRACED)
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "l.jsonl",
            "--trace",
            "trace.json",
        ])
        .args(["--approve", "ship"])
        .run()
        .code(0);
    let text = std::fs::read_to_string(out.dir.path().join("trace.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        assert!(
            e["ph"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(),
            "{e}"
        );
        if e["ph"] == "X" {
            assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0);
        }
    }
    let attempts: Vec<(&str, u64, u64)> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "attempt")
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["args"]["attempt"].as_u64().unwrap(),
                e["tid"].as_u64().unwrap(),
            )
        })
        .collect();
    let of = |name: &str| -> Vec<(u64, u64)> {
        attempts
            .iter()
            .filter(|a| a.0 == name)
            .map(|a| (a.1, a.2))
            .collect()
    };
    // The retry is a second slice, after a backoff slice on the same worker.
    let flaky = of("flaky");
    assert_eq!(flaky.len(), 2, "{attempts:?}");
    assert_eq!((flaky[0].0, flaky[1].0), (1, 2));
    assert!(
        flaky[0].1 > 0 && flaky[0].1 == flaky[1].1,
        "on one worker: {flaky:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "flaky backoff" && e["tid"] == flaky[0].1)
    );
    // Inline tools run on the scheduler's thread (tid 0); sleeps on workers.
    assert_eq!(of("greet"), [(1, 0)]);
    assert!(of("nap[0]")[0].1 > 0 && of("nap[1]")[0].1 > 0);
    // Every thread that ran something is named.
    let named: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| e["tid"].as_u64().unwrap())
        .collect();
    assert!(attempts.iter().all(|a| named.contains(&a.2)), "{named:?}");
    // The approval is a slice from its request to its decision.
    let approval: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "approval ship")
        .map(|e| e["ph"].as_str().unwrap())
        .collect();
    assert_eq!(approval, ["b", "e"]);
    // No wall-clock time reaches the ledger: it is the one written without a trace.
    let plain = Test::new()
        .workflow(TRACED)
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "l.jsonl",
            "--approve",
            "ship",
        ])
        .run()
        .code(0);
    assert_eq!(
        std::fs::read(out.dir.path().join("l.jsonl")).unwrap(),
        std::fs::read(plain.dir.path().join("l.jsonl")).unwrap()
    );
}

#[test]
fn ledger_is_byte_identical_with_and_without_trace_at_any_jobs() {
    let ledgers: Vec<(String, Vec<u8>)> = [("1", false), ("1", true), ("4", false), ("4", true)]
        .into_iter()
        .map(|(jobs, traced)| {
            let mut t = Test::new().args([
                "run",
                "fork-join.yaml",
                "-q",
                "--ledger",
                "l.jsonl",
                "--jobs",
                jobs,
            ]);
            t = t.file(
                "fork-join.yaml",
                &std::fs::read_to_string(root().join("workflows/fork-join.yaml")).unwrap(),
            );
            if traced {
                t = t.args(["--trace", "t.json", "--junit", "j.xml"]);
            }
            let out = t.run().code(0);
            let label = format!("--jobs {jobs}, trace {traced}");
            (
                label,
                std::fs::read(out.dir.path().join("l.jsonl")).unwrap(),
            )
        })
        .collect();
    for (label, ledger) in &ledgers[1..] {
        assert!(
            ledger == &ledgers[0].1,
            "{label} differs from {}",
            ledgers[0].0
        );
    }
}

/// A run long enough for the progress line to be drawn.
const SLOW: &str = "version: 1
name: slow
policy: { preset: permissive }
nodes:
  - id: first
    tool: sleep
    with: { duration: 300ms }
  - id: second
    needs: [first]
    tool: sleep
    with: { duration: 300ms }
";

/// Runs `kairos run wf.yaml ARGS` on a pseudo-terminal (`script`, util-linux), with `env`
/// added and `NO_COLOR` removed unless given; gives what the terminal showed and the test's
/// directory. `None` when `script` is missing.
fn on_terminal(args: &str, env: &[(&str, &str)]) -> Option<(String, tempfile::TempDir)> {
    if !require_program("script") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wf.yaml"), SLOW).unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("kairos");
    let command = format!("{} run wf.yaml --ledger l.jsonl {args}", bin.display());
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) runs the command on a pseudo-terminal");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    let ledger = std::fs::read_to_string(dir.path().join("l.jsonl")).unwrap_or_default();
    let last = ledger.lines().last().unwrap_or_default();
    assert!(
        last.contains("\"event\":\"RunEnd\"") && last.contains("\"status\":\"succeeded\""),
        "the run ends as usual: {screen:?}\n{ledger}"
    );
    Some((screen, dir))
}

/// Whether `text` has an escape sequence that sets a colour or a style (SGR: `ESC [ ... m`).
fn has_colour(text: &str) -> bool {
    regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap().is_match(text)
}

#[test]
fn progress_line_is_shown_on_a_terminal() {
    let Some((screen, _dir)) = on_terminal("", &[]) else {
        return;
    };
    assert!(screen.contains("\rkairos: "), "{screen:?}");
    assert!(screen.contains("/2\x1b[0m nodes"), "{screen:?}");
    assert!(screen.contains("running: first"), "{screen:?}");
    assert!(has_colour(&screen), "colour on a terminal: {screen:?}");
    // Erased before the summary.
    let summary = screen.find("run succeeded").unwrap();
    let last_line = screen[..summary].rfind("\rkairos: ").unwrap();
    assert!(
        screen[last_line..summary].contains("\r\x1b[K"),
        "{screen:?}"
    );
}

#[test]
fn progress_line_has_no_colour_with_no_color() {
    let Some((screen, _dir)) = on_terminal("", &[("NO_COLOR", "1")]) else {
        return;
    };
    assert!(screen.contains("\rkairos: 0/2 nodes"), "{screen:?}");
    assert!(screen.contains("running: first"), "{screen:?}");
    assert!(!has_colour(&screen), "{screen:?}");
}

#[test]
fn progress_line_is_absent_when_stderr_is_not_a_terminal() {
    let Some((screen, dir)) = on_terminal("2>stderr.txt", &[]) else {
        return;
    };
    let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap();
    assert_eq!(stderr, "", "nothing on a stderr that is a file");
    assert!(!screen.contains("kairos: "), "{screen:?}");
    // And through the usual pipes.
    let out = Test::new()
        .workflow(SLOW)
        .args(["run", "wf.yaml"])
        .run()
        .code(0);
    assert_eq!(out.stderr, "");
    assert!(!out.stdout.contains("kairos: "));
}

#[test]
fn progress_line_is_absent_with_quiet() {
    let Some((screen, _dir)) = on_terminal("-q", &[]) else {
        return;
    };
    assert!(!screen.contains("kairos: "), "{screen:?}");
}

/// The YAML blocks of the README's section on CI jobs: GitHub Actions, then GitLab CI.
fn readme_ci_jobs() -> Vec<Value> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## In CI: test report, trace and signed ledger")
        .expect("README has the CI jobs");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    section
        .split("```yaml\n")
        .skip(1)
        .map(|block| {
            let yaml = &block[..block.find("```").unwrap()];
            serde_saphyr::from_str::<Value>(yaml).unwrap_or_else(|e| panic!("{e}:\n{yaml}"))
        })
        .collect()
}

#[test]
fn readme_ci_jobs_publish_the_junit_report_and_the_signed_ledger() {
    let jobs = readme_ci_jobs();
    assert_eq!(jobs.len(), 2, "a GitHub Actions job and a GitLab CI job");
    let steps = jobs[0]["jobs"]["run"]["steps"].as_array().unwrap();
    let uses = |prefix: &str| {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no step uses {prefix}"))
    };
    assert_eq!(
        uses("mikepenz/action-junit-report@")["with"]["report_paths"],
        "junit.xml"
    );
    let uploaded = uses("actions/upload-artifact@")["with"]["path"]
        .as_str()
        .unwrap();
    assert!(uploaded.contains("ledger.jsonl*") && uploaded.contains("trace.json"));
    let github_run = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.starts_with("kairos run"))
        .unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["run"] == "kairos sign ledger.jsonl --ssh")
    );
    let gitlab = &jobs[1]["kairos"];
    assert_eq!(gitlab["artifacts"]["reports"]["junit"], "junit.xml");
    assert_eq!(gitlab["artifacts"]["when"], "always");
    let script: Vec<&str> = gitlab["script"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(script.contains(&"kairos sign ledger.jsonl --ssh"));
    let gitlab_run = script
        .iter()
        .find(|l| l.starts_with("kairos run"))
        .unwrap()
        .trim_end()
        .trim_end_matches("|| status=$?");
    assert_eq!(
        github_run.split_whitespace().collect::<Vec<_>>(),
        gitlab_run.split_whitespace().collect::<Vec<_>>()
    );

    // The commands as the jobs run them, from a checkout of the repository.
    let t = Test::new();
    let dir = t.path().to_path_buf();
    crate::common::copy_dir(&root().join("workflows"), &dir.join("workflows"));
    let args: Vec<&str> = github_run.split_whitespace().skip(1).collect();
    let out = t.args(&args).run();
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    Test::new()
        .args(["keygen", "--out", "ci"])
        .run_in(&dir)
        .code(0);
    let key = std::fs::read_to_string(dir.join("ci.key")).unwrap();
    Test::new()
        .args(["sign", "ledger.jsonl", "--ssh"])
        .env("KAIROS_SIGNING_KEY", &key)
        .run_in(&dir)
        .code(0);
    for file in ["ledger.jsonl.intoto.json", "ledger.jsonl.sig", "trace.json"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    if let Some(suites) = parse_junit(&dir.join("junit.xml")) {
        assert_eq!(suites[0]["name"], "quickstart");
        assert_eq!(suites[0]["tests"], 7);
    }
}
