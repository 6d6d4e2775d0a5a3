//! The `llm` tool against the fake servers of `fake_llm.rs`: both dialects, streaming, tool
//! calls, structured output, failures and retries, credentials that never leave the process,
//! token accounting and budgets, replay without a connection, and diffs of calls.

use crate::common::{Output, Test};
use crate::fake_llm::*;
use serde_json::{Value, json};
use std::time::Duration;

/// A fake key, with the shape of a real one.
const KEY: &str = "sk-test-Zq8vN3kP0wY7rT2mL5xC9bH4";

fn ledger(out: &Output, name: &str) -> Vec<Value> {
    std::fs::read_to_string(out.dir.path().join(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events<'a>(lines: &'a [Value], kind: &str, node: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|e| e["event"] == kind && e["node"] == node)
        .collect()
}

/// The last `ToolOutput` of `node`.
fn output<'a>(lines: &'a [Value], node: &str) -> &'a Value {
    &events(lines, "ToolOutput", node).last().unwrap()["output"]
}

/// A workflow of one `llm` node `ask` with these `with:` lines (indented under `with:`), and
/// the base URL as input `url`.
fn one(with: &str) -> String {
    one_with(with, "")
}

fn one_with(with: &str, node_extra: &str) -> String {
    format!(
        "version: 1\nname: llm\ninputs:\n  url: {{ default: \"http://127.0.0.1:9/v1\" }}\npolicy:\n  preset: permissive\nnodes:\n  - id: ask\n    tool: llm\n{node_extra}    with:\n      base_url: \"{{{{ inputs.url }}}}\"\n{with}"
    )
}

fn run(yaml: &str, server: &FakeServer, extra: &[&str]) -> Output {
    Test::new()
        .workflow(yaml)
        .env("OPENAI_API_KEY", KEY)
        .env("ANTHROPIC_API_KEY", KEY)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--input"])
        .args([format!("url={}", server.base_url())])
        .args(extra)
        .run()
}

#[test]
fn an_openai_prompt_is_sent_and_its_answer_normalised() {
    let server = FakeServer::script(vec![Reply::ok(openai_text("Paris.", 12, 3))]);
    let out = run(
        &one("      model: gpt-test\n      system: Be brief.\n      prompt: Capital of France?\n      temperature: 0\n      seed: 7\n      max_tokens: 20\n      stop: [\"\\n\"]\n"),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    let o = output(&lines, "ask");
    assert_eq!(o["text"], "Paris.");
    assert_eq!(o["finish_reason"], "stop");
    assert_eq!(o["model"], "fake-gpt");
    assert_eq!(
        o["message"],
        json!({"role": "assistant", "content": "Paris."})
    );
    assert_eq!(o["tool_calls"], json!([]));
    assert_eq!(o["parsed"], Value::Null);
    assert_eq!(o["refusal"], Value::Null);
    assert_eq!(
        o["usage"],
        json!({"input_tokens": 12, "output_tokens": 3, "total_tokens": 15})
    );
    let seen = &server.requests()[0];
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        seen.body,
        json!({"model": "gpt-test", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"}],
            "temperature": 0, "seed": 7, "stop": ["\n"], "max_tokens": 20})
    );
}

#[test]
fn an_anthropic_call_maps_keys_to_the_messages_api() {
    let server = FakeServer::script(vec![Reply::ok(anthropic_text("Paris.", 12, 3))]);
    let out = run(
        &one("      dialect: anthropic\n      model: claude-test\n      system: Be brief.\n      prompt: Capital of France?\n      seed: 7\n      stop: END\n"),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    let o = output(&lines, "ask");
    assert_eq!(o["text"], "Paris.");
    assert_eq!(o["finish_reason"], "stop");
    assert_eq!(o["usage"]["total_tokens"], 15);
    let seen = &server.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        seen.body,
        json!({"model": "claude-test", "max_tokens": 4096, "system": "Be brief.",
               "messages": [{"role": "user", "content": "Capital of France?"}],
               "stop_sequences": ["END"]})
    );
}

#[test]
fn streamed_answers_record_what_plain_ones_do() {
    for (dialect, plain, streamed) in [
        (
            "openai",
            Reply::ok(openai_text("Hello there", 5, 2)),
            openai_stream(&["Hel", "lo ", "there"], 5, 2),
        ),
        (
            "anthropic",
            Reply::ok(anthropic_text("Hello there", 5, 2)),
            anthropic_stream(&["Hel", "lo ", "there"], 5, 2),
        ),
    ] {
        let with = format!("      dialect: {dialect}\n      model: m\n      prompt: hi\n");
        let a = FakeServer::script(vec![plain]);
        let b = FakeServer::script(vec![streamed]);
        let plain = run(&one(&with), &a, &[]).code(0);
        let streamed = run(&one(&format!("{with}      stream: true\n")), &b, &[]).code(0);
        let (pl, sl) = (ledger(&plain, "l.jsonl"), ledger(&streamed, "l.jsonl"));
        let (po, so) = (output(&pl, "ask"), output(&sl, "ask"));
        assert_eq!(so["text"], "Hello there", "{dialect}");
        assert_eq!(so["usage"], po["usage"], "{dialect}");
        assert_eq!(so["finish_reason"], po["finish_reason"], "{dialect}");
        assert_eq!(b.requests()[0].body["stream"], true);
    }
}

