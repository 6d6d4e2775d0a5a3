//! The `mcp` tool against a scripted stdio server (tests/fixtures/mcp/fake_server.py) for the
//! protocol's edge cases, and against the reference server
//! `@modelcontextprotocol/server-everything` over stdio and Streamable HTTP (installed by
//! `.ci/run`; skipped with a notice when `mcp-server-everything` is not on `PATH`).

use crate::common::{Output, Test, require_program, root};
use serde_json::Value;
use std::path::Path;

/// A test directory holding the fake server, with `wf.yaml` declaring it as `fake` (plus
/// `extra` server lines) and running `nodes`.
fn with_fake(extra: &str, policy: &str, nodes: &str) -> Test {
    let script = std::fs::read_to_string(root().join("tests/fixtures/mcp/fake_server.py")).unwrap();
    Test::new().file("fake_server.py", &script).workflow(&format!(
        "version: 1\nname: mcp-test\npolicy: {policy}\nmcp_servers:\n  fake: {{ command: [python3, fake_server.py], env: {{ FAKE_MCP_LOG: log.jsonl, FAKE_MCP_GROUP: group.txt }} }}\n{extra}nodes:\n{nodes}"
    ))
}

fn run(test: Test) -> Output {
    test.args(["run", "wf.yaml", "--ledger", "run.jsonl", "--quiet"])
        .run()
}

fn ledger(out: &Output) -> Vec<Value> {
    std::fs::read_to_string(out.dir.path().join("run.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tool_output<'a>(events: &'a [Value], node: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "ToolOutput" && e["node"] == node)
        .unwrap_or_else(|| panic!("no ToolOutput of {node}"))
}

/// What the fake server received, in order.
fn received(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const PERMISSIVE: &str = "{ preset: permissive }";

#[test]
fn mcp_calls_give_text_structured_and_content_and_tools_are_recorded_once() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: add, tool: mcp, with: { server: fake, tool: add, arguments: { a: 2, b: 3 } } }
  - { id: echo, needs: [add], tool: mcp, with: { server: fake, tool: echo, arguments: { message: hi } } }
",
    ))
    .code(0);
    let events = ledger(&out);
    let add = tool_output(&events, "add");
    assert_eq!(add["output"]["text"], "5");
    assert_eq!(add["output"]["structured"], serde_json::json!({ "sum": 5 }));
    assert_eq!(add["output"]["is_error"], false);
    assert_eq!(add["output"]["content"][0]["type"], "text");
    // Seven tools over four pages of `tools/list`, recorded with the first call only.
    let tools = add["mcp_tools"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["echo", "add", "fail", "slow", "crash", "ask", "env"]
    );
    assert_eq!(add["mcp_tools"]["server"], "fake");
    assert!(tool_output(&events, "echo").get("mcp_tools").is_none());
    let listed = received(out.dir.path())
        .iter()
        .filter(|m| m["method"] == "tools/list")
        .count();
    assert_eq!(listed, 4, "one server, started once, listed once");
    let inits = received(out.dir.path())
        .iter()
        .filter(|m| m["method"] == "initialize")
        .map(|m| m["params"]["protocolVersion"].clone())
        .collect::<Vec<_>>();
    assert_eq!(inits, ["2025-11-25"]);
}

#[test]
fn mcp_server_requests_get_ping_answered_and_method_not_found() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: ask, tool: mcp, with: { server: fake, tool: ask } }\n",
    ))
    .code(0);
    let events = ledger(&out);
    let answers: Value = serde_json::from_str(
        tool_output(&events, "ask")["output"]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(answers["p1"]["result"], serde_json::json!({}));
    assert_eq!(answers["s1"]["error"]["code"], -32601);
}

#[test]
fn mcp_is_error_fails_the_node_unless_allow_error() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: fails, tool: mcp, with: { server: fake, tool: fail } }
  - { id: allowed, needs: [], tool: mcp, with: { server: fake, tool: fail, allow_error: true } }
