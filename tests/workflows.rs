//! The example workflows in `workflows/`.

use crate::common::{Test, root};

fn examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("workflows"))
        .expect("workflows/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_validates() {
    let files = examples();
    assert!(
        files.len() >= 7,
        "expected the quickstart, one example per node kind and a large one: {files:?}"
    );
    let out = Test::new().args(["validate"]).args(&files).run().code(0);
    assert_eq!(out.stdout.lines().count(), files.len());
}

#[test]
fn every_example_names_the_schema_and_explains_itself() {
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("# yaml-language-server: $schema=../schemas/workflow.schema.json"),
            "{file}"
        );
        assert_eq!(
            lines.next(),
            Some("#"),
            "{file}: a comment explaining the example follows the schema line"
        );
        assert!(
            lines
                .next()
                .is_some_and(|l| l.len() > 10 && l.starts_with("# ")),
            "{file}"
        );
    }
}

#[test]
fn examples_cover_every_node_kind_and_a_large_workflow() {
    let out = Test::new()
        .args(["validate", "--format", "json"])
        .args(examples())
        .run()
        .code(0);
    let doc = out.json();
    let largest = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["nodes"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(largest >= 15, "a realistic workflow of 15+ nodes");
    let all: String = examples()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for kind in [
        "\n    run:",
        "\n    tool:",
        "\n    branch:",
        "\n    fork:",
        "\n    join:",
        "\n    approval:",
        "\n    for_each:",
    ] {
        assert!(all.contains(kind), "no example uses {kind:?}");
    }
}

#[test]
fn readme_example_validates_as_shown() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```yaml\n").expect("README has a YAML example") + "```yaml\n".len();
    let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
    let shown = readme
        .lines()
        .find(|l| l.starts_with("ok hello.yaml:"))
        .expect("README shows the summary line");
    Test::new()
        .file("hello.yaml", yaml)
        .args(["validate", "hello.yaml"])
        .run()
        .code(0)
        .stdout_contains(shown);
}

/// One example: how to run it, and every node's status and recorded output.
struct Example {
    file: &'static str,
    args: &'static [&'static str],
    /// The workflow's `outputs`, as the run summary reports them.
    outputs: serde_json::Value,
    /// (node, status, output) as `kairos replay` rebuilds them from the ledger, in order.
    nodes: Vec<(&'static str, &'static str, serde_json::Value)>,
    /// A file the run writes, and its contents.
    writes: Option<(&'static str, String)>,
}

/// Programs the examples run besides POSIX `sh` and the coreutils.
const PROGRAMS: &[(&str, &str)] = &[
    ("triage.yaml", "grep"),
    ("mcp-everything.yaml", "mcp-server-everything"),
];

/// The output of an `mcp` call whose result is one text item.
fn mcp_text(text: &str) -> serde_json::Value {
    serde_json::json!({
        "text": text,
        "structured": null,
        "content": [{ "type": "text", "text": text }],
        "is_error": false,
    })
}