#[test]
fn tool_calls_are_parsed_in_both_dialects() {
    let tools = "      tools:\n        - name: weather\n          description: Weather of a city\n          parameters: { type: object, properties: { city: { type: string } } }\n      tool_choice: weather\n";
    let server = FakeServer::script(vec![Reply::ok(openai_tool_call(
        "call_1",
        "weather",
        r#"{"city":"Paris"}"#,
    ))]);
    let out = run(
        &one(&format!("      model: m\n      prompt: weather?\n{tools}")),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    let o = output(&lines, "ask");
    assert_eq!(o["finish_reason"], "tool_calls");
    assert_eq!(
        o["tool_calls"],
        json!([{"id": "call_1", "name": "weather", "arguments": {"city": "Paris"},
                "arguments_raw": "{\"city\":\"Paris\"}"}])
    );
    assert_eq!(o["message"]["tool_calls"][0]["function"]["name"], "weather");
    let body = &server.requests()[0].body;
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tool_choice"]["function"]["name"], "weather");

    let server = FakeServer::script(vec![Reply::ok(anthropic_tool_use(
        "toolu_1",
        "weather",
        json!({"city": "Paris"}),
    ))]);
    let out = run(
        &one(&format!(
            "      dialect: anthropic\n      model: m\n      prompt: weather?\n{tools}"
        )),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    let o = output(&lines, "ask");
    assert_eq!(o["tool_calls"][0]["arguments"], json!({"city": "Paris"}));
    assert_eq!(o["finish_reason"], "tool_calls");
    let body = &server.requests()[0].body;
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "weather"})
    );
}

#[test]
fn tool_arguments_that_are_not_json_fail_unless_allowed() {
    let reply = || Reply::ok(openai_tool_call("c", "f", "{\"city\": Par"));
    let server = FakeServer::script(vec![reply()]);
    let out = run(&one("      model: m\n      prompt: x\n"), &server, &[]).code(1);
    let lines = ledger(&out, "l.jsonl");
    let end = events(&lines, "End", "ask")[0];
    assert!(
        end["error"]
            .as_str()
            .unwrap()
            .contains("invalid_tool_arguments"),
        "{end}"
    );
    assert_eq!(
        output(&lines, "ask")["tool_calls"][0]["arguments"],
        Value::Null
    );
    let out = run(
        &one("      model: m\n      prompt: x\n      allow: [invalid_tool_arguments]\n"),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    assert_eq!(
        output(&lines, "ask")["tool_calls"][0]["arguments_raw"],
        "{\"city\": Par"
    );
}

#[test]
fn length_refusal_and_content_filter_fail_unless_allowed() {
    let cases = [
        (
            "length",
            Reply::ok(openai_message(
                json!({"role": "assistant", "content": "Once upon"}),
                "length",
                5,
                2,
            )),
        ),
        (
            "content_filter",
            Reply::ok(openai_message(
                json!({"role": "assistant", "content": ""}),
                "content_filter",
                5,
                0,
            )),
        ),
        (
            "refusal",
            Reply::ok(openai_message(
                json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
                "stop",
                5,
                4,
            )),
        ),
        (
            "refusal",
            Reply::ok(anthropic_message(
                json!([{"type": "text", "text": "No."}]),
                "refusal",
                5,
                1,
            )),
        ),
        (
            "length",
            Reply::ok(anthropic_message(
                json!([{"type": "text", "text": "Once"}]),
                "max_tokens",
                5,
                1,
            )),
        ),
    ];
    for (kind, reply) in cases {
        let dialect = if reply_is_anthropic(&reply) {
            "anthropic"
        } else {
            "openai"
        };
        let server = FakeServer::script(vec![reply]);
        let with = format!("      dialect: {dialect}\n      model: m\n      prompt: x\n");
        let out = run(&one(&with), &server, &[]).code(1);
        let lines = ledger(&out, "l.jsonl");
        assert_eq!(
            output(&lines, "ask")["finish_reason"],
            kind,
            "{dialect} {kind}"
        );
        let error = events(&lines, "End", "ask")[0]["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            error.contains(&format!("add `{kind}` to the node's `allow`")),
            "{error}"
        );
        run(
            &one(&format!("{with}      allow: [{kind}]\n")),
            &server,
            &[],
        )
        .code(0);
    }
}

fn reply_is_anthropic(reply: &Reply) -> bool {
    matches!(reply, Reply::Json(_, _, body) if body.get("stop_reason").is_some())
}

#[test]
fn structured_output_is_parsed_in_both_dialects() {
    let schema = "      response_format:\n        type: object\n        properties: { name: { type: string }, age: { type: integer } }\n        required: [name, age]\n";
    let server = FakeServer::script(vec![Reply::ok(openai_text(
        r#"{"name":"Ada","age":36}"#,
        30,
        9,
    ))]);
    let out = run(
        &one(&format!("      model: m\n      prompt: extract\n{schema}")),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    assert_eq!(
        output(&lines, "ask")["parsed"],
        json!({"name": "Ada", "age": 36})
    );
    let rf = &server.requests()[0].body["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["name"], "output");
    assert_eq!(
        rf["json_schema"]["schema"]["required"],
        json!(["name", "age"])
    );

    let server = FakeServer::script(vec![Reply::ok(anthropic_tool_use(
        "t",
        "output",
        json!({"name": "Ada", "age": 36}),
    ))]);
    let out = run(
        &one(&format!(
            "      dialect: anthropic\n      model: m\n      prompt: extract\n{schema}"
        )),
        &server,
        &[],
    )
    .code(0);
    let lines = ledger(&out, "l.jsonl");
    let o = output(&lines, "ask");
    assert_eq!(o["parsed"], json!({"name": "Ada", "age": 36}));
    assert_eq!(o["finish_reason"], "stop");
    assert_eq!(o["tool_calls"], json!([]));
    let body = &server.requests()[0].body;
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "output"})
    );

    // An answer to a schema that is not JSON fails.
    let server = FakeServer::script(vec![Reply::ok(openai_text("Ada, 36", 30, 9))]);
    let out = run(
        &one(&format!("      model: m\n      prompt: extract\n{schema}")),
        &server,
        &[],
    )
    .code(1);
    assert!(out.stdout.contains("invalid_json") || out.stderr.contains("invalid_json"));
}