",
    ))
    .code(1);
    let events = ledger(&out);
    let fails = tool_output(&events, "fails");
    assert!(
        fails["error"]
            .as_str()
            .unwrap()
            .contains("reported an error: `no such file`"),
        "{fails}"
    );
    let allowed = tool_output(&events, "allowed");
    assert!(allowed.get("error").is_none(), "{allowed}");
    assert_eq!(allowed["output"]["is_error"], true);
    assert_eq!(allowed["output"]["text"], "no such file");
}

#[test]
fn mcp_non_json_on_stdout_is_a_protocol_error() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: noisy, tool: mcp, with: { server: [python3, fake_server.py, noise], tool: echo } }\n",
    ))
    .code(1);
    let error = tool_output(&ledger(&out), "noisy")["error"].clone();
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("protocol error: the server wrote to stdout a line that is not JSON-RPC: `Server ready!`"),
        "{error}"
    );
}

#[test]
fn mcp_timeout_sends_notifications_cancelled() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        // The server is started by the first call, so the timeout covers only the slow one.
        "  - { id: warm, tool: mcp, with: { server: fake, tool: echo } }
  - { id: slow, needs: [warm], tool: mcp, timeout: 300ms, with: { server: fake, tool: slow } }
",
    ))
    .code(1);
    let error = tool_output(&ledger(&out), "slow")["error"].clone();
    assert_eq!(
        error,
        "mcp server `fake`, tool `slow`: timed out after 300ms"
    );
    let messages = received(out.dir.path());
    let call = messages
        .iter()
        .find(|m| m["method"] == "tools/call" && m["params"]["name"] == "slow")
        .unwrap();
    let cancelled = messages
        .iter()
        .find(|m| m["method"] == "notifications/cancelled")
        .expect("the timed-out request is cancelled");
    assert_eq!(cancelled["params"]["requestId"], call["id"]);
    assert_eq!(call["params"]["_meta"]["progressToken"], call["id"]);
}

#[test]
fn mcp_a_server_that_crashes_mid_call_fails_with_its_stderr() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: crash, tool: mcp, with: { server: fake, tool: crash } }
  - { id: after, needs: [crash], if: 'true', tool: mcp, with: { server: fake, tool: echo, arguments: { message: again } } }
",
    ))
    .code(1);
    let error = tool_output(&ledger(&out), "crash")["error"].clone();
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("the server exited; its stderr ends with: fatal: crashed on purpose"),
        "{error}"
    );
}

#[test]
fn mcp_revisions_are_negotiated() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: old, tool: mcp, with: { server: [python3, fake_server.py, old], tool: echo, arguments: { message: hi } } }
  - { id: future, tool: mcp, with: { server: [python3, fake_server.py, future], tool: echo } }
",
    ))
    .code(1);
    let events = ledger(&out);
    assert_eq!(tool_output(&events, "old")["output"]["text"], "hi");
    let error = tool_output(&events, "future")["error"].clone();
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("the server speaks MCP revision 2099-01-01"),
        "{error}"
    );
}

#[test]
fn mcp_server_environment_is_explicit() {
    if !require_program("python3") {
        return;
    }
    let test = with_fake(
        "  own: { command: [python3, fake_server.py], env: { GIVEN: yes } }\n",
        PERMISSIVE,
        "  - { id: given, tool: mcp, with: { server: own, tool: env, arguments: { name: GIVEN } } }
  - { id: parent, needs: [given], tool: mcp, with: { server: own, tool: env, arguments: { name: KAIROS_TEST_PARENT } } }
",
    )
    .env("KAIROS_TEST_PARENT", "leaked");
    let out = run(test).code(0);
    let events = ledger(&out);
    assert_eq!(tool_output(&events, "given")["output"]["text"], "yes");
    assert_eq!(tool_output(&events, "parent")["output"]["text"], "<unset>");
}