fn expected() -> Vec<Example> {
    use serde_json::json;
    let reports = std::fs::read_to_string(root().join("workflows/data/reports.txt")).unwrap();
    let listing = {
        let mut names: Vec<String> = std::fs::read_dir(root().join("workflows"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let many = format!("{} workflows, word beta", listing.len());
    let summary = "8 reports\ncrashes:\nP1 #1: app exits when the settings page opens\nP1 #2: segfault while importing a 2 GB CSV file\nbugs: 3\nspot check: QUESTION: how do I export my data?; CRASH: app exits when the settings page opens";
    vec![
        Example {
            file: "approval.yaml",
            args: &["--approve", "publish", "--approver", "alice"],
            outputs: json!({}),
            nodes: vec![
                ("draft", "succeeded", json!("release notes draft")),
                ("publish", "succeeded", json!(null)),
                ("write", "succeeded", json!(19)),
            ],
            writes: Some(("out/notes.txt", "release notes draft".into())),
        },
        http_fetch(),
        Example {
            file: "call.yaml",
            args: &[],
            outputs: json!({ "shout": "HELLO, KAIROS" }),
            nodes: vec![
                ("hello", "succeeded", json!(null)),
                ("hello/greet", "succeeded", json!("hello, kairos")),
                ("shout", "succeeded", json!("HELLO, KAIROS")),
            ],
            writes: None,
        },
        Example {
            file: "branch.yaml",
            args: &["--input", "threshold=2"],
            outputs: json!({}),
            nodes: vec![
                ("roll", "succeeded", json!(3)),
                ("high", "succeeded", json!(true)),
                ("celebrate", "succeeded", json!("rolled 3: high")),
                ("shrug", "skipped", json!(null)),
                ("merge", "succeeded", json!(null)),
            ],
            writes: None,
        },
        Example {
            file: "for-each.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("names", "succeeded", json!(["linus", "grace", "ada"])),
                ("shout", "succeeded", json!(null)),
                ("shout[0]", "succeeded", json!("0: LINUS")),
                ("shout[1]", "succeeded", json!("1: GRACE")),
                ("shout[2]", "succeeded", json!("2: ADA")),
                ("greet_fixed", "succeeded", json!(null)),
                ("greet_fixed[0]", "succeeded", json!("one")),
                ("greet_fixed[1]", "skipped", json!(null)),
                ("all", "succeeded", json!("0: LINUS, 1: GRACE, 2: ADA")),
            ],
            writes: None,
        },
        Example {
            file: "fork-join.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("start", "succeeded", json!(null)),
                ("fetch_a", "succeeded", json!(null)),
                ("fetch_b", "succeeded", json!(null)),
                ("fetch_c", "succeeded", json!("c")),
                ("gather", "succeeded", json!(null)),
            ],
            writes: None,
        },
        Example {
            file: "mcp-everything.yaml",
            args: &[],
            outputs: json!({ "answer": "Echo: The sum of 2 and 40 is 42." }),
            nodes: vec![
                ("sum", "succeeded", mcp_text("The sum of 2 and 40 is 42.")),
                (
                    "echo",
                    "succeeded",
                    mcp_text("Echo: The sum of 2 and 40 is 42."),
                ),
            ],
            writes: None,
        },
        Example {
            file: "policy-no-network.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("config", "succeeded", json!("user=ci [REDACTED]")),
                ("show", "succeeded", json!("user=ci [REDACTED]")),
            ],
            writes: None,
        },
        Example {
            file: "policy-org.yaml",
            args: &["--policy", "workflows/policies/org.yaml"],
            outputs: json!({}),
            nodes: vec![
                ("build", "succeeded", json!("building")),
                ("test", "succeeded", json!("testing")),
            ],
            writes: None,
        },
        Example {
            file: "policy-permissive.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("first", "succeeded", json!("one")),
                ("second", "succeeded", json!("two")),
            ],
            writes: None,
        },
        Example {
            file: "policy-read-only.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("reports", "succeeded", json!(reports)),
                ("count", "succeeded", json!("8 reports")),
            ],
            writes: None,
        },
        Example {
            file: "policy-restrictive.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("roll", "succeeded", json!(2)),
                ("say", "succeeded", json!("rolled 2")),
            ],
            writes: None,
        },
        Example {
            file: "quickstart.yaml",
            args: &["--input", "who=ci"],
            outputs: json!({ "greeting": "hello, ci", "summary": many }),
            nodes: vec![
                ("greet", "succeeded", json!("hello, ci")),
                ("count", "succeeded", json!(listing.join("\n"))),
                ("word", "succeeded", json!("beta")),
                ("many", "succeeded", json!(true)),
                ("report_many", "succeeded", json!(many)),
                ("report_few", "skipped", json!(null)),
                ("done", "succeeded", json!(null)),
            ],
            writes: None,
        },
        Example {
            file: "review-loop.yaml",
            args: &[],
            outputs: json!({ "final": "draft 3 of: Write one paragraph about bounded loops. (after: tighten draft 2)" }),
            nodes: vec![
                (
                    "brief",
                    "succeeded",
                    json!("Write one paragraph about bounded loops."),
                ),
                (
                    "review#1/write",
                    "succeeded",
                    json!("draft 1 of: Write one paragraph about bounded loops. (after: none yet)"),
                ),
                ("review#1/critique", "succeeded", json!("tighten draft 1")),
                // Rebuilt from the ledger, a loop's output is its last recorded state.
                (
                    "review",
                    "succeeded",
                    json!({ "draft": "draft 3 of: Write one paragraph about bounded loops. (after: tighten draft 2)", "notes": "APPROVED" }),
                ),
                (
                    "review#2/write",
                    "succeeded",
                    json!(
                        "draft 2 of: Write one paragraph about bounded loops. (after: tighten draft 1)"
                    ),
                ),
                ("review#2/critique", "succeeded", json!("tighten draft 2")),
                (
                    "review#3/write",
                    "succeeded",
                    json!(
                        "draft 3 of: Write one paragraph about bounded loops. (after: tighten draft 2)"
                    ),
                ),
                ("review#3/critique", "succeeded", json!("APPROVED")),
                (
                    "publish",
                    "succeeded",
                    json!(
                        "draft 3 of: Write one paragraph about bounded loops. (after: tighten draft 2)"
                    ),
                ),
            ],
            writes: None,
        },
        Example {
            file: "task.yaml",
            args: &[],
            outputs: json!({}),
            nodes: vec![
                ("shell_line", "succeeded", json!("a shell line")),
                ("shell_args", "succeeded", json!("no shell here")),
                ("pause", "succeeded", json!(null)),
                ("dice", "succeeded", json!(2)),
                ("check", "succeeded", json!(true)),
                ("flaky", "failed", json!("")),
                ("after_flaky", "succeeded", json!("flaky ended as failed")),
            ],
            writes: None,
        },
        Example {
            file: "triage.yaml",
            args: &[
                "--approve",
                "escalate",
                "--approve",
                "write_summary",
                "--approver",
                "oncall",
            ],
            outputs: json!({ "summary": summary }),
            nodes: vec![
                ("load", "succeeded", json!(reports)),
                ("total", "succeeded", json!("8")),
                ("split", "succeeded", json!(null)),
                (
                    "crashes",
                    "succeeded",
                    json!(
                        "CRASH: app exits when the settings page opens\nCRASH: segfault while importing a 2 GB CSV file"
                    ),
                ),
                ("crash_lines", "succeeded", json!(null)),
                (
                    "crash_lines[0]",
                    "succeeded",
                    json!("P1 #1: app exits when the settings page opens"),
                ),
                (
                    "crash_lines[1]",
                    "succeeded",
                    json!("P1 #2: segfault while importing a 2 GB CSV file"),
                ),
                (
                    "bugs",
                    "succeeded",
                    json!(
                        "BUG: typo in the welcome e-mail\nBUG: dark mode resets after restart\nBUG: search ignores accents"
                    ),
                ),
                (
                    "questions",
                    "succeeded",
                    json!(
                        "QUESTION: how do I export my data?\nQUESTION: is there an API rate limit?"
                    ),
                ),
                (
                    "security",
                    "succeeded",
                    json!("SECURITY: password reset link does not expire"),
                ),
                ("sorted", "succeeded", json!(null)),
                (
                    "spot_check",
                    "succeeded",
                    json!([
                        "QUESTION: how do I export my data?",
                        "CRASH: app exits when the settings page opens",
                        "BUG: dark mode resets after restart",
                        "SECURITY: password reset link does not expire",
                        "BUG: typo in the welcome e-mail",
                        "QUESTION: is there an API rate limit?",
                        "CRASH: segfault while importing a 2 GB CSV file",
                        "BUG: search ignores accents"
                    ]),
                ),
                ("bug_count", "succeeded", json!("3")),
                ("has_security", "succeeded", json!(true)),
                ("all_clear", "skipped", json!(null)),
                ("escalate", "succeeded", json!(null)),
                (
                    "page_security",
                    "succeeded",
                    json!("paging security on-call"),
                ),
                ("security_done", "succeeded", json!(null)),
                ("summary", "succeeded", json!(summary)),
                ("write_summary", "succeeded", json!(summary.len())),
            ],
            writes: Some(("out/triage-summary.txt", summary.into())),
        },
    ]
}