#[test]
fn a_429_is_retried_after_the_wait_the_server_asks_and_each_attempt_recorded() {
    let server = FakeServer::script(vec![
        Reply::status(
            429,
            &[("retry-after-ms", "40")],
            json!({"error": {"message": "slow down", "type": "rate_limit"}}),
        ),
        Reply::status(503, &[], json!({"error": {"message": "overloaded"}})),
        Reply::ok(openai_text("ok", 1, 1)),
    ]);
    let yaml = one_with(
        "      model: m\n      prompt: x\n",
        "    retry: { attempts: 4, backoff: 1ms }\n",
    );
    let out = run(&yaml, &server, &[]).code(0);
    let lines = ledger(&out, "l.jsonl");
    let outputs = events(&lines, "ToolOutput", "ask");
    assert_eq!(outputs.len(), 3);
    assert_eq!(outputs[0]["output"]["status"], 429);
    assert_eq!(outputs[0]["output"]["retry_after_ms"], 40);
    assert_eq!(outputs[0]["error"], "HTTP 429: slow down");
    assert_eq!(outputs[1]["output"]["status"], 503);
    let retries = events(&lines, "Retry", "ask");
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0]["delay_ms"], 40);
    assert!(retries[1]["delay_ms"].as_u64().unwrap() <= 1);
    assert_eq!(events(&lines, "End", "ask")[0]["attempts"], 3);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn an_exhausted_quota_a_bad_request_and_malformed_json_are_not_retried() {
    for reply in [
        Reply::status(
            429,
            &[("retry-after", "1")],
            json!({"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
        ),
        Reply::status(400, &[], json!({"error": {"message": "bad model"}})),
        Reply::Raw(200, "{\"choices\": [".into()),
    ] {
        let server = FakeServer::script(vec![reply, Reply::ok(openai_text("ok", 1, 1))]);
        let yaml = one_with(
            "      model: m\n      prompt: x\n",
            "    retry: { attempts: 3, backoff: 1ms }\n",
        );
        let out = run(&yaml, &server, &[]).code(1);
        let lines = ledger(&out, "l.jsonl");
        assert_eq!(
            events(&lines, "ToolOutput", "ask").len(),
            1,
            "{:?}",
            server.requests().len()
        );
        assert!(events(&lines, "Retry", "ask").is_empty());
        assert_eq!(server.requests().len(), 1);
    }
}

#[test]
fn a_slow_server_times_out_and_the_timeout_is_retried() {
    let server = FakeServer::script(vec![
        Reply::ok(openai_text("late", 1, 1)).after(Duration::from_secs(3)),
        Reply::ok(openai_text("on time", 1, 1)),
    ]);
    let yaml = one_with(
        "      model: m\n      prompt: x\n      timeout: 300ms\n",
        "    retry: { attempts: 2, backoff: 1ms }\n",
    );
    let out = run(&yaml, &server, &[]).code(0);
    let lines = ledger(&out, "l.jsonl");
    let outputs = events(&lines, "ToolOutput", "ask");
    assert!(
        outputs[0]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        outputs[0]
    );
    assert_eq!(outputs[1]["output"]["text"], "on time");
}

#[test]
fn a_stream_that_stalls_fails_with_the_calls_timeout() {
    let first = r#"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#;
    let server = FakeServer::script(vec![Reply::Stalled(
        vec![first.to_string()],
        Duration::from_secs(3),
    )]);
    let yaml = one("      model: m\n      prompt: x\n      stream: true\n      timeout: 500ms\n");
    let out = run(&yaml, &server, &[]).code(1);
    let lines = ledger(&out, "l.jsonl");
    let outputs = events(&lines, "ToolOutput", "ask");
    assert_eq!(
        outputs[0]["error"],
        "reading the event stream: timed out after 500ms"
    );
}

#[test]
fn without_a_retry_block_a_call_is_tried_once() {
    let server = FakeServer::script(vec![
        Reply::status(500, &[], json!({})),
        Reply::ok(openai_text("ok", 1, 1)),
    ]);
    run(&one("      model: m\n      prompt: x\n"), &server, &[]).code(1);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_key_never_reaches_the_ledger_the_terminal_or_the_trace() {
    // The server echoes the credential it got into its answer and into an error.
    let server = FakeServer::with(|seen, k| {
        let auth = seen.header("authorization").unwrap_or_default().to_string();
        if k == 0 {
            Reply::status(
                500,
                &[],
                json!({"error": {"message": format!("bad header {auth}")}}),
            )
        } else {
            Reply::ok(openai_text(&format!("you sent {auth}"), 1, 1))
        }
    });
    let yaml = one_with(
        "      model: m\n      prompt: x\n      api_key_env: MY_LLM_KEY\n",
        "    retry: { attempts: 2, backoff: 1ms }\n",
    );
    let out = Test::new()
        .workflow(&yaml)
        .env("MY_LLM_KEY", KEY)
        .args([
            "run", "wf.yaml", "--ledger", "l.jsonl", "--trace", "t.json", "--format", "json",
            "--input",
        ])
        .args([format!("url={}", server.base_url())])
        .run()
        .code(0);
    assert_eq!(
        server.requests()[1].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let ledger_text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    let trace = std::fs::read_to_string(out.dir.path().join("t.json")).unwrap();
    for (what, text) in [
        ("ledger", &ledger_text),
        ("trace", &trace),
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
    ] {
        crate::secrets::assert_no_trace(what, text, KEY);
    }
    assert!(ledger_text.contains("[REDACTED:MY_LLM_KEY]"));
    assert!(ledger_text.contains("\"api_key_env\":\"MY_LLM_KEY\""));
    // Replay and its output show no key either.
    let replay = Test::new()
        .file("l.jsonl", &ledger_text)
        .args(["replay", "l.jsonl", "--check"])
        .run()
        .code(0);
    crate::secrets::assert_no_trace("replay", &(replay.stdout + &replay.stderr), KEY);
}

#[test]
fn a_literal_key_in_a_workflow_is_refused_where_it_is_written() {
    for (with, needle) in [
        (
            "      api_key: sk-abc\n",
            "a literal API key in a workflow is refused",
        ),
        (
            "      headers: { Authorization: \"Bearer x\" }\n",
            "header `Authorization` would carry a literal credential",
        ),
        (
            "      headers: { X-Trace: \"sk-proj-abcdefghijklmnopqrstuvwxyz0123\" }\n",
            "this looks like a literal API key",
        ),
        (
            "      api_key_env: \"{{ inputs.url }}\"\n",
            "`api_key_env` names an environment variable",
        ),
        ("      allow: [everything]\n", "`allow` names `everything`"),
    ] {
        let yaml = one(&format!("      model: m\n      prompt: x\n{with}"));
        let out = Test::new()
            .workflow(&yaml)
            .args(["validate", "wf.yaml"])
            .run()
            .code(2);
        assert!(out.stderr.contains(needle), "{needle}:\n{}", out.stderr);
        // The diagnostic points at the line.
        assert!(out.stderr.contains("wf.yaml:"), "{}", out.stderr);
    }
}

#[test]
fn an_unset_default_key_sends_no_credential_and_an_unset_named_one_fails_the_node() {
    let server = FakeServer::script(vec![Reply::ok(openai_text("hi", 1, 1))]);
    Test::new()
        .workflow(&one("      model: m\n      prompt: x\n"))
        .env("OPENAI_API_KEY", "")
        .args(["run", "wf.yaml", "--input"])
        .args([format!("url={}", server.base_url())])
        .run()
        .code(0);
    assert_eq!(server.requests()[0].header("authorization"), None);
    let out = Test::new()
        .workflow(&one(
            "      model: m\n      prompt: x\n      api_key_env: KAIROS_NO_SUCH_KEY\n",
        ))
        .args(["run", "wf.yaml", "--input"])
        .args([format!("url={}", server.base_url())])
        .run()
        .code(1);
    assert!(
        out.stdout
            .contains("`KAIROS_NO_SUCH_KEY` (api_key_env) is not set")
            || out
                .stderr
                .contains("`KAIROS_NO_SUCH_KEY` (api_key_env) is not set"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn hosts_are_checked_before_a_call_reaches_the_server() {
    let server = FakeServer::script(vec![Reply::ok(openai_text("hi", 1, 1))]);
    let yaml = one("      model: m\n      prompt: x\n").replace(
        "  preset: permissive\n",
        "  preset: permissive\n  hosts: [api.openai.com]\n",
    );
    let out = run(&yaml, &server, &[]).code(3);
    let lines = ledger(&out, "l.jsonl");
    assert_eq!(
        events(&lines, "PolicyDeny", "ask")[0]["reason"],
        "HOST_NOT_PERMITTED"
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn replay_check_opens_no_connection() {
    let server = FakeServer::script(vec![Reply::ok(openai_text("Paris.", 12, 3))]);
    let out = run(
        &one("      model: m\n      prompt: Capital?\n"),
        &server,
        &[],
    )
    .code(0);
    let ledger_text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert_eq!(server.connections(), 1);
    // The recorded base URL still answers: a replay that called it would be counted.
    Test::new()
        .file("l.jsonl", &ledger_text)
        .args(["replay", "l.jsonl", "--check"])
        .run()
        .code(0);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests().len(), 1);
    // With the server gone, a live call would fail; the replay answers from the ledger.
    drop(server);
    Test::new()
        .file("l.jsonl", &ledger_text)
        .args(["replay", "l.jsonl", "--check"])
        .run()
        .code(0);
}

#[test]
fn replay_against_a_changed_prompt_shows_the_request_difference() {
    let server = FakeServer::script(vec![Reply::ok(openai_text("Paris.", 12, 3))]);
    let yaml = one("      model: m\n      prompt: Capital of France?\n");
    let out = run(&yaml, &server, &[]).code(0);
    let ledger_text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    let changed = yaml.replace("Capital of France?", "Capital of Spain?");
    let out = Test::new()
        .file("l.jsonl", &ledger_text)
        .file("changed.yaml", &changed)
        .args(["replay", "l.jsonl", "--against", "changed.yaml"])
        .run()
        .code(1);
    assert!(out.stdout.contains("prompt"), "{}", out.stdout);
    assert!(out.stdout.contains("-Capital of France?"), "{}", out.stdout);
    assert!(out.stdout.contains("+Capital of Spain?"), "{}", out.stdout);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn diff_aligns_calls_and_shows_prompts_answers_models_and_tokens() {
    let yaml = one(
        "      model: gpt-test\n      messages:\n        - { role: system, content: Be brief. }\n        - { role: user, content: Capital of France? }\n",
    );
    let a = FakeServer::script(vec![Reply::ok(openai_text("Paris.", 12, 3))]);
    let mut reply = openai_text("Paris, France.", 14, 6);
    reply["model"] = json!("fake-gpt-2");
    let b = FakeServer::script(vec![Reply::ok(reply)]);
    let ra = run(&yaml, &a, &[]).code(0);
    let rb = run(
        &yaml.replace("France?", "France? Answer in a sentence."),
        &b,
        &[],
    )
    .code(0);
    let la = std::fs::read_to_string(ra.dir.path().join("l.jsonl")).unwrap();
    let lb = std::fs::read_to_string(rb.dir.path().join("l.jsonl")).unwrap();
    let t = Test::new().file("a.jsonl", &la).file("b.jsonl", &lb);
    let out = t.args(["diff", "a.jsonl", "b.jsonl"]).run().code(1);
    for needle in [
        "prompt",
        "answer",
        "fake-gpt-2",
        "15 (12 in, 3 out)",
        "20 (14 in, 6 out), +5",
        "-user: Capital of France?",
        "+user: Capital of France? Answer in a sentence.",
        "-Paris.",
        "+Paris, France.",
    ] {
        assert!(out.stdout.contains(needle), "{needle}:\n{}", out.stdout);
    }
    let json = Test::new()
        .file("a.jsonl", &la)
        .file("b.jsonl", &lb)
        .args(["diff", "a.jsonl", "b.jsonl", "--format", "json"])
        .run()
        .json();
    let fields: Vec<&str> = json["nodes"][0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for f in ["prompt", "answer", "model", "tokens"] {
        assert!(fields.contains(&f), "{fields:?}");
    }
}

/// Three independent `llm` nodes a, b, c under `policy_extra`, each answered with 10 tokens
/// by a model named after the prompt's last word.
fn three(policy_extra: &str) -> String {
    let mut yaml = format!(
        "version: 1\nname: three\ninputs:\n  url: {{ default: \"http://127.0.0.1:9/v1\" }}\npolicy:\n  preset: permissive\n{policy_extra}nodes:\n"
    );
    for (id, model) in [("a", "m1"), ("b", "m2"), ("c", "m1")] {
        yaml.push_str(&format!(
            "  - id: {id}\n    tool: llm\n    with: {{ base_url: \"{{{{ inputs.url }}}}\", model: {model}, prompt: \"say {model}\" }}\n"
        ));
    }
    yaml
}

fn model_server() -> FakeServer {
    FakeServer::with(|seen, _| {
        let mut reply = openai_text("ok", 7, 3);
        reply["model"] = seen.body["model"].clone();
        Reply::ok(reply).after(Duration::from_millis(20))
    })
}

#[test]
fn tokens_are_totalled_per_model_in_run_end_and_the_summary() {
    let server = model_server();
    let out = run(&three(""), &server, &[]).code(0);
    let lines = ledger(&out, "l.jsonl");
    let end = lines.last().unwrap();
    assert_eq!(
        end["usage"],
        json!({
            "m1": {"calls": 2, "input_tokens": 14, "output_tokens": 6, "total_tokens": 20},
            "m2": {"calls": 1, "input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
        })
    );
    assert!(
        out.stdout
            .contains("tokens m1: 20 (14 in, 6 out) in 2 calls"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("tokens m2: 10 (7 in, 3 out) in 1 call\n"),
        "{}",
        out.stdout
    );
    let json = run(&three(""), &server, &["--format", "json"])
        .code(0)
        .json();
    assert_eq!(json["usage"], end["usage"]);
}

#[test]
fn a_run_without_model_calls_ends_as_before() {
    let out = Test::new()
        .workflow("version: 1\nname: plain\nnodes:\n  - id: a\n    tool: echo\n    with: { message: hi }\n")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(0);
    let lines = ledger(&out, "l.jsonl");
    assert!(lines.last().unwrap().get("usage").is_none());
    assert!(lines[0]["policy"].get("budget").is_none());
    assert!(out.json().get("usage").is_none());
}

#[test]
fn a_token_budget_is_decided_in_commit_order_at_any_jobs() {
    let server = model_server();
    let yaml = three("  budget: { tokens: 15 }\n");
    let mut ledgers = Vec::new();
    for jobs in ["1", "4"] {
        let out = run(&yaml, &server, &["--jobs", jobs]).code(3);
        let lines = ledger(&out, "l.jsonl");
        // a spends 10; b starts with 10 < 15 spent; c finds 20 spent.
        assert!(events(&lines, "PolicyDeny", "a").is_empty());
        assert!(events(&lines, "PolicyDeny", "b").is_empty());
        let deny = events(&lines, "PolicyDeny", "c");
        assert_eq!(deny[0]["reason"], "BUDGET_EXCEEDED", "{jobs}");
        assert!(
            deny[0]["detail"].as_str().unwrap().contains("20 tokens"),
            "{}",
            deny[0]
        );
        assert_eq!(events(&lines, "End", "c")[0]["status"], "denied");
        ledgers.push(std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap());
    }
    assert_eq!(ledgers[0], ledgers[1]);
    assert_eq!(server.requests().len(), 4);
    // The replay takes the same decisions from the recorded tokens, with no call.
    Test::new()
        .file("l.jsonl", &ledgers[0])
        .args(["replay", "l.jsonl", "--check"])
        .run()
        .code(0);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn an_llm_calls_budget_counts_calls_and_retries() {
    let server = FakeServer::with(|_, k| {
        if k == 0 {
            Reply::status(503, &[], json!({"error": {"message": "busy"}}))
        } else {
            Reply::ok(openai_text("ok", 1, 1))
        }
    });
    let yaml = three("  budget: { llm_calls: 3 }\n").replace(
        "  - id: a\n    tool: llm\n",
        "  - id: a\n    tool: llm\n    retry: { attempts: 2, backoff: 1ms }\n",
    );
    let out = run(&yaml, &server, &["--jobs", "1"]).code(3);
    let lines = ledger(&out, "l.jsonl");
    // a: two attempts (two calls), b: the third, c: past the budget.
    assert_eq!(events(&lines, "End", "a")[0]["attempts"], 2);
    assert_eq!(events(&lines, "End", "b")[0]["status"], "succeeded");
    let exceeded = events(&lines, "CallLimitExceeded", "c");
    assert_eq!(exceeded[0]["reason"], "BUDGET_EXCEEDED");
    assert_eq!(exceeded[0]["key"], "budget.llm_calls");
    assert_eq!(exceeded[0]["limit"], 3);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(lines[0]["policy"]["budget"], json!({"llm_calls": 3}));
}

#[test]
fn budgets_narrow_across_layers_and_belong_to_the_run() {
    let server = model_server();
    let out = Test::new()
        .workflow(&three("  budget: { tokens: 1000, llm_calls: 9 }\n"))
        .file("org.yaml", "budget: { llm_calls: 1 }\n")
        .args([
            "run", "wf.yaml", "--ledger", "l.jsonl", "--policy", "org.yaml", "--input",
        ])
        .args([format!("url={}", server.base_url())])
        .run()
        .code(3);
    let lines = ledger(&out, "l.jsonl");
    assert_eq!(
        lines[0]["policy"]["budget"],
        json!({"tokens": 1000, "llm_calls": 1})
    );
    assert_eq!(events(&lines, "CallLimitExceeded", "b")[0]["limit"], 1);

    let node_budget = three("").replace(
        "  - id: a\n    tool: llm\n",
        "  - id: a\n    policy: { budget: { tokens: 5 } }\n    tool: llm\n",
    );
    let out = Test::new()
        .workflow(&node_budget)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    assert!(
        out.stderr.contains("a node's policy cannot set `budget`"),
        "{}",
        out.stderr
    );
}

/// The two examples of `workflows/` run against a local server as they would against Ollama
/// or llama-server (docs/llm.md): no key, `base_url` and `model` as inputs.
#[test]
fn the_llm_examples_run_against_a_local_server() {
    let server = FakeServer::with(|seen, _| {
        let prompt = last_user_text(seen);
        if seen.body.get("response_format").is_some() {
            let (kind, severity) = match prompt.split(':').next().unwrap_or_default() {
                "CRASH" => ("crash", "critical"),
                "SECURITY" => ("security", "high"),
                "BUG" => ("bug", "medium"),
                _ => ("question", "low"),
            };
            let answer = json!({"kind": kind, "component": "core", "severity": severity});
            Reply::ok(openai_text(&answer.to_string(), 40, 12))
        } else if prompt.starts_with("Summarise") {
            Reply::ok(openai_text(
                "Model calls run for real. Replays never call the model. Budgets cap spending.",
                300,
                20,
            ))
        } else {
            Reply::ok(openai_text(
                "Model calls are recorded and replayed without the model",
                30,
                9,
            ))
        }
    });
    let root = crate::common::root();
    // `run_in` runs in the project root, where the examples' relative paths point; the ledger
    // goes to the test's own directory.
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("summary.jsonl");
    let out = Test::new()
        .env("OPENAI_API_KEY", "")
        .args([
            "run",
            "workflows/llm-summary.yaml",
            "--ledger",
            ledger.to_str().unwrap(),
            "--format",
            "json",
            "--input",
        ])
        .args([
            format!("base_url={}", server.base_url()),
            "--input".into(),
            "model=llama3.2".into(),
        ])
        .run_in(&root)
        .code(0);
    let doc = out.json();
    assert_eq!(
        doc["outputs"]["headline"],
        "Model calls are recorded and replayed without the model"
    );
    assert_eq!(doc["outputs"]["tokens"], "359");
    assert_eq!(doc["usage"]["fake-gpt"]["calls"], 2);
    let ledger = dir.path().join("extract.jsonl");
    let out = Test::new()
        .env("OPENAI_API_KEY", "")
        .args([
            "run",
            "workflows/llm-extract.yaml",
            "--ledger",
            ledger.to_str().unwrap(),
            "--format",
            "json",
            "--input",
        ])
        .args([
            format!("base_url={}", server.base_url()),
            "--input".into(),
            "model=llama3.2".into(),
        ])
        .run_in(&root)
        .code(0);
    let doc = out.json();
    // Both replay from their ledgers with no call.
    let calls = server.requests().len();
    for name in ["summary.jsonl", "extract.jsonl"] {
        let ledger = dir.path().join(name);
        Test::new()
            .args(["replay", ledger.to_str().unwrap(), "--check"])
            .run()
            .code(0);
    }
    assert_eq!(server.requests().len(), calls);
    let urgent = doc["outputs"]["urgent"].as_str().unwrap();
    assert!(urgent.contains("crash in core"), "{urgent}");
    assert!(!urgent.contains("question"), "{urgent}");
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn the_default_key_variables_are_secrets_without_being_listed() {
    // The server echoes the key it was sent, in both dialects.
    let server = FakeServer::with(|seen, _| {
        let key = seen
            .header("authorization")
            .or(seen.header("x-api-key"))
            .unwrap_or_default()
            .to_string();
        if seen.path.ends_with("/messages") {
            Reply::ok(anthropic_text(&format!("key {key}"), 1, 1))
        } else {
            Reply::ok(openai_text(&format!("key {key}"), 1, 1))
        }
    });
    for dialect in ["openai", "anthropic"] {
        let out = run(
            &one(&format!(
                "      dialect: {dialect}\n      model: m\n      prompt: x\n"
            )),
            &server,
            &[],
        )
        .code(0);
        let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
        crate::secrets::assert_no_trace("ledger", &text, KEY);
        crate::secrets::assert_no_trace("stdout", &out.stdout, KEY);
        let var = if dialect == "openai" {
            "OPENAI_API_KEY"
        } else {
            "ANTHROPIC_API_KEY"
        };
        assert!(
            text.contains(&format!("[REDACTED:{var}]")),
            "{dialect}: {text}"
        );
    }
}

/// A model call inside a loop body or a called workflow is the run's call too: its key, and a
/// credential-named header it sends, are masked like a top-level call's.
#[test]
fn keys_and_credential_headers_of_nested_calls_are_masked() {
    let server = FakeServer::with(|seen, _| {
        let auth = seen.header("authorization").unwrap_or_default().to_string();
        let token = seen.header("x-auth-token").unwrap_or_default().to_string();
        Reply::status(
            500,
            &[],
            json!({"error": {"message": format!("bad {auth} {token}")}}),
        )
    });
    let llm = |indent: &str, key: &str| {
        format!(
            "{indent}tool: llm\n{indent}continue_on_error: true\n{indent}with:\n{indent}  base_url: \"{{{{ inputs.url }}}}\"\n{indent}  model: m\n{indent}  prompt: x\n{indent}  api_key_env: {key}\n{indent}  headers: {{ X-Auth-Token: \"{{{{ inputs.token }}}}\" }}\n"
        )
    };
    let caller = format!(
        "version: 1\nname: nested\ninputs:\n  url: {{ default: \"http://127.0.0.1:9/v1\" }}\n  token: {{ default: \"\" }}\npolicy:\n  preset: permissive\nnodes:\n  - id: lp\n    loop:\n      max_iterations: 1\n      until: \"true\"\n      nodes:\n        - id: m\n{}  - id: sub\n    workflow: {{ file: sub.yaml, inputs: {{ url: \"{{{{ inputs.url }}}}\", token: \"{{{{ inputs.token }}}}\" }} }}\n",
        llm("          ", "LOOP_KEY")
    );
    let callee = format!(
        "version: 1\nname: sub\ninputs:\n  url: {{}}\n  token: {{}}\npolicy:\n  preset: permissive\nnodes:\n  - id: m\n{}",
        llm("    ", "SUB_KEY")
    );
    const TOKEN: &str = "header-token-Vb7Qm2Lp9Xc4";
    let out = Test::new()
        .workflow(&caller)
        .file("sub.yaml", &callee)
        .env("LOOP_KEY", KEY)
        .env("SUB_KEY", "sk-sub-Hr5Tn8Wq2Zy6Ka3Pd0")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--input"])
        .args([
            format!("url={}", server.base_url()),
            "--input".into(),
            format!("token={TOKEN}"),
        ])
        .run();
    assert_eq!(server.requests().len(), 2, "both nested calls were made");
    assert_eq!(
        server.requests()[0].header("x-auth-token"),
        Some(TOKEN),
        "the request has the header's value"
    );
    let ledger_text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    for secret in [KEY, "sk-sub-Hr5Tn8Wq2Zy6Ka3Pd0"] {
        crate::secrets::assert_no_trace("ledger", &ledger_text, secret);
        crate::secrets::assert_no_trace("stdout", &out.stdout, secret);
        crate::secrets::assert_no_trace("stderr", &out.stderr, secret);
    }
    // The header's value is recorded masked in each call's input.
    let lines = ledger(&out, "l.jsonl");
    let starts: Vec<&Value> = lines
        .iter()
        .filter(|e| e["event"] == "Start" && e["tool"] == "llm")
        .map(|e| &e["input"]["headers"]["X-Auth-Token"])
        .collect();
    assert_eq!(starts.len(), 2);
    for value in starts {
        assert_eq!(value, "[REDACTED]");
    }
}

#[test]
fn a_base_url_with_a_query_or_fragment_is_refused() {
    for base in ["http://127.0.0.1:9/v1#x", "http://127.0.0.1:9/v1?key=1"] {
        let yaml = format!(
            "version: 1\nname: t\npolicy: {{ preset: permissive }}\nnodes:\n  - {{ id: a, tool: llm, with: {{ model: m, prompt: hi, base_url: '{base}' }} }}\n"
        );
        crate::common::single(&yaml, "invalid_value", 5, 65, "has a query or a fragment");
    }
    // Rendered from an input, it is refused when the call is made, before any request.
    let server = FakeServer::script(vec![Reply::ok(openai_text("no", 1, 1))]);
    let yaml = "version: 1\nname: t\npolicy: { preset: permissive }\ninputs:\n  base: {}\nnodes:\n  - { id: ask, tool: llm, with: { model: m, prompt: hi, base_url: '{{ inputs.base }}' } }\n";
    let out = Test::new()
        .workflow(yaml)
        .env("OPENAI_API_KEY", "k")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-q", "--input"])
        .args([format!("base={}#frag", server.base_url())])
        .run()
        .code(1);
    let lines = ledger(&out, "l.jsonl");
    let outputs = events(&lines, "ToolOutput", "ask");
    assert!(
        outputs[0]["error"]
            .as_str()
            .unwrap()
            .contains("has a query or a fragment"),
        "{}",
        outputs[0]
    );
    assert_eq!(server.requests().len(), 0);
}