#[test]
fn mcp_no_server_process_remains_after_the_run() {
    if !require_program("python3") {
        return;
    }
    // The server leaves a grandchild in its group, as `npx` does.
    let out = run(with_fake(
        "  wrapped: { command: [sh, -c, 'sleep 300 & echo $! > sleep.pid; exec python3 fake_server.py'], env: { FAKE_MCP_GROUP: group.txt } }\n",
        PERMISSIVE,
        "  - { id: echo, tool: mcp, with: { server: wrapped, tool: echo, arguments: { message: hi } } }\n",
    ))
    .code(0);
    let read = |f: &str| -> i32 {
        std::fs::read_to_string(out.dir.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (group, sleeper) = (read("group.txt"), read("sleep.pid"));
    assert_ne!(group, sleeper);
    // The run has returned: the group has been killed. A killed child may stay a zombie until
    // init reaps it, which is not a running process.
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim().starts_with('Z'))
            })
            .is_some_and(|zombie| !zombie)
    };
    let mut left = true;
    for _ in 0..100 {
        left = running(sleeper) || running(group);
        if !left {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!left, "a process of the server's group outlived the run");
}

#[test]
fn mcp_replay_never_starts_a_server() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: echo, tool: mcp, with: { server: fake, tool: echo, arguments: { message: hi } } }\n",
    ))
    .code(0);
    let dir = out.dir.path();
    std::fs::remove_file(dir.join("log.jsonl")).unwrap();
    // A server that would start now fails loudly, and logs nothing.
    std::fs::write(dir.join("fake_server.py"), "import sys; sys.exit(9)\n").unwrap();
    for (args, says) in [
        (vec!["replay", "run.jsonl", "--check"], "replay matches"),
        (
            vec!["replay", "run.jsonl", "--against", "wf.yaml"],
            "no divergence",
        ),
    ] {
        Test::new()
            .args(&args)
            .run_in(dir)
            .code(0)
            .stdout_contains(says);
    }
    assert!(!dir.join("log.jsonl").exists(), "replay started the server");
}

#[test]
fn mcp_policy_checks_the_program_against_commands_and_the_url_against_hosts() {
    let out = run(Test::new().workflow(
        "version: 1
name: mcp-policy
policy: { preset: permissive, commands: [git], hosts: [api.example.com] }
mcp_servers:
  local: { command: [mcp-files, .] }
  remote: { url: 'http://127.0.0.1:9/mcp' }
nodes:
  - { id: a, tool: mcp, with: { server: local, tool: list } }
  - { id: b, tool: mcp, with: { server: remote, tool: list } }
",
    ))
    .code(3);
    let events = ledger(&out);
    let denials: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "PolicyDeny")
        .map(|e| (e["node"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        denials,
        [("a", "COMMAND_NOT_PERMITTED"), ("b", "HOST_NOT_PERMITTED")]
    );
}

#[test]
fn mcp_static_admission_asks_subprocess_for_stdio_and_net_for_http() {
    let workflow = |policy: &str| {
        format!(
            "version: 1
name: mcp-caps
policy: {policy}
mcp_servers:
  local: {{ command: [mcp-files] }}
  remote: {{ url: 'http://127.0.0.1:9/mcp' }}
nodes:
  - {{ id: a, tool: mcp, with: {{ server: local, tool: list }} }}
  - {{ id: b, tool: mcp, with: {{ server: remote, tool: list }} }}
"
        )
    };
    let out = Test::new()
        .workflow(&workflow(
            "{ preset: restrictive, allow: [external_api, subprocess] }",
        ))
        .args(["run", "wf.yaml", "--ledger", "run.jsonl"])
        .run()
        .code(3);
    assert!(
        out.stderr.contains("`net`") || out.stderr.contains("net"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("node `b`") || out.stderr.contains("`b`"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("`a`"), "{}", out.stderr);
}

#[test]
fn mcp_max_calls_counts_by_server_and_tool() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        "{ preset: permissive, enforcement: audit, max_calls: { 'mcp:fake/echo': 1 } }",
        "  - { id: one, tool: mcp, with: { server: fake, tool: echo, arguments: { message: a } } }
  - { id: two, tool: mcp, with: { server: fake, tool: echo, arguments: { message: b } } }
  - { id: add, tool: mcp, with: { server: fake, tool: add, arguments: { a: 1, b: 1 } } }
",
    ))
    .code(0);
    let events = ledger(&out);
    let limited: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "CallLimitExceeded")
        .map(|e| (e["node"].as_str().unwrap(), e["key"].as_str().unwrap()))
        .collect();
    // Counted in commit order: the second echo, whichever ran first.
    assert_eq!(limited, [("two", "mcp:fake/echo")]);
}