/// `http-fetch.yaml` against a local httpbin (`fake_http::httpbin`), which lives as long as the
/// test process: the example's default is the public one, and tests run without the internet.
fn http_fetch() -> Example {
    use serde_json::json;
    let server: &'static crate::fake_http::FakeServer =
        Box::leak(Box::new(crate::fake_http::httpbin()));
    let base = server.url("");
    let args: &'static [&'static str] = Box::leak(Box::new([
        "--input",
        Box::leak(format!("base_url={base}").into_boxed_str()),
    ]));
    let response = |json: serde_json::Value, url: String| {
        let body = json.to_string();
        json!({
            "status": 200,
            "headers": {
                "content-type": "application/json",
                "content-length": body.len().to_string(),
                "connection": "close",
            },
            "body": body,
            "json": json,
            "final_url": url,
            "redirects": [],
        })
    };
    Example {
        file: "http-fetch.yaml",
        args,
        outputs: json!({ "topic": "kairos", "echoed": "kairos" }),
        nodes: vec![
            (
                "fetch",
                "succeeded",
                response(
                    json!({ "args": { "page": "1", "topic": "kairos" } }),
                    format!("{base}/get?page=1&topic=kairos"),
                ),
            ),
            ("topic", "succeeded", json!("kairos")),
            (
                "report",
                "succeeded",
                response(
                    json!({ "json": { "fetched": 200, "topic": "kairos" } }),
                    format!("{base}/post"),
                ),
            ),
        ],
        writes: None,
    }
}

