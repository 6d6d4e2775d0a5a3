//! Policy blocks enforced (`docs/policy.md`): presets, allow/deny, node and organisation layers, every
//! reason code through a real run, path escapes, call limits at any `--jobs`, audit mode and
//! redaction of secrets.

use crate::common::Test;
use crate::run::read_ledger;
use serde_json::Value;

/// One node of each tool with arguments that validate.
const TOOLS: &[(&str, &str, &[&str])] = &[
    ("noop", "tool: noop", &[]),
    ("echo", "tool: echo\n    with: { message: hi }", &[]),
    ("template", "tool: template\n    with: { text: hi }", &[]),
    ("sleep", "tool: sleep\n    with: { duration: 1ms }", &[]),
    ("random", "tool: random\n    with: { int: [1, 2] }", &[]),
    ("assert", "tool: assert\n    with: { that: \"true\" }", &[]),
    ("shell", "run: echo hi", &["subprocess"]),
    (
        "file.read",
        "tool: file.read\n    with: { path: x }",
        &["fs_read"],
    ),
    (
        "file.write",
        "tool: file.write\n    with: { path: x, content: y }",
        &["fs_write"],
    ),
    (
        "http",
        "tool: http\n    with: { url: \"http://127.0.0.1:9\" }",
        &["net"],
    ),
    (
        "llm",
        "tool: llm\n    with: { model: m, prompt: p }",
        &["llm"],
    ),
    (
        "mcp",
        "tool: mcp\n    with: { server: [srv], tool: t }",
        &["external_api", "subprocess"],
    ),
];

const PRESETS: &[(&str, &[&str])] = &[
    (
        "permissive",
        &[
            "net",
            "fs_read",
            "fs_write",
            "subprocess",
            "llm",
            "memory",
            "external_api",
            "code_exec",
        ],
    ),
    ("restrictive", &[]),
    (
        "no_network",
        &[
            "fs_read",
            "fs_write",
            "subprocess",
            "llm",
            "memory",
            "code_exec",
        ],
    ),
    ("read_only", &["fs_read", "memory", "llm"]),
];

fn validate(yaml: &str) -> crate::common::Output {
    Test::new()
        .workflow(yaml)
        .args(["validate", "wf.yaml"])
        .run()
}

#[test]
fn each_preset_against_each_tool() {
    for (preset, grants) in PRESETS {
        for (tool, node, needs) in TOOLS {
            let out = validate(&format!(
                "version: 1\nname: p\npolicy: {{ preset: {preset} }}\nnodes:\n  - id: n\n    {node}\n"
            ));
            let allowed = needs.iter().all(|c| grants.contains(c));
            assert_eq!(
                out.code,
                if allowed { 0 } else { 3 },
                "preset {preset}, tool {tool}: {}",
                out.stderr
            );
            if !allowed {
                let missing = needs.iter().find(|c| !grants.contains(c)).unwrap();
                assert!(
                    out.stderr.contains(&format!("node `n` needs `{missing}`")),
                    "{}",
                    out.stderr
                );
                assert!(
                    out.stderr.contains(&format!("preset `{preset}`")),
                    "{}",
                    out.stderr
                );
            }
        }
    }
}

#[test]
fn deny_wins_over_allow() {
    let out = validate(
        "version: 1\nname: p\npolicy: { allow: [subprocess], deny: [subprocess] }\nnodes:\n  - id: n\n    run: echo\n",
    );
    out.code(3).stderr_contains("`deny` at wf.yaml:3");
    validate(
        "version: 1\nname: p\npolicy: { allow: [subprocess] }\nnodes:\n  - id: n\n    run: echo\n",
    )
    .code(0);
}

#[test]
fn a_node_policy_narrows_and_cannot_widen() {
    validate("version: 1\nname: p\npolicy: { preset: restrictive }\nnodes:\n  - id: n\n    policy: { allow: [subprocess] }\n    run: echo\n")
        .code(3)
        .stderr_contains("node `n` needs `subprocess`");
    validate("version: 1\nname: p\npolicy: { preset: permissive }\nnodes:\n  - id: n\n    policy: { deny: [subprocess] }\n    run: echo\n")
        .code(3)
        .stderr_contains("the node's own policy withholds `subprocess`");
}