#[test]
fn mcp_unknown_server_is_a_validation_error_with_a_suggestion() {
    let d = crate::common::single(
        "version: 1
name: mcp-bad
mcp_servers:
  files: { command: [mcp-files] }
nodes:
  - { id: a, tool: mcp, with: { server: filez, tool: list } }
",
        "invalid_value",
        6,
        41,
        "no MCP server `filez` in `mcp_servers`",
    );
    assert!(d.help.unwrap().contains("files"));
}

#[test]
fn mcp_a_server_needs_command_or_url_and_max_calls_keys_name_a_server() {
    crate::common::single(
        "version: 1
name: mcp-bad
mcp_servers:
  files: { cwd: . }
nodes:
  - { id: a, tool: noop }
",
        "invalid_value",
        4,
        10,
        "a server needs `command` (stdio) or `url`",
    );
    crate::common::single(
        "version: 1
name: mcp-bad
policy: { max_calls: { 'mcp:nope/echo': 1 } }
mcp_servers:
  files: { command: [mcp-files] }
nodes:
  - { id: a, tool: noop }
",
        "unknown_node",
        3,
        24,
        "mcp:nope/echo",
    );
}

/// The reference server over stdio: its `echo` and `get-sum` tools.
#[test]
fn mcp_reference_server_over_stdio() {
    if !require_program("mcp-server-everything") {
        return;
    }
    let out = run(Test::new().workflow(
        "version: 1
name: mcp-everything
policy: { preset: restrictive, allow: [external_api, subprocess], commands: [mcp-server-everything] }
mcp_servers:
  everything: { command: [mcp-server-everything, stdio] }
nodes:
  - { id: echo, tool: mcp, with: { server: everything, tool: echo, arguments: { message: hello } } }
  - { id: sum, tool: mcp, with: { server: everything, tool: get-sum, arguments: { a: 2, b: 40 } } }
",
    ))
    .code(0);
    let events = ledger(&out);
    assert_eq!(
        tool_output(&events, "echo")["output"]["text"],
        "Echo: hello"
    );
    assert!(
        tool_output(&events, "sum")["output"]["text"]
            .as_str()
            .unwrap()
            .contains("is 42"),
    );
    let listed = events
        .iter()
        .filter_map(|e| e.get("mcp_tools"))
        .collect::<Vec<_>>();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "get-sum")
    );
}

/// The reference server over Streamable HTTP, on a free local port.
#[test]
fn mcp_reference_server_over_streamable_http() {
    if !require_program("mcp-server-everything") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = std::process::Command::new("mcp-server-everything")
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _stop = Stop(server);
    wait_for_port(port);
    let out = run(Test::new().workflow(&format!(
        "version: 1
name: mcp-everything-http
policy: {{ preset: restrictive, allow: [external_api, net], hosts: [127.0.0.1] }}
mcp_servers:
  everything: {{ url: 'http://127.0.0.1:{port}/mcp' }}
nodes:
  - {{ id: echo, tool: mcp, with: {{ server: everything, tool: echo, arguments: {{ message: over http }} }} }}
  - {{ id: sum, tool: mcp, with: {{ server: everything, tool: get-sum, arguments: {{ a: 1, b: 2 }} }} }}
"
    )))
    .code(0);
    let events = ledger(&out);
    assert_eq!(
        tool_output(&events, "echo")["output"]["text"],
        "Echo: over http"
    );
    assert!(
        tool_output(&events, "sum")["output"]["text"]
            .as_str()
            .unwrap()
            .contains("is 3"),
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.get("mcp_tools").is_some())
            .count(),
        1
    );
}

