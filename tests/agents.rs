//! The `agent:` node (docs/agents.md): its expansion into a loop, run against the scripted
//! model server of `fake_llm.rs` and the scripted MCP server tests/fixtures/mcp/fake_server.py.

use crate::common::{Output, Test, require_program, root};
use crate::fake_llm::*;
use serde_json::{Value, json};

fn two_calls() -> Value {
    openai_message(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}},
            {"id": "c2", "type": "function", "function": {"name": "echo", "arguments": "{\"message\": \"hi\"}"}}
        ]}),
        "tool_calls",
        20,
        10,
    )
}

/// An agent workflow over the fake server `fake`, the agent's keys in `agent`.
fn agent(agent: &str, policy: &str) -> Test {
    let script = std::fs::read_to_string(root().join("tests/fixtures/mcp/fake_server.py")).unwrap();
    Test::new().file("fake_server.py", &script).workflow(&format!(
        "version: 1\nname: agent-test\ninputs:\n  url: {{ default: \"http://127.0.0.1:9/v1\" }}\npolicy: {policy}\nmcp_servers:\n  fake: {{ command: [python3, fake_server.py], env: {{ FAKE_MCP_LOG: log.jsonl }} }}\nnodes:\n  - id: helper\n    agent:\n      llm: {{ base_url: \"{{{{ inputs.url }}}}\", model: m }}\n{agent}"
    ))
}

fn run(t: Test, server: &FakeServer, extra: &[&str]) -> Output {
    t.args([
        "run", "wf.yaml", "--ledger", "l.jsonl", "--quiet", "--input",
    ])
    .args([format!("url={}", server.base_url())])
    .args(extra)
    .run()
}