#[test]
fn an_organisation_policy_cannot_be_widened() {
    let t = Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive }\nnodes:\n  - id: n\n    run: echo hi\n")
        .file("org.yaml", "deny: [subprocess]\n");
    let out = t
        .args([
            "run", "wf.yaml", "--policy", "org.yaml", "--ledger", "l.jsonl",
        ])
        .run()
        .code(3);
    let out = out.stderr_contains(
        "the organisation policy org.yaml withholds `subprocess` (`deny` at org.yaml:1)",
    );
    assert!(
        !out.dir.path().join("l.jsonl").exists(),
        "a refused run writes no ledger"
    );
    Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive }\nnodes:\n  - id: n\n    run: echo hi\n")
        .file("org.yaml", "deny: [netwrk]\n")
        .args(["validate", "wf.yaml", "--policy", "org.yaml"])
        .run()
        .code(2)
        .stderr_contains("unknown capability `netwrk`");
}

#[test]
fn the_static_refusal_comes_before_any_side_effect() {
    let t = Test::new().workflow(
        "version: 1\nname: p\npolicy: { preset: no_network }\nnodes:\n  - id: first\n    tool: file.write\n    with: { path: side-effect, content: x }\n  - id: fetch\n    needs: [first]\n    tool: http\n    with: { url: \"http://127.0.0.1:9\" }\n",
    );
    let out = t
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    let out = out
        .stderr_contains("node `fetch` needs `net`")
        .stderr_contains("[wf.yaml:10:11]");
    assert!(!out.dir.path().join("side-effect").exists());
}

fn run_ledger(t: Test, args: &[&str]) -> (i32, Vec<Value>, crate::common::Output) {
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .args(args)
        .run();
    let path = out.dir.path().join("l.jsonl");
    let events = if path.exists() {
        read_ledger(&path)
    } else {
        Vec::new()
    };
    (out.code, events, out)
}

fn events<'a>(events: &'a [Value], kind: &str, node: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["node"] == node)
        .collect()
}

#[test]
fn capability_not_granted_is_recorded_in_audit_mode() {
    let t = Test::new().workflow("version: 1\nname: p\npolicy: { preset: restrictive, enforcement: audit }\nnodes:\n  - id: n\n    run: echo ran\n");
    let (code, ev, _) = run_ledger(t, &[]);
    assert_eq!(code, 0, "audit: the call proceeds");
    let deny = events(&ev, "PolicyDeny", "n");
    assert_eq!(deny[0]["reason"], "CAPABILITY_NOT_GRANTED");
    assert_eq!(deny[0]["enforced"], false);
    assert_eq!(events(&ev, "ToolOutput", "n")[0]["output"], "ran");
}

#[test]
fn command_not_permitted() {
    let t = Test::new().workflow(
        "version: 1\nname: p\npolicy: { preset: permissive, commands: [echo] }\nnodes:\n  - id: ok\n    run: echo fine\n  - id: bad\n    run: touch nope\n  - id: hidden\n    run: echo $(touch nope2)\n  - id: after\n    needs: [bad]\n    tool: noop\n",
    );
    let (code, ev, out) = run_ledger(t, &[]);
    assert_eq!(code, 3, "a denial under enforce: exit 3");
    assert_eq!(
        events(&ev, "PolicyAllow", "ok")[0]["checks"],
        serde_json::json!(["capability", "command"])
    );
    let bad = events(&ev, "PolicyDeny", "bad");
    assert_eq!(bad[0]["reason"], "COMMAND_NOT_PERMITTED");
    assert_eq!(bad[0]["enforced"], true);
    assert_eq!(events(&ev, "End", "bad")[0]["status"], "denied");
    assert_eq!(
        events(&ev, "PolicyDeny", "hidden")[0]["reason"],
        "COMMAND_NOT_PERMITTED"
    );
    assert!(
        events(&ev, "PolicyDeny", "hidden")[0]["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be determined")
    );
    assert_eq!(events(&ev, "Skipped", "after")[0]["reason"], "`bad` denied");
    assert_eq!(ev.last().unwrap()["status"], "denied");
    assert_eq!(ev.last().unwrap()["counts"]["denied"], 2);
    let summary = Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive, commands: [echo] }\nnodes:\n  - id: bad\n    run: touch nope\n")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(3);
    summary
        .stdout_contains("denied: COMMAND_NOT_PERMITTED")
        .stdout_contains("run denied");
    assert!(!out.dir.path().join("nope").exists() && !out.dir.path().join("nope2").exists());
}