#[test]
fn mcp_a_changed_tool_schema_shows_in_diff() {
    if !require_program("python3") {
        return;
    }
    let nodes = "  - { id: echo, tool: mcp, with: { server: fake, tool: echo, arguments: { message: hi } } }\n";
    let out = run(with_fake("", PERMISSIVE, nodes)).code(0);
    let dir = out.dir.path();
    std::fs::write(
        dir.join("extra_tools.json"),
        r#"[{"name": "delete_everything", "inputSchema": {"type": "object"}}]"#,
    )
    .unwrap();
    Test::new()
        .args(["run", "wf.yaml", "--ledger", "changed.jsonl", "--quiet"])
        .run_in(dir)
        .code(0);
    let diff = Test::new()
        .args(["diff", "run.jsonl", "changed.jsonl", "--format", "json"])
        .run_in(dir)
        .code(1)
        .json();
    let node = &diff["nodes"][0];
    assert_eq!(node["node"], "echo", "{diff}");
    let fields: Vec<&str> = node["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mcp_tools"], "{diff}");
    assert!(
        node["differences"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+      \"name\": \"delete_everything\""),
        "{diff}"
    );
}

/// Calls to one server in parallel share it (started and listed once), and the ledger is the
/// same whichever call reached the server first: the tools go with the first call in commit
/// order.
#[test]
fn mcp_parallel_calls_share_one_server_and_the_ledger_does_not_depend_on_jobs() {
    if !require_program("python3") {
        return;
    }
    let nodes = "  - id: fan
    for_each: [a, b, c, d, e, f, g, h]
    tool: mcp
    with: { server: fake, tool: echo, arguments: { message: '{{ item }}' } }
";
    let out = run(with_fake("", PERMISSIVE, nodes)).code(0);
    let dir = out.dir.path();
    let inits = received(dir)
        .iter()
        .filter(|m| m["method"] == "initialize")
        .count();
    assert_eq!(inits, 1);
    let first = std::fs::read(dir.join("run.jsonl")).unwrap();
    for jobs in ["1", "8"] {
        let ledger = format!("jobs{jobs}.jsonl");
        Test::new()
            .args([
                "run", "wf.yaml", "--ledger", &ledger, "--quiet", "--jobs", jobs,
            ])
            .run_in(dir)
            .code(0);
        assert_eq!(
            std::fs::read(dir.join(&ledger)).unwrap(),
            first,
            "--jobs {jobs}"
        );
    }
    let events = ledger(&out);
    let listed: Vec<&str> = events
        .iter()
        .filter(|e| e.get("mcp_tools").is_some())
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["fan[0]"]);
}