/// Every example runs end to end from the repository root (here a copy of `workflows/`), with
/// the decisions, inputs and organisation policy it needs, and produces what it should.
/// Examples that call a model: `tests/llm.rs` and `tests/agents.rs` run them against a local
/// fake server.
const MODEL_EXAMPLES: &[&str] = &[
    "llm-extract.yaml",
    "llm-summary.yaml",
    "llm-agent.yaml",
    "llm-debate.yaml",
    "llm-writer-reviewer.yaml",
    "llm-sequential.yaml",
    "llm-concurrent.yaml",
    "llm-chat.yaml",
    "llm-graph.yaml",
];

#[test]
fn every_example_runs_end_to_end_with_its_outputs() {
    let examples = expected();
    let mut covered: Vec<String> = examples
        .iter()
        .map(|e| root().join("workflows").join(e.file).display().to_string())
        .collect();
    covered.extend(
        MODEL_EXAMPLES
            .iter()
            .map(|f| root().join("workflows").join(f).display().to_string()),
    );
    covered.sort();
    assert_eq!(covered, self::examples(), "every example has an entry here");
    for example in examples {
        let mut needs = PROGRAMS.iter().filter(|(file, _)| *file == example.file);
        if !needs.all(|(_, program)| crate::common::require_program_for(program, example.file)) {
            continue;
        }
        let t = Test::new();
        let dir = t.path().to_path_buf();
        crate::common::copy_dir(&root().join("workflows"), &dir.join("workflows"));
        let file = format!("workflows/{}", example.file);
        let out = Test::new()
            .args(["run", &file, "--ledger", "run.jsonl", "--format", "json"])
            .args(example.args)
            .run_in(&dir)
            .code(0);
        let summary = out.json();
        assert_eq!(summary["status"], "succeeded", "{file}");
        assert_eq!(summary["outputs"], example.outputs, "{file}");
        let state = Test::new()
            .args(["replay", "run.jsonl", "--format", "json"])
            .run_in(&dir)
            .code(0)
            .json();
        assert_eq!(state["outputs"], example.outputs, "{file}");
        let nodes: Vec<(&str, &str, &serde_json::Value)> = state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["node"].as_str().unwrap(),
                    n["status"].as_str().unwrap(),
                    &n["output"],
                )
            })
            .collect();
        let want: Vec<(&str, &str, &serde_json::Value)> =
            example.nodes.iter().map(|(n, s, o)| (*n, *s, o)).collect();
        assert_eq!(nodes, want, "{file}");
        if let Some((path, contents)) = &example.writes {
            assert_eq!(
                &std::fs::read_to_string(dir.join(path)).unwrap(),
                contents,
                "{file}"
            );
        }
        drop(t);
    }
}