#[test]
fn paths_cannot_escape() {
    let t = Test::new()
        .workflow(
            "version: 1\nname: p\npolicy: { preset: permissive, paths: { read: [\"./data/**\"], write: [\"./out/**\"] } }\nnodes:\n  - id: inside\n    tool: file.read\n    with: { path: data/a.txt }\n  - id: dotdot\n    tool: file.read\n    with: { path: data/../secret.txt }\n  - id: link\n    tool: file.read\n    with: { path: data/link.txt }\n  - id: absolute\n    tool: file.read\n    with: { path: /etc/hostname }\n  - id: write_ok\n    tool: file.write\n    with: { path: out/new/x.txt, content: x }\n  - id: write_escape\n    tool: file.write\n    with: { path: out/../escaped.txt, content: x }\n",
        )
        .file("data/a.txt", "fine")
        .file("secret.txt", "secret");
    std::os::unix::fs::symlink(t.path().join("secret.txt"), t.path().join("data/link.txt"))
        .unwrap();
    let (code, ev, out) = run_ledger(t, &["--jobs", "2"]);
    assert_eq!(code, 3);
    assert_eq!(events(&ev, "ToolOutput", "inside")[0]["output"], "fine");
    for node in ["dotdot", "link", "absolute", "write_escape"] {
        assert_eq!(
            events(&ev, "PolicyDeny", node)[0]["reason"],
            "PATH_NOT_PERMITTED",
            "{node}"
        );
        assert_eq!(events(&ev, "End", node)[0]["status"], "denied", "{node}");
    }
    assert!(out.dir.path().join("out/new/x.txt").exists());
    assert!(!out.dir.path().join("escaped.txt").exists());
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    let dir = out.dir.path().canonicalize().unwrap();
    assert!(
        !text.contains(dir.to_str().unwrap()),
        "the ledger must not depend on where the run happened"
    );
}

#[test]
fn call_limits_allow_the_same_calls_at_any_jobs() {
    let mut yaml = String::from(
        "version: 1\nname: p\npolicy: { preset: permissive, max_calls: { shell: 3, special: 0 } }\nnodes:\n",
    );
    for i in 0..8 {
        yaml.push_str(&format!(
            "  - id: s{i}\n    priority: {}\n    run: echo {i}\n",
            i % 3
        ));
    }
    yaml.push_str("  - id: special\n    tool: echo\n    with: { message: x }\n");
    let mut ledgers = Vec::new();
    for jobs in ["1", "2", "8"] {
        let (code, ev, out) = run_ledger(Test::new().workflow(&yaml), &["--jobs", jobs]);
        assert_eq!(code, 3);
        let allowed: Vec<&str> = ev
            .iter()
            .filter(|e| e["event"] == "ToolOutput")
            .map(|e| e["node"].as_str().unwrap())
            .collect();
        assert_eq!(allowed.len(), 3, "{allowed:?}");
        let limited = ev
            .iter()
            .filter(|e| e["event"] == "CallLimitExceeded")
            .count();
        assert_eq!(
            limited, 6,
            "5 shell calls over the limit and the node limited to 0"
        );
        assert_eq!(
            events(&ev, "CallLimitExceeded", "special")[0]["reason"],
            "CALL_LIMIT_EXCEEDED"
        );
        ledgers.push(std::fs::read(out.dir.path().join("l.jsonl")).unwrap());
    }
    assert_eq!(ledgers[0], ledgers[1]);
    assert_eq!(ledgers[0], ledgers[2]);
}