/// Ctrl-C twice during a call that would wait for minutes: the call is cancelled, the run
/// pauses, and the server's process group is gone.
#[test]
fn mcp_interrupted_run_stops_its_servers() {
    if !require_program("python3") {
        return;
    }
    let test = with_fake(
        "",
        PERMISSIVE,
        "  - { id: slow, tool: mcp, with: { server: fake, tool: slow } }\n",
    );
    let dir = test.path().to_path_buf();
    let mut kairos = crate::common::spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "run.jsonl"]);
    let mut waited = 0;
    while !received(&dir).iter().any(|m| m["method"] == "tools/call") {
        assert!(waited < 600, "the call never reached the server");
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    let pid = rustix::process::Pid::from_raw(kairos.id() as i32).unwrap();
    for _ in 0..2 {
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = kairos.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        received(&dir)
            .iter()
            .any(|m| m["method"] == "notifications/cancelled")
    );
    let group: i32 = std::fs::read_to_string(dir.join("group.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone =
        rustix::process::test_kill_process_group(rustix::process::Pid::from_raw(group).unwrap())
            .is_err();
    assert!(gone, "the server's group outlived the interrupted run");
    drop(test);
}

/// `{ env: NAME }` passes a variable of kairos's environment to a server without writing it in
/// the workflow: the recorded input names the variable, and its value is masked wherever it
/// appears, as a `secrets` entry's is.
#[test]
fn mcp_a_passed_environment_variable_is_never_recorded() {
    if !require_program("python3") {
        return;
    }
    let test = with_fake(
        "  keyed: { command: [python3, fake_server.py], env: { TOKEN: { env: KAIROS_TEST_TOKEN } } }\n",
        PERMISSIVE,
        "  - { id: token, tool: mcp, with: { server: keyed, tool: env, arguments: { name: TOKEN } } }\n",
    )
    .env("KAIROS_TEST_TOKEN", "s3cr3t-value");
    let out = run(test).code(0);
    let text = std::fs::read_to_string(out.dir.path().join("run.jsonl")).unwrap();
    assert!(!text.contains("s3cr3t-value"), "{text}");
    let events = ledger(&out);
    assert_eq!(
        tool_output(&events, "token")["output"]["text"],
        "[REDACTED:KAIROS_TEST_TOKEN]"
    );
    let start = events
        .iter()
        .find(|e| e["event"] == "Start" && e["node"] == "token")
        .unwrap();
    assert_eq!(
        start["input"]["server"]["env"]["TOKEN"],
        serde_json::json!({ "env": "KAIROS_TEST_TOKEN" })
    );

    // Unset, the call fails and says which variable is missing.
    let out = run(with_fake(
        "  keyed: { command: [python3, fake_server.py], env: { TOKEN: { env: KAIROS_TEST_UNSET } } }\n",
        PERMISSIVE,
        "  - { id: token, tool: mcp, with: { server: keyed, tool: env, arguments: { name: TOKEN } } }\n",
    ))
    .code(1);
    let error = tool_output(&ledger(&out), "token")["error"].clone();
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("environment variable `KAIROS_TEST_UNSET` is not set"),
        "{error}"
    );
}

#[test]
fn mcp_the_stateless_revision_is_discovered_and_every_request_says_it() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "  modern: { command: [python3, fake_server.py, modern], env: { FAKE_MCP_LOG: log.jsonl } }\n",
        PERMISSIVE,
        "  - { id: add, tool: mcp, with: { server: modern, tool: add, arguments: { a: 20, b: 22 } } }\n",
    ))
    .code(0);
    assert_eq!(tool_output(&ledger(&out), "add")["output"]["text"], "42");
    let messages = received(out.dir.path());
    let methods: Vec<&str> = messages
        .iter()
        .map(|m| m["method"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "tools/list",
            "tools/list",
            "tools/list",
            "tools/list",
            "tools/call"
        ]
    );
    for m in &messages {
        assert_eq!(
            m["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28",
            "{m}"
        );
    }
}

#[test]
fn mcp_a_server_of_the_handshake_revisions_is_probed_then_initialized() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: echo, tool: mcp, with: { server: fake, tool: echo, arguments: { message: hi } } }\n",
    ))
    .code(0);
    let messages = received(out.dir.path());
    let methods: Vec<&str> = messages
        .iter()
        .take(3)
        .map(|m| m["method"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        methods,
        ["server/discover", "initialize", "notifications/initialized"]
    );
    // After the handshake, requests carry no stateless `_meta`.
    let call = messages
        .iter()
        .find(|m| m["method"] == "tools/call")
        .unwrap();
    assert!(
        call["params"]["_meta"]
            .get("io.modelcontextprotocol/protocolVersion")
            .is_none()
    );
}