fn ledger(out: &Output) -> Vec<Value> {
    std::fs::read_to_string(out.dir.path().join("l.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn node_ids(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["node"].as_str().unwrap_or_default().to_string())
        .collect()
}

const PERMISSIVE: &str = "{ preset: permissive }";

#[test]
fn an_agent_runs_two_calls_then_one_then_answers_and_the_model_sees_each_result() {
    if !require_program("python3") {
        return;
    }
    let server = FakeServer::script(vec![
        Reply::ok(two_calls()),
        Reply::ok(openai_tool_call("c3", "fail", "{}")),
        Reply::ok(openai_text("5, hi", 30, 5)),
    ]);
    let out = run(
        agent(
            "      prompt: add and echo\n      mcp: [fake]\n      max_turns: 5\n",
            PERMISSIVE,
        ),
        &server,
        &[],
    )
    .code(0);
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    // Every turn offers the server's tools.
    let names: Vec<&str> = seen[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["echo", "add", "fail", "slow", "crash", "ask", "env"]
    );
    let m1 = seen[1].body["messages"].as_array().unwrap();
    assert_eq!(m1.len(), 4, "{m1:?}");
    assert_eq!(m1[0]["content"], "add and echo");
    assert_eq!(m1[1]["role"], "assistant");
    assert_eq!(m1[2]["role"], "tool");
    assert_eq!(
        (&m1[2]["tool_call_id"], &m1[2]["content"]),
        (&json!("c1"), &json!("5"))
    );
    assert_eq!(
        (&m1[3]["tool_call_id"], &m1[3]["content"]),
        (&json!("c2"), &json!("hi"))
    );
    // A tool error is the model's to read, not a failure.
    let m2 = seen[2].body["messages"].as_array().unwrap();
    assert_eq!(m2.len(), 6);
    assert_eq!(m2[5]["content"], "error: no such file");
    let events = ledger(&out);
    let calls: Vec<String> = node_ids(&events, "ToolOutput")
        .into_iter()
        .filter(|n| n.contains("/call_"))
        .collect();
    assert_eq!(
        calls,
        [
            "helper#1/call_fake[0]",
            "helper#1/call_fake[1]",
            "helper#2/call_fake[0]"
        ]
    );
    let models = node_ids(&events, "ToolOutput")
        .into_iter()
        .filter(|n| n.ends_with("/model"))
        .count();
    assert_eq!(models, 3);
    let end = events.iter().find(|e| e["event"] == "RunEnd").unwrap();
    assert_eq!(end["status"], "succeeded");
}

/// The tool messages the model received on its last turn.
fn last_tool_messages(server: &FakeServer) -> Vec<Value> {
    let seen = server.requests();
    seen.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect()
}

#[test]
fn a_tool_outside_the_agents_list_is_an_error_message_and_the_agent_goes_on() {
    if !require_program("python3") {
        return;
    }
    let server = FakeServer::script(vec![
        Reply::ok(two_calls()),
        Reply::ok(openai_text("done", 30, 5)),
    ]);
    let out = run(
        agent(
            "      prompt: go\n      tools: [fake/add]\n      max_turns: 3\n",
            PERMISSIVE,
        ),
        &server,
        &[],
    )
    .code(0);
    // Only `add` is offered, and `echo` is never called.
    let offered = &server.requests()[0].body["tools"];
    assert_eq!(offered.as_array().unwrap().len(), 1);
    assert_eq!(offered[0]["function"]["name"], "add");
    let tools = last_tool_messages(&server);
    assert_eq!(tools[0]["content"], "5");
    assert!(
        tools[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("error: the tool `echo` gave no result")
    );
    let events = ledger(&out);
    let echo = events
        .iter()
        .find(|e| e["event"] == "NodeEnd" && e["node"] == "helper#1/call_fake[1]");
    assert!(echo.is_none_or(|e| e["status"] == "skipped"), "{echo:?}");
    assert!(!node_ids(&events, "ToolOutput").contains(&"helper#1/call_fake[1]".to_string()));
}

#[test]
fn a_call_the_policy_refuses_is_an_error_message_not_a_denied_run() {
    if !require_program("python3") {
        return;
    }
    let server = FakeServer::script(vec![
        Reply::ok(two_calls()),
        Reply::ok(openai_text("done", 30, 5)),
    ]);
    let out = run(
        agent(
            "      prompt: go\n      mcp: [fake]\n      max_turns: 3\n",
            "{ preset: permissive, max_calls: { \"mcp:fake/echo\": 0 } }",
        ),
        &server,
        &[],
    )
    .code(0);
    let tools = last_tool_messages(&server);
    assert_eq!(tools[0]["content"], "5");
    assert!(
        tools[1]["content"]
            .as_str()
            .unwrap()
            .contains("the policy refused")
    );
    let events = ledger(&out);
    let echo_start = events
        .iter()
        .filter(|e| e["node"] == "helper#1/call_fake[1]")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(
        !echo_start.contains(&"ToolOutput".to_string()),
        "{echo_start:?}"
    );
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(
        text.contains("max_calls") || text.contains("limit"),
        "the refusal is recorded"
    );
}

#[test]
fn an_agent_that_reaches_max_turns_fails() {
    if !require_program("python3") {
        return;
    }
    let server = FakeServer::script(vec![Reply::ok(openai_tool_call(
        "c",
        "echo",
        "{\"message\": \"x\"}",
    ))]);
    let out = run(
        agent(
            "      prompt: go\n      mcp: [fake]\n      max_turns: 2\n",
            PERMISSIVE,
        ),
        &server,
        &[],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(server.requests().len(), 2);
    let events = ledger(&out);
    let it: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "LoopIteration")
        .collect();
    assert_eq!(it.len(), 2);
}

/// Two calls, then one, then an answer, for any number of runs (request `k` of a run is
/// `k % 3`).
fn three_turns() -> FakeServer {
    FakeServer::with(|_, k| match k % 3 {
        0 => Reply::ok(two_calls()),
        1 => Reply::ok(openai_tool_call("c3", "echo", "{\"message\": \"again\"}")),
        _ => Reply::ok(openai_text("5, hi", 30, 5)),
    })
}

const THREE_TURNS: &str = "      prompt: add and echo\n      mcp: [fake]\n      max_turns: 5\n";

#[test]
fn replay_check_of_an_agent_opens_no_socket_and_starts_no_server() {
    if !require_program("python3") {
        return;
    }
    let server = three_turns();
    let out = run(agent(THREE_TURNS, PERMISSIVE), &server, &[]).code(0);
    let dir = out.dir.path();
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert!(log.contains("tools/call"));
    assert_eq!(server.requests().len(), 3);
    let connections = server.connections();
    Test::new()
        .args(["replay", "l.jsonl", "--check"])
        .run_in(dir)
        .code(0);
    assert_eq!(server.connections(), connections);
    assert_eq!(std::fs::read_to_string(dir.join("log.jsonl")).unwrap(), log);
}

#[test]
fn replay_against_a_changed_prompt_diverges_at_the_first_turn() {
    if !require_program("python3") {
        return;
    }
    let server = three_turns();
    let out = run(agent(THREE_TURNS, PERMISSIVE), &server, &[]).code(0);
    let dir = out.dir.path();
    let changed = std::fs::read_to_string(dir.join("wf.yaml"))
        .unwrap()
        .replace("add and echo", "echo only");
    std::fs::write(dir.join("changed.yaml"), changed).unwrap();
    let out = Test::new()
        .args(["replay", "l.jsonl", "--against", "changed.yaml"])
        .run_in(dir)
        .code(1);
    assert!(out.stdout.contains("helper#1/model"), "{}", out.stdout);
    assert!(!out.stdout.contains("helper#2/"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"content\":\"echo only\""),
        "{}",
        out.stdout
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn an_agent_ledger_is_the_same_at_jobs_1_and_8() {
    if !require_program("python3") {
        return;
    }
    let server = three_turns();
    let a = run(agent(THREE_TURNS, PERMISSIVE), &server, &["--jobs", "1"]).code(0);
    let b = run(agent(THREE_TURNS, PERMISSIVE), &server, &["--jobs", "8"]).code(0);
    let read = |o: &Output| std::fs::read_to_string(o.dir.path().join("l.jsonl")).unwrap();
    assert_eq!(read(&a), read(&b));
}

#[test]
fn budgets_count_model_calls_across_turns_and_run_end_counts_them() {
    if !require_program("python3") {
        return;
    }
    let server = three_turns();
    let out = run(agent(THREE_TURNS, PERMISSIVE), &server, &[]).code(0);
    let events = ledger(&out);
    let end = events.last().unwrap();
    assert_eq!(
        end["usage"]["fake-gpt"],
        json!({"calls": 3, "input_tokens": 70, "output_tokens": 25, "total_tokens": 95})
    );
    // Two model calls are allowed; the third turn is refused.
    let server = three_turns();
    let out = run(
        agent(
            THREE_TURNS,
            "{ preset: permissive, budget: { llm_calls: 2 } }",
        ),
        &server,
        &[],
    )
    .code(3);
    assert_eq!(server.requests().len(), 2);
    let events = ledger(&out);
    let exceeded: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "CallLimitExceeded")
        .collect();
    assert_eq!(exceeded[0]["node"], "helper#3/model");
    assert_eq!(exceeded[0]["key"], "budget.llm_calls");
    // Tokens: each of the first two turns spends 30; the third finds 60 spent of 50.
    let server = three_turns();
    let out = run(
        agent(
            THREE_TURNS,
            "{ preset: permissive, budget: { tokens: 50 } }",
        ),
        &server,
        &[],
    )
    .code(3);
    assert_eq!(server.requests().len(), 2);
    let events = ledger(&out);
    let deny = events
        .iter()
        .find(|e| e["event"] == "PolicyDeny")
        .expect("a denial");
    assert_eq!(
        (&deny["node"], &deny["reason"]),
        (&json!("helper#3/model"), &json!("BUDGET_EXCEEDED"))
    );
    // max_calls on the model tool counts across turns too.
    let server = three_turns();
    run(
        agent(THREE_TURNS, "{ preset: permissive, max_calls: { llm: 1 } }"),
        &server,
        &[],
    )
    .code(3);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn kairos_graph_draws_the_agents_expansion() {
    let out = agent(THREE_TURNS, PERMISSIVE)
        .args(["graph", "wf.yaml", "--format", "mermaid"])
        .run()
        .code(0);
    assert!(
        out.stdout.contains("helper (agent, at most 5 turns)"),
        "{}",
        out.stdout
    );
    for node in ["tools_fake", "model", "call_fake"] {
        assert!(
            out.stdout.contains(&format!("{node}<br/>")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn agent_keys_are_checked_with_locations() {
    let out = agent(
        "      prompt: go\n      messages: []\n      tools: [nope/x, fake]\n      max_turns: 2\n",
        PERMISSIVE,
    )
    .args(["validate", "wf.yaml"])
    .run()
    .code(2);
    for needle in [
        "exactly one of `prompt` and `messages`",
        "no MCP server `nope`",
        "`fake` is not SERVER/TOOL",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    let out = agent("      prompt: go\n      mcp: [fake]\n", PERMISSIVE)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    assert!(out.stderr.contains("max_turns"), "{}", out.stderr);
    let out = Test::new()
        .workflow("version: 1\nname: a\nnodes:\n  - id: a\n    agent:\n      llm: { model: m, tools: [] }\n      prompt: go\n      max_turns: 2\n")
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    assert!(
        out.stderr.contains("`tools` is set by the agent each turn"),
        "{}",
        out.stderr
    );
}

/// A fake model for the examples of `workflows/`: it answers by the role the system prompt
/// gives (the reviewer approves its second draft, the chair ends the chat).
fn example_model() -> FakeServer {
    let reviews = std::sync::atomic::AtomicUsize::new(0);
    FakeServer::with(move |seen, _| {
        let system = seen.body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let text = if system.contains("FOR the motion") {
            "Tabs are one keystroke.".to_string()
        } else if system.contains("AGAINST the motion") {
            "Spaces look the same everywhere.".to_string()
        } else if system.contains("judge") {
            "AGAINST: consistency wins.".to_string()
        } else if system.contains("You review") {
            let n = reviews.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                "Add an example.".into()
            } else {
                "APPROVED".into()
            }
        } else if system.contains("the chair") {
            "The chair: Aurora it is. DONE".to_string()
        } else if system.contains("in a meeting") {
            "Aurora?".to_string()
        } else if system.contains("billing or technical") {
            "billing".to_string()
        } else {
            format!(
                "answer {}",
                seen.body["messages"].as_array().map_or(0, Vec::len)
            )
        };
        Reply::ok(openai_text(&text, 10, 5))
    })
}

fn run_example(file: &str, server: &FakeServer) -> (Value, Output) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("l.jsonl");
    let out = Test::new()
        .env("OPENAI_API_KEY", "")
        .args([
            "run",
            &format!("workflows/{file}"),
            "--ledger",
            ledger.to_str().unwrap(),
        ])
        .args(["--format", "json", "--input"])
        .args([
            format!("base_url={}", server.base_url()),
            "--input".into(),
            "model=llama3.2".into(),
        ])
        .run_in(&root())
        .code(0);
    let before = server.requests().len();
    Test::new()
        .args(["replay", ledger.to_str().unwrap(), "--check"])
        .run_in(&root())
        .code(0);
    assert_eq!(
        server.requests().len(),
        before,
        "{file}: a replay called the model"
    );
    (out.json(), out)
}

#[test]
fn the_multi_agent_examples_run_against_a_local_model() {
    let server = example_model();
    let (doc, _) = run_example("llm-debate.yaml", &server);
    assert_eq!(doc["outputs"]["verdict"], "AGAINST: consistency wins.");
    // Two rounds of two speakers, then the judge.
    assert_eq!(server.requests().len(), 5);
    let judge = last_user_text(&server.requests()[4]);
    assert!(
        judge.contains("FOR: Tabs are one keystroke.\nAGAINST: Spaces"),
        "{judge}"
    );

    let server = example_model();
    let (doc, _) = run_example("llm-writer-reviewer.yaml", &server);
    assert_eq!(server.requests().len(), 4, "two drafts, two reviews");
    assert_eq!(doc["outputs"]["paragraph"], "answer 2");

    let server = example_model();
    let (doc, _) = run_example("llm-chat.yaml", &server);
    // The optimist, the skeptic, then the chair says DONE on turn three.
    assert_eq!(server.requests().len(), 3);
    assert!(
        doc["outputs"]["transcript"]
            .as_str()
            .unwrap()
            .ends_with("DONE")
    );

    for (file, calls) in [
        ("llm-sequential.yaml", 3),
        ("llm-concurrent.yaml", 4),
        ("llm-graph.yaml", 2),
    ] {
        let server = example_model();
        let (doc, _) = run_example(file, &server);
        assert_eq!(server.requests().len(), calls, "{file}");
        assert!(
            doc["outputs"].as_object().is_some_and(|o| !o.is_empty()),
            "{file}"
        );
    }
}

/// workflows/llm-agent.yaml with the scripted MCP server in place of the reference one.
#[test]
fn the_agent_example_runs_against_a_local_model_and_the_fake_mcp_server() {
    if !require_program("python3") {
        return;
    }
    let example = std::fs::read_to_string(root().join("workflows/llm-agent.yaml"))
        .unwrap()
        .replace(
            "[mcp-server-everything, stdio]",
            "[python3, fake_server.py]",
        )
        .replace("commands: [mcp-server-everything]", "commands: [python3]")
        .replace("everything/get-sum", "everything/add");
    let script = std::fs::read_to_string(root().join("tests/fixtures/mcp/fake_server.py")).unwrap();
    let server = FakeServer::script(vec![
        Reply::ok(openai_tool_call("c1", "add", "{\"a\": 17, \"b\": 25}")),
        Reply::ok(openai_tool_call("c2", "add", "{\"a\": 1, \"b\": 1}")),
        Reply::ok(openai_text("17 + 25 is 42.", 30, 8)),
    ]);
    let out = Test::new()
        .file("fake_server.py", &script)
        .file("wf.yaml", &example)
        .env("OPENAI_API_KEY", "")
        .args([
            "run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json", "--input",
        ])
        .args([
            format!("base_url={}", server.base_url()),
            "--input".into(),
            "model=m".into(),
        ])
        .run()
        .code(0);
    let doc = out.json();
    assert_eq!(doc["outputs"]["answer"], "17 + 25 is 42.");
    assert_eq!(doc["outputs"]["turns"], "3");
    // The second `add` is past `max_calls`: the model reads that it was refused.
    let seen = server.requests();
    let last = seen[2].body["messages"].as_array().unwrap();
    assert_eq!(last[2]["content"], "42");
    assert!(
        last[4]["content"]
            .as_str()
            .unwrap()
            .contains("the policy refused")
    );
}

#[test]
fn an_agent_speaks_the_anthropic_dialect_with_tool_results_as_user_blocks() {
    if !require_program("python3") {
        return;
    }
    let server = FakeServer::script(vec![
        Reply::ok(anthropic_tool_use("t1", "add", json!({"a": 2, "b": 3}))),
        Reply::ok(anthropic_text("It is 5.", 30, 5)),
    ]);
    let t = agent(
        "      prompt: add\n      mcp: [fake]\n      max_turns: 3\n",
        PERMISSIVE,
    );
    let yaml = std::fs::read_to_string(t.path().join("wf.yaml"))
        .unwrap()
        .replace("model: m }", "model: m, dialect: anthropic }");
    std::fs::write(t.path().join("wf.yaml"), yaml).unwrap();
    let out = run(
        t.env("ANTHROPIC_API_KEY", "test-key"),
        &server,
        &["--format", "json"],
    )
    .code(0);
    let seen = server.requests();
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].body["tools"][1]["name"], "add");
    let m = seen[1].body["messages"].as_array().unwrap();
    assert_eq!(m[1]["content"][0]["type"], "tool_use");
    assert_eq!(
        (
            &m[2]["role"],
            &m[2]["content"][0]["type"],
            &m[2]["content"][0]["tool_use_id"]
        ),
        (&json!("user"), &json!("tool_result"), &json!("t1"))
    );
    let events = ledger(&out);
    let end = events
        .iter()
        .find(|e| e["event"] == "End" && e["node"] == "helper")
        .unwrap();
    assert_eq!(end["status"], "succeeded");
    let last = events
        .iter()
        .rfind(|e| e["event"] == "LoopIteration" && e["node"] == "helper")
        .unwrap();
    assert_eq!(
        (&last["state"]["text"], &last["state"]["turns"]),
        (&json!("It is 5."), &json!(2))
    );
    assert_eq!(last["state"]["messages"].as_array().unwrap().len(), 4);
    assert_eq!(last["ended"], "until");
}

#[test]
fn a_refused_call_is_decided_the_same_at_jobs_1_and_8() {
    if !require_program("python3") {
        return;
    }
    let server = FakeServer::with(|_, k| {
        if k % 2 == 0 {
            Reply::ok(two_calls())
        } else {
            Reply::ok(openai_text("done", 30, 5))
        }
    });
    let policy = "{ preset: permissive, max_calls: { \"mcp:fake/add\": 0 } }";
    let read = |o: &Output| std::fs::read_to_string(o.dir.path().join("l.jsonl")).unwrap();
    let one = run(agent(THREE_TURNS, policy), &server, &["--jobs", "1"]).code(0);
    let eight = run(agent(THREE_TURNS, policy), &server, &["--jobs", "8"]).code(0);
    assert_eq!(read(&one), read(&eight));
    assert!(read(&one).contains("CallLimitExceeded"));
}

#[test]
fn max_turns_out_of_range_is_named_as_the_agents_key() {
    let out = agent(
        "      prompt: go\n      mcp: [fake]\n      max_turns: 0\n",
        PERMISSIVE,
    )
    .args(["validate", "wf.yaml"])
    .run()
    .code(2);
    assert!(
        out.stderr
            .contains("`max_turns` must be a whole number from 1 to"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("wf.yaml:14"), "{}", out.stderr);
}

#[test]
fn kill_9_in_the_middle_of_an_agent_then_resume_gives_the_uninterrupted_ledger() {
    if !require_program("python3") {
        return;
    }
    // Turns are told apart by the tool results the model is sent, so a resumed run asking
    // again gets the answer the first run would have got. While `slow` exists, the second
    // turn takes long: the run is killed then, with turn 1 and its tool calls committed.
    let t = agent(THREE_TURNS, PERMISSIVE);
    let dir = t.path().to_path_buf();
    let slow = dir.join("slow");
    let flag = slow.clone();
    let server = FakeServer::with(move |seen, _| {
        let results = seen.body["messages"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["role"] == "tool").count());
        match results {
            0 => Reply::ok(two_calls()),
            2 if flag.exists() => {
                Reply::ok(openai_tool_call("c3", "echo", "{\"message\": \"again\"}"))
                    .after(std::time::Duration::from_secs(5))
            }
            2 => Reply::ok(openai_tool_call("c3", "echo", "{\"message\": \"again\"}")),
            _ => Reply::ok(openai_text("5, hi", 30, 5)),
        }
    });
    let url = format!("url={}", server.base_url());
    let args = |ledger: &str| -> Vec<String> {
        ["run", "wf.yaml", "-q", "--ledger", ledger, "--input", &url]
            .map(String::from)
            .to_vec()
    };
    let full_args = args("full.jsonl");
    let full_args: Vec<&str> = full_args.iter().map(String::as_str).collect();
    Test::new().args(&full_args).run_in(&dir).code(0);
    let full = std::fs::read_to_string(dir.join("full.jsonl")).unwrap();
    assert!(full.contains("5, hi"));

    std::fs::write(&slow, "").unwrap();
    let cut_args = args("cut.jsonl");
    let cut_args: Vec<&str> = cut_args.iter().map(String::as_str).collect();
    let mut child = crate::common::spawn(&dir, &cut_args);
    let started = std::time::Instant::now();
    // Turn 1's model call and its two tool calls are committed: 3 `ToolOutput` lines.
    while std::fs::read_to_string(dir.join("cut.jsonl"))
        .unwrap_or_default()
        .matches("\"ToolOutput\"")
        .count()
        < 3
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "turn 1 never committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let cut = std::fs::read_to_string(dir.join("cut.jsonl")).unwrap();
    assert!(!cut.contains("RunEnd") && !cut.contains("5, hi"), "{cut}");
    std::fs::remove_file(&slow).unwrap();
    let asked = server.requests().len();

    let resume_args = [
        "run",
        "wf.yaml",
        "-q",
        "--resume",
        "cut.jsonl",
        "--input",
        &url,
    ];
    Test::new().args(resume_args).run_in(&dir).code(0);
    assert_eq!(
        std::fs::read_to_string(dir.join("cut.jsonl")).unwrap(),
        full
    );
    // Turn 1 came from the ledger: only turns 2 and 3 were asked again.
    assert_eq!(server.requests().len(), asked + 2);
    drop(t);
}

#[test]
fn require_approval_of_model_calls_asks_a_person_before_each_turn() {
    if !require_program("python3") {
        return;
    }
    let server = three_turns();
    let t = agent(
        THREE_TURNS,
        "{ preset: permissive, require_approval: [llm] }",
    );
    let out = run(t, &server, &[]).code(4);
    let dir = out.dir.path();
    let url = format!("url={}", server.base_url());
    assert!(server.requests().is_empty(), "no turn before a decision");
    for turn in 1..=3 {
        let ledger = ledger_at(dir);
        let trailer = ledger.last().unwrap();
        assert_eq!(trailer["event"], "RunPaused");
        assert_eq!(trailer["pending"], json!([format!("helper#{turn}/model")]));
        let id = format!("helper#{turn}/model");
        let resumed = Test::new()
            .args([
                "run", "wf.yaml", "-q", "--resume", "l.jsonl", "--input", &url,
            ])
            .args(["--approve", &id, "--approver", "ann"])
            .run_in(dir);
        resumed.code(if turn < 3 { 4 } else { 0 });
        // Only the approved turn was asked: the earlier ones came from the ledger.
        assert_eq!(server.requests().len(), turn);
    }
    let ledger = ledger_at(dir);
    assert_eq!(ledger.last().unwrap()["event"], "RunEnd");
    assert_eq!(
        node_ids(&ledger, "ApprovalResolved"),
        ["helper#1/model", "helper#2/model", "helper#3/model"]
    );
}

fn ledger_at(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("l.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_agent_nodes_own_policy_holds_its_turns() {
    if !require_program("python3") {
        return;
    }
    let server = three_turns();
    let with_policy = |policy: &str| {
        let t = agent(THREE_TURNS, PERMISSIVE);
        let yaml = std::fs::read_to_string(t.path().join("wf.yaml")).unwrap();
        let yaml = yaml.replace(
            "  - id: helper\n",
            &format!("  - id: helper\n    policy: {policy}\n"),
        );
        t.workflow(&yaml)
    };
    // Its hosts: the model's host is not among them.
    let out = run(with_policy("{ hosts: [example.com] }"), &server, &[]).code(3);
    let events = ledger(&out);
    let denied: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "PolicyDeny" && e["node"] == "helper#1/model")
        .collect();
    assert_eq!(denied[0]["reason"], "HOST_NOT_PERMITTED");
    assert!(server.requests().is_empty());
    // Its require_approval: each turn's model call waits, and is decided by instance id.
    let out = run(with_policy("{ require_approval: [llm] }"), &server, &[]).code(4);
    let url = format!("url={}", server.base_url());
    Test::new()
        .args([
            "run", "wf.yaml", "-q", "--resume", "l.jsonl", "--input", &url,
        ])
        .args(["--approve", "helper#1/model"])
        .run_in(out.dir.path())
        .code(4);
    assert_eq!(server.requests().len(), 1);
}