#[test]
fn audit_mode_records_and_proceeds() {
    let t = Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive, enforcement: audit, paths: { read: [\"./data/**\"] } }\nnodes:\n  - id: outside\n    tool: file.read\n    with: { path: secret.txt }\n")
        .file("secret.txt", "read anyway");
    let (code, ev, _) = run_ledger(t, &[]);
    assert_eq!(code, 0);
    let deny = events(&ev, "PolicyDeny", "outside");
    assert_eq!(
        (deny[0]["reason"].as_str(), deny[0]["enforced"].as_bool()),
        (Some("PATH_NOT_PERMITTED"), Some(false))
    );
    assert_eq!(
        events(&ev, "ToolOutput", "outside")[0]["output"],
        "read anyway"
    );
}

#[test]
fn secrets_never_reach_the_ledger_the_terminal_or_other_nodes() {
    let secret = "tok-3f9a8b7c6d5e";
    let b64 = "dG9rLTNmOWE4YjdjNmQ1ZQ=="; // base64 of the secret, which the shell computes
    // The shell prints the secret in plain, JSON-escaped and base64 forms; the workflow text
    // itself names only the variable.
    let t = Test::new()
        .workflow(
            "version: 1\nname: p\npolicy: { preset: permissive, secrets: [KAIROS_TEST_TOKEN], redact: [\"(?i)password=\\\\S+\"] }\nnodes:\n  - id: leak\n    run: \"echo $KAIROS_TEST_TOKEN; printf '{\\\"k\\\":\\\"%s\\\"}\\\\n' $KAIROS_TEST_TOKEN; printf %s $KAIROS_TEST_TOKEN | base64; echo password=$(printf hun; printf ter2)\"\n  - id: downstream\n    tool: echo\n    with: { message: \"got {{ nodes.leak.stdout }}\" }\n",
        )
        .env("KAIROS_TEST_TOKEN", secret);
    let out = t
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    for haystack in [&ledger, &out.stdout, &out.stderr] {
        assert!(!haystack.contains(secret), "the secret leaked");
        assert!(
            !haystack.contains(b64) && !haystack.contains("dG9rLTNmOWE4YjdjNmQ1"),
            "the base64 form leaked"
        );
        assert!(!haystack.contains("hunter2"), "a redact pattern leaked");
    }
    assert!(ledger.contains("[REDACTED:KAIROS_TEST_TOKEN]"));
    let ev = read_ledger(&out.dir.path().join("l.jsonl"));
    let stdout = events(&ev, "ToolOutput", "leak")[0]["stdout"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stdout.matches("[REDACTED:KAIROS_TEST_TOKEN]").count(),
        3,
        "{stdout}"
    );
    let downstream_input = &events(&ev, "Start", "downstream")[0]["input"]["message"];
    assert!(
        downstream_input
            .as_str()
            .unwrap()
            .contains("[REDACTED:KAIROS_TEST_TOKEN]")
    );
    let redacted: Vec<(&str, u64)> = events(&ev, "ContentRedacted", "leak")
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["count"].as_u64().unwrap()))
        .collect();
    assert!(redacted.contains(&("stdout", 4)), "{redacted:?}");
    for e in events(&ev, "ContentRedacted", "leak") {
        let extra = e
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                !["seq", "prev", "event", "clock", "node", "field", "count"].contains(&k.as_str())
            })
            .count();
        assert_eq!(extra, 0, "says where and how many, never what");
    }
    // A secret written into the workflow itself is masked in RunStart too.
    let t = Test::new()
        .workflow(&format!("version: 1\nname: p\npolicy: {{ preset: permissive, secrets: [KAIROS_TEST_TOKEN] }}\nnodes:\n  - id: n\n    tool: echo\n    with: {{ message: \"{secret}\" }}\n"))
        .env("KAIROS_TEST_TOKEN", secret);
    let out = t
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    assert!(
        !std::fs::read_to_string(out.dir.path().join("l.jsonl"))
            .unwrap()
            .contains(secret)
    );
    assert!(!out.stdout.contains(secret));
}