#[test]
fn mcp_a_modern_only_server_of_another_revision_is_refused() {
    if !require_program("python3") {
        return;
    }
    let out = run(with_fake(
        "",
        PERMISSIVE,
        "  - { id: echo, tool: mcp, with: { server: [python3, fake_server.py, modern-future], tool: echo } }\n",
    ))
    .code(1);
    let error = tool_output(&ledger(&out), "echo")["error"].clone();
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("the server speaks MCP revision 2099-01-01; kairos speaks 2026-07-28"),
        "{error}"
    );
}

/// A server built with the official Python SDK (PyPI `mcp` 2.x, installed by `.ci/run`), which
/// speaks the stateless revision: over stdio and over Streamable HTTP.
#[test]
fn mcp_python_sdk_server_over_stdio_and_streamable_http() {
    if !crate::common::require_python_module(
        "mcp.server.mcpserver",
        "python3 -m pip install 'mcp>=2'",
    ) {
        return;
    }
    let script = std::fs::read_to_string(root().join("tests/fixtures/mcp/py_server.py")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let test = Test::new().file("py_server.py", &script);
    let server = std::process::Command::new("python3")
        .args(["py_server.py", "http", &port.to_string()])
        .current_dir(test.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _stop = Stop(server);
    wait_for_port(port);
    let out = run(test.workflow(&format!(
        "version: 1
name: mcp-python-sdk
policy: {{ preset: restrictive, allow: [external_api, subprocess, net], commands: [python3], hosts: [127.0.0.1] }}
mcp_servers:
  stdio: {{ command: [python3, py_server.py] }}
  http: {{ url: 'http://127.0.0.1:{port}/mcp' }}
nodes:
  - {{ id: add, tool: mcp, with: {{ server: stdio, tool: add, arguments: {{ a: 2, b: 5 }} }} }}
  - {{ id: echo, tool: mcp, with: {{ server: http, tool: echo, arguments: {{ message: over http }} }} }}
"
    )))
    .code(0);
    let events = ledger(&out);
    let add = tool_output(&events, "add");
    assert_eq!(add["output"]["text"], "7");
    assert_eq!(
        add["output"]["structured"],
        serde_json::json!({ "result": 7 })
    );
    assert_eq!(tool_output(&events, "echo")["output"]["text"], "over http");
    let listed: Vec<&str> = events
        .iter()
        .filter_map(|e| e.get("mcp_tools"))
        .map(|t| t["server"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["stdio", "http"]);
}

/// Kills a server a test started, when the test ends however it ends.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a server a test started to listen (it loads its runtime first).
fn wait_for_port(port: u16) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the server did not listen on port {port}");
}

#[test]
fn mcp_retries_of_a_templated_tool_count_against_its_server_and_tool_key() {
    if !require_program("python3") {
        return;
    }
    // The key is known only once `tool` is rendered; each retry is a call under it too.
    let out = run(with_fake(
        "",
        "{ preset: permissive, max_calls: { 'mcp:fake/fail': 2 } }",
        "  - id: each
    for_each: [fail]
    tool: mcp
    with: { server: fake, tool: '{{ item }}' }
    retry: { attempts: 3, backoff: 10ms }
",
    ))
    .code(3);
    let events = ledger(&out);
    let limited: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "CallLimitExceeded")
        .map(|e| (e["node"].as_str().unwrap(), e["key"].as_str().unwrap()))
        .collect();
    assert_eq!(limited, [("each[0]", "mcp:fake/fail")]);
    let calls = received(out.dir.path())
        .into_iter()
        .filter(|m| m["method"] == "tools/call")
        .count();
    assert_eq!(calls, 2, "the third attempt is refused before it is made");
    // Replay counts the recorded retries the same way, and starts no server.
    Test::new()
        .args(["replay", "--check", "run.jsonl"])
        .run_in(out.dir.path())
        .code(0);
}