#[test]
fn run_start_records_the_effective_policy_and_its_digest() {
    let t = Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive }\nnodes:\n  - id: n\n    run: echo hi\n")
        .file("org.yaml", "deny: [net]\nmax_calls: { shell: 4 }\n");
    let (code, ev, _) = run_ledger(t, &["--policy", "org.yaml"]);
    assert_eq!(code, 0);
    let policy = &ev[0]["policy"];
    assert!(
        !policy["granted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "net")
    );
    assert_eq!(policy["max_calls"]["shell"], 4);
    assert_eq!(
        policy["organisation_source"],
        "deny: [net]\nmax_calls: { shell: 4 }\n"
    );
    let text = serde_json::to_string(policy).unwrap();
    use sha2::Digest;
    assert_eq!(
        ev[0]["policy_sha256"],
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    );
}

#[test]
fn replay_check_reproduces_policy_decisions() {
    let t = Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive, commands: [echo], max_calls: { shell: 1 } }\nnodes:\n  - id: a\n    run: echo a\n  - id: b\n    run: echo b\n")
        .file("org.yaml", "secrets: [HOME]\n");
    let (_, _, out) = run_ledger(t, &["--policy", "org.yaml"]);
    Test::new()
        .args(["replay", "l.jsonl", "--check"])
        .run_in(out.dir.path())
        .code(0);
}

/// The refusal's help names the fix: the line to add or change, and where. Returns the one
/// diagnostic of `validate --format json` (exit 3): (line, column, help).
fn refusal(yaml: &str, org: Option<&str>) -> (u64, u64, String) {
    let mut t = Test::new().workflow(yaml);
    let mut args = vec!["validate", "--format", "json", "wf.yaml"];
    if let Some(org) = org {
        t = t.file("org.yaml", org);
        args.extend(["--policy", "org.yaml"]);
    }
    let doc = t.args(args).run().code(3).json();
    let diags = doc["files"][0]["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(d["code"], "kairos::capability_not_granted");
    (
        d["line"].as_u64().unwrap(),
        d["column"].as_u64().unwrap(),
        d["help"].as_str().unwrap().to_string(),
    )
}

#[test]
fn capability_refusal_help_names_the_line_to_add_and_where() {
    let node = "nodes:\n  - id: n\n    run: echo hi\n";
    // A policy block without `allow`: add one under it.
    let (line, column, help) = refusal(
        &format!("version: 1\nname: p\npolicy: {{ preset: restrictive }}\n{node}"),
        None,
    );
    assert_eq!((line, column), (6, 10), "the diagnostic points at `run:`");
    assert!(
        help.ends_with(
            "; to grant it, add `allow: [subprocess]` under the workflow's `policy:` at wf.yaml:3"
        ),
        "{help}"
    );
    assert!(
        help.starts_with(
            "the workflow policy withholds `subprocess` (preset `restrictive` at wf.yaml:3"
        ),
        "{help}"
    );
    // No policy block: add one.
    let (_, _, help) = refusal(&format!("version: 1\nname: p\n{node}"), None);
    assert!(
        help.ends_with(
            "add a `policy:` block with `allow: [subprocess]` at the top level of wf.yaml"
        ),
        "{help}"
    );
    // An `allow` list: add to it.
    let (_, _, help) = refusal(
        &format!("version: 1\nname: p\npolicy:\n  preset: restrictive\n  allow: [fs_read]\n{node}"),
        None,
    );
    assert!(
        help.ends_with("add `subprocess` to the workflow's `allow` at wf.yaml:5"),
        "{help}"
    );
    // Denied: take it out of `deny`.
    let (_, _, help) = refusal(
        &format!(
            "version: 1\nname: p\npolicy:\n  preset: permissive\n  deny:\n    - net\n    - subprocess\n{node}"
        ),
        None,
    );
    assert!(
        help.ends_with("remove `subprocess` from the workflow's `deny` at wf.yaml:7"),
        "{help}"
    );
    // The node's own policy.
    let (line, _, help) = refusal(
        "version: 1\nname: p\npolicy: { preset: permissive }\nnodes:\n  - id: n\n    policy:\n      deny: [subprocess]\n    run: echo hi\n",
        None,
    );
    assert_eq!(line, 8);
    assert!(
        help.starts_with("the node's own policy withholds `subprocess`"),
        "{help}"
    );
    assert!(
        help.ends_with("remove `subprocess` from the node's `deny` at wf.yaml:7"),
        "{help}"
    );
    // The organisation's line, which no workflow line can override.
    let (_, _, help) = refusal(
        &format!("version: 1\nname: p\npolicy: {{ preset: permissive }}\n{node}"),
        Some("commands: [echo]\ndeny: [subprocess]\n"),
    );
    assert_eq!(
        help,
        "the organisation policy org.yaml withholds `subprocess` (`deny` at org.yaml:2); a workflow can only narrow the organisation policy, so only a change to org.yaml can grant `subprocess`"
    );
}

/// Redaction too large to build used to switch itself off and write secrets in clear; now it
/// refuses the run (before any ledger is written) and fails validation.
#[test]
fn redaction_that_cannot_be_built_refuses_the_run() {
    let patterns: Vec<String> = (0..400)
        .map(|i| format!("\"(?:[a-z]{{80}}x{i}){{60}}\""))
        .collect();
    let wf = format!(
        "version: 1\nname: r\npolicy:\n  preset: permissive\n  redact: [{}]\n  secrets: [KAIROS_TEST_REDACT_SECRET]\nnodes:\n  - id: a\n    run: echo \"$KAIROS_TEST_REDACT_SECRET\"\n",
        patterns.join(", ")
    );
    let out = Test::new()
        .workflow(&wf)
        .env("KAIROS_TEST_REDACT_SECRET", "hunter22")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(2)
        .stderr_contains("kairos::redaction_unbuildable");
    assert!(
        !out.dir.path().join("l.jsonl").exists(),
        "no ledger is written"
    );
    Test::new()
        .workflow(&wf)
        .env("KAIROS_TEST_REDACT_SECRET", "hunter22")
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("cannot be built");
}

/// A secret read from a file ends with a newline; the shell call's `output` is its trimmed
/// stdout, which used to reach the ledger and the summary in clear.
#[test]
fn secret_with_trailing_newline_is_masked_in_output() {
    let out = Test::new()
        .workflow("version: 1\nname: s\npolicy:\n  preset: permissive\n  secrets: [KAIROS_TEST_NL_SECRET]\nnodes:\n  - id: a\n    run: printenv KAIROS_TEST_NL_SECRET\n")
        .env("KAIROS_TEST_NL_SECRET", "s3cret-from-a-file\n")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(!ledger.contains("s3cret-from-a-file"), "{ledger}");
    assert!(!out.stdout.contains("s3cret-from-a-file"), "{}", out.stdout);
    let output = ledger
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event"] == "ToolOutput")
        .unwrap();
    assert_eq!(output["output"], "[REDACTED:KAIROS_TEST_NL_SECRET]");
}

/// The codes of the `PolicyDeny` events of `node`.
fn denials(ledger: &[Value], node: &str) -> Vec<String> {
    events(ledger, "PolicyDeny", node)
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_node_policy_narrows_paths_commands_and_hosts_for_its_calls() {
    let yaml = "version: 1
name: narrowed
policy:
  preset: permissive
  enforcement: audit
  paths: { read: ['./**'] }
  commands: [echo, cat]
  hosts: ['127.0.0.1']
nodes:
  - id: wide_read
    tool: file.read
    with: { path: other.txt }
  - id: narrow_read
    tool: file.read
    with: { path: other.txt }
    policy: { paths: { read: ['./data/**'] } }
  - id: narrow_read_inside
    tool: file.read
    with: { path: data/in.txt }
    policy: { paths: { read: ['./data/**'] } }
  - id: wide_cat
    run: cat other.txt
  - id: narrow_cat
    run: cat other.txt
    policy: { commands: [echo] }
  - id: narrow_http
    tool: http
    with: { url: 'http://127.0.0.1:9/' }
    policy: { hosts: [example.com] }
";
    let t = Test::new()
        .workflow(yaml)
        .file("other.txt", "other")
        .file("data/in.txt", "in");
    let (_, ledger, _) = run_ledger(t, &[]);
    assert!(denials(&ledger, "wide_read").is_empty());
    assert_eq!(denials(&ledger, "narrow_read"), ["PATH_NOT_PERMITTED"]);
    assert!(denials(&ledger, "narrow_read_inside").is_empty());
    assert!(denials(&ledger, "wide_cat").is_empty());
    assert_eq!(denials(&ledger, "narrow_cat"), ["COMMAND_NOT_PERMITTED"]);
    assert_eq!(denials(&ledger, "narrow_http"), ["HOST_NOT_PERMITTED"]);
    let detail = events(&ledger, "PolicyDeny", "narrow_cat")[0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("cat"), "{detail}");

    // Under enforce the narrowed read never happens, and the run is denied (exit 3).
    let enforced = yaml.replace("  enforcement: audit\n", "");
    let t = Test::new()
        .workflow(&enforced)
        .file("other.txt", "other")
        .file("data/in.txt", "in");
    let (code, ledger, _) = run_ledger(t, &[]);
    assert_eq!(code, 3);
    assert!(events(&ledger, "ToolOutput", "narrow_read").is_empty());
    assert_eq!(
        events(&ledger, "ToolOutput", "narrow_read_inside")[0]["output"],
        "in"
    );
}

#[test]
fn a_node_policy_can_ask_for_approval_and_add_secrets_but_not_set_run_wide_keys() {
    let yaml = "version: 1
name: own
policy: { preset: permissive }
inputs:
  token: {}
nodes:
  - id: say
    tool: echo
    with: { message: 'token {{ inputs.token }}' }
  - id: read
    tool: file.read
    with: { path: x.txt }
    policy: { require_approval: [fs_read], secrets: [NODE_TOKEN] }
";
    let secret = "node-secret-value-4711";
    let out = Test::new()
        .workflow(yaml)
        .file("x.txt", "x")
        .env("NODE_TOKEN", secret)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--input"])
        .args([format!("token={secret}")])
        .run()
        .code(4)
        .stdout_contains("--approve read");
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(text.contains("token [REDACTED:NODE_TOKEN]"), "{text}");
    assert!(!text.contains(secret));

    for (key, value) in [
        ("enforcement", "audit"),
        ("approvers", "[ann]"),
        ("budget", "{ tokens: 5 }"),
    ] {
        let yaml = format!(
            "version: 1\nname: t\npolicy: {{ preset: permissive }}\nnodes:\n  - id: a\n    tool: noop\n    policy: {{ {key}: {value} }}\n"
        );
        crate::common::single(
            &yaml,
            "invalid_value",
            7,
            15,
            &format!("a node's policy cannot set `{key}`"),
        );
    }
}

#[test]
fn a_loop_or_call_nodes_policy_narrows_everything_it_runs() {
    let sub = "version: 1\nname: sub\npolicy: { preset: permissive }\nnodes:\n  - id: rd\n    tool: file.read\n    with: { path: b/f.txt }\n";
    let yaml = "version: 1
name: scoped
policy: { preset: permissive }
nodes:
  - id: l
    policy: { paths: { read: ['a/**'] }, commands: [echo] }
    loop:
      max_iterations: 1
      on_max: succeed
      nodes:
        - id: rd
          tool: file.read
          with: { path: b/f.txt }
        - id: sh
          run: cat b/f.txt
        - id: ok
          tool: file.read
          with: { path: a/f.txt }
  - id: c
    policy: { paths: { read: ['a/**'] } }
    workflow: { file: sub.yaml }
";
    let t = Test::new()
        .workflow(yaml)
        .file("sub.yaml", sub)
        .file("a/f.txt", "A")
        .file("b/f.txt", "B");
    let (code, ledger, _) = run_ledger(t, &[]);
    assert_eq!(code, 3);
    assert_eq!(denials(&ledger, "l#1/rd"), ["PATH_NOT_PERMITTED"]);
    assert_eq!(denials(&ledger, "l#1/sh"), ["COMMAND_NOT_PERMITTED"]);
    assert_eq!(events(&ledger, "ToolOutput", "l#1/ok")[0]["output"], "A");
    assert_eq!(denials(&ledger, "c/rd"), ["PATH_NOT_PERMITTED"]);

    // A capability the loop node denies is refused before the run, at the body's task.
    let denied = "version: 1\nname: d\npolicy: { preset: permissive }\nnodes:\n  - id: l\n    policy: { deny: [subprocess] }\n    loop:\n      max_iterations: 1\n      nodes:\n        - id: sh\n          run: echo hi\n";
    Test::new()
        .workflow(denied)
        .args(["validate", "wf.yaml"])
        .run()
        .code(3)
        .stderr_contains("the policy of node `l` withholds `subprocess`");
}

#[test]
fn under_audit_a_nodes_own_paths_are_recorded_not_enforced() {
    let yaml = "version: 1
name: audit
policy: { preset: permissive, enforcement: audit }
nodes:
  - id: r
    tool: file.read
    with: { path: b/f.txt }
    policy: { paths: { read: ['a/**'] } }
";
    let t = Test::new().workflow(yaml).file("b/f.txt", "B");
    let (code, ledger, _) = run_ledger(t, &[]);
    assert_eq!(code, 0);
    assert_eq!(denials(&ledger, "r"), ["PATH_NOT_PERMITTED"]);
    assert_eq!(events(&ledger, "PolicyDeny", "r")[0]["enforced"], false);
    assert_eq!(events(&ledger, "ToolOutput", "r")[0]["output"], "B");
}

#[test]
fn a_called_workflows_approvers_decide_its_approvals() {
    let callee = "version: 1
name: callee
policy: { preset: permissive, approvers: [ann] }
nodes:
  - id: ok
    approval: { prompt: go? }
";
    let parent = "version: 1\nname: p\npolicy: { preset: permissive }\nnodes:\n  - id: notes\n    workflow: { file: callee.yaml }\n";
    let t = || Test::new().workflow(parent).file("callee.yaml", callee);
    t().args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .args(["--approve", "notes/ok", "--approver", "mallory"])
        .run()
        .code(2)
        .stderr_contains("`mallory` may not approve");
    t().args([
        "run",
        "wf.yaml",
        "--ledger",
        "l.jsonl",
        "--approve",
        "notes/ok",
    ])
    .run()
    .code(2)
    .stderr_contains("give `--approver NAME`");
    let out = t()
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .args(["--approve", "notes/ok", "--approver", "ann"])
        .run()
        .code(0);
    // A recorded decision by somebody else is refused on replay.
    let dir = out.dir.path();
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    let forged =
        crate::common::rechain(&text.replace("\"approver\":\"ann\"", "\"approver\":\"mallory\""));
    std::fs::write(dir.join("forged.jsonl"), forged).unwrap();
    Test::new()
        .args(["replay", "--check", "forged.jsonl"])
        .run_in(dir)
        .code(2)
        .stderr_contains("may not approve");
}
