//! The `http` tool against a server in the test process (`fake_http.rs`): requests as sent,
//! responses as recorded, the policy at each hop, credentials, caps, timeouts, TLS, replay
//! without a connection, and the network lane.

use crate::common::{Output, Test};
use crate::fake_http::{FakeServer, Reply, Request, TestCa};
use serde_json::{Value, json};
use std::time::Duration;

/// Runs `wf.yaml` (with `yaml`) with `args`, the ledger in `rec.jsonl`; proxies from the
/// environment are bypassed for the test server.
fn run(yaml: &str, args: &[&str]) -> Output {
    Test::new()
        .workflow(yaml)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .args([
            "run",
            "wf.yaml",
            "--ledger",
            "rec.jsonl",
            "--format",
            "json",
        ])
        .args(args)
        .run()
}

/// The ledger's events.
fn ledger(out: &Output) -> Vec<Value> {
    std::fs::read_to_string(out.dir.path().join("rec.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ledger_text(out: &Output) -> String {
    std::fs::read_to_string(out.dir.path().join("rec.jsonl")).unwrap()
}

/// The events of kind `kind` for node `node`.
fn events<'a>(events: &'a [Value], kind: &str, node: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["node"] == node)
        .collect()
}

/// A workflow of `nodes` (YAML list items) allowed to reach the test server's hosts.
fn workflow(nodes: &str) -> String {
    format!(
        "version: 1\nname: web\npolicy: {{ preset: restrictive, allow: [net], hosts: [\"127.0.0.1\", localhost] }}\nnodes:\n{nodes}"
    )
}

/// Echoes the request back as JSON.
fn echo(req: &Request) -> Reply {
    Reply::json(
        200,
        &json!({
            "method": req.method,
            "path": req.path,
            "body": req.body_text(),
            "content_type": req.header("content-type"),
        }),
    )
    .header("X-Mixed-Case", "yes")
    .header("Vary", "a")
    .header("Vary", "b")
}

#[test]
fn a_get_sends_its_query_and_headers_and_records_the_response() {
    let server = FakeServer::start(echo);
    let yaml = workflow(&format!(
        "  - id: get
    tool: http
    with:
      url: \"{}\"
      query: {{ q: \"a b&c\", n: 2 }}
      headers: {{ Accept: application/json, X-Trace: \"t-1\" }}
",
        server.url("/search?x=1")
    ));
    let out = run(&yaml, &[]).code(0);
    let seen = &server.requests()[0];
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/search?x=1&n=2&q=a%20b%26c");
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.header("x-trace"), Some("t-1"));
    let log = ledger(&out);
    let output = &events(&log, "ToolOutput", "get")[0]["output"];
    assert_eq!(output["status"], 200);
    assert_eq!(output["headers"]["x-mixed-case"], "yes");
    assert_eq!(output["headers"]["vary"], "a, b");
    assert_eq!(output["headers"]["content-type"], "application/json");
    assert_eq!(output["json"]["path"], "/search?x=1&n=2&q=a%20b%26c");
    assert_eq!(
        output["final_url"],
        server.url("/search?x=1&n=2&q=a%20b%26c")
    );
    assert_eq!(output["redirects"], json!([]));
    assert!(output["body"].as_str().unwrap().starts_with('{'));
}

#[test]
fn json_form_and_text_bodies_are_sent_with_their_content_types() {
    let server = FakeServer::start(echo);
    let url = server.url("/in");
    let yaml = workflow(&format!(
        "  - id: j
    tool: http
    with: {{ method: POST, url: \"{url}\", json: {{ a: [1, two], b: null }} }}
  - id: f
    tool: http
    with: {{ method: put, url: \"{url}\", form: {{ name: \"Ada L\", n: 1 }} }}
  - id: t
    tool: http
    with: {{ method: PATCH, url: \"{url}\", body: \"plain\", headers: {{ Content-Type: text/csv }} }}
  - id: out
    needs: [j, f, t]
    tool: echo
    with: {{ message: \"{{{{ nodes.j.output.json.body }}}}|{{{{ nodes.f.output.json.body }}}}|{{{{ nodes.t.output.json.content_type }}}}\" }}
"
    ));
    let out = run(&yaml, &[]).code(0);
    let by_method = |m: &str| {
        server
            .requests()
            .into_iter()
            .find(|r| r.method == m)
            .unwrap()
    };
    let j = by_method("POST");
    assert_eq!(j.body_text(), r#"{"a":[1,"two"],"b":null}"#);
    assert_eq!(j.header("content-type"), Some("application/json"));
    let f = by_method("PUT");
    assert_eq!(f.body_text(), "n=1&name=Ada%20L");
    assert_eq!(
        f.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let t = by_method("PATCH");
    assert_eq!(t.body_text(), "plain");
    assert_eq!(t.header("content-type"), Some("text/csv"));
    let log = ledger(&out);
    assert_eq!(
        events(&log, "ToolOutput", "out")[0]["output"],
        r#"{"a":[1,"two"],"b":null}|n=1&name=Ada%20L|text/csv"#
    );
}

#[test]
fn an_unexpected_status_fails_the_node_with_the_response_recorded() {
    let server = FakeServer::start(|req| {
        if req.path == "/gone" {
            Reply::json(404, &json!({ "error": "gone" }))
        } else {
            Reply::text("ok")
        }
    });
    let yaml = workflow(&format!(
        "  - id: missing
    tool: http
    with: {{ url: \"{0}\" }}
  - id: tolerated
    tool: http
    with: {{ url: \"{0}\", expect_status: [200, \"4xx\"] }}
",
        server.url("/gone")
    ));
    let out = run(&yaml, &[]).code(1);
    let log = ledger(&out);
    let end = &events(&log, "End", "missing")[0];
    assert_eq!(end["status"], "failed");
    assert_eq!(
        end["error"], "status 404, expected 2xx (`expect_status`)",
        "{end}"
    );
    let output = &events(&log, "ToolOutput", "missing")[0]["output"];
    assert_eq!(output["json"]["error"], "gone");
    assert_eq!(events(&log, "End", "tolerated")[0]["status"], "succeeded");
}

/// `127.0.0.1` and `localhost` are the same server and two hosts: a redirect from one to the
/// other, with only the first in `hosts`, is refused before it is followed.
#[test]
fn a_redirect_to_a_host_outside_hosts_is_denied_and_recorded() {
    let server = FakeServer::start(|req| match req.path.as_str() {
        "/start" => Reply::redirect(302, "/hop"),
        _ => Reply::text("secret"),
    });
    let hop = server.url_on("localhost", "/other");
    let server2 = FakeServer::start(move |_| Reply::redirect(302, &hop));
    let yaml = format!(
        "version: 1
name: web
policy: {{ preset: restrictive, allow: [net], hosts: [\"127.0.0.1\"] }}
nodes:
  - id: same
    tool: http
    with: {{ url: \"{}\" }}
  - id: away
    tool: http
    with: {{ url: \"{}\" }}
",
        server.url("/start"),
        server2.url("/")
    );
    let out = run(&yaml, &[]).code(1);
    let log = ledger(&out);
    let same = &events(&log, "ToolOutput", "same")[0]["output"];
    assert_eq!(same["redirects"][0]["location"], server.url("/hop"));
    assert_eq!(same["final_url"], server.url("/hop"));
    let end = &events(&log, "End", "away")[0];
    let error = end["error"].as_str().unwrap();
    assert!(error.starts_with("HOST_NOT_PERMITTED: "), "{error}");
    assert!(
        error.contains(&server.url_on("localhost", "/other")),
        "{error}"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "the denied hop was not requested"
    );
}

/// Credentials are dropped when a redirect leaves the origin, and a credential's value is
/// never recorded: the value below is not in `secrets`, and reaches the tool through an
/// input, as a workflow must give one (a value written in the workflow is refused: see
/// `credentials_written_in_the_workflow_are_refused`).
#[test]
fn credentials_are_dropped_across_hosts_and_never_recorded_in_the_call() {
    let server = FakeServer::start(|req| match req.path.as_str() {
        "/start" => Reply::redirect(307, "/same"),
        _ => Reply::text("ok").header("Set-Cookie", "sid=server-cookie-456"),
    });
    let away = server.url_on("localhost", "/away");
    let first = FakeServer::start(move |_| Reply::redirect(302, &away));
    let yaml = format!(
        "version: 1
name: web
inputs:
  token: none
policy: {{ preset: restrictive, allow: [net], hosts: [\"127.0.0.1\", localhost] }}
nodes:
  - id: here
    tool: http
    with:
      url: \"{}\"
      headers: {{ Authorization: \"Bearer {{{{ inputs.token }}}}\", X-Api-Key: \"{{{{ inputs.token }}}}\", X-Keep: kept }}
  - id: away
    tool: http
    with:
      url: \"{}\"
      headers: {{ Authorization: \"Bearer {{{{ inputs.token }}}}\", X-Keep: kept }}
",
        server.url("/start"),
        first.url("/")
    );
    let out = run(&yaml, &["--input", "token=literal-credential-123"]).code(0);
    let seen = server.requests();
    let at = |path: &str| seen.iter().find(|r| r.path == path).unwrap().clone();
    assert_eq!(
        at("/start").header("authorization"),
        Some("Bearer literal-credential-123")
    );
    assert_eq!(
        at("/same").header("x-api-key"),
        Some("literal-credential-123"),
        "same origin: kept"
    );
    let away = at("/away");
    assert_eq!(away.header("authorization"), None, "another host: dropped");
    assert_eq!(away.header("x-keep"), Some("kept"));
    let log = ledger(&out);
    for node in ["here", "away"] {
        let start = &events(&log, "Start", node)[0];
        assert_eq!(start["input"]["headers"]["Authorization"], "[REDACTED]");
        let output = &events(&log, "ToolOutput", node)[0]["output"];
        assert_eq!(output["headers"]["set-cookie"], "[REDACTED]");
    }
    let calls: String = log
        .iter()
        .filter(|e| e["event"] != "RunStart")
        .map(Value::to_string)
        .collect();
    assert!(!calls.contains("literal-credential-123"), "{calls}");
    assert!(!calls.contains("server-cookie-456"), "{calls}");
}

#[test]
fn credentials_written_in_the_workflow_are_refused() {
    let yaml = workflow(
        "  - id: get
    tool: http
    with:
      url: \"http://127.0.0.1:1/\"
      headers: { Authorization: \"Bearer written-here\" }
",
    );
    let out = run(&yaml, &[]).code(2);
    assert!(
        out.stderr
            .contains("`headers` gives `Authorization` a value written in the workflow"),
        "{}",
        out.stderr
    );
    assert!(!out.dir.path().join("rec.jsonl").exists());
}

#[test]
fn a_body_past_the_cap_keeps_its_size_and_sha256() {
    let big = "x".repeat(300_000);
    let served = big.clone();
    let server = FakeServer::start(move |_| Reply::text(&served));
    let yaml = workflow(&format!(
        "  - id: big
    tool: http
    with: {{ url: \"{}\", max_response_bytes: 1000 }}
",
        server.url("/")
    ));
    let out = run(&yaml, &[]).code(0);
    let log = ledger(&out);
    let output = &events(&log, "ToolOutput", "big")[0]["output"];
    assert_eq!(output["body"].as_str().unwrap().len(), 1000);
    assert_eq!(output["body_bytes"], 300_000);
    use sha2::Digest;
    assert_eq!(
        output["body_sha256"],
        hex::encode(sha2::Sha256::digest(big.as_bytes()))
    );
    assert!(
        ledger_text(&out).len() < 20_000,
        "the body was recorded whole"
    );
}

#[test]
fn a_slow_server_times_out_with_a_clear_error() {
    let server = FakeServer::start(|_| Reply::text("late").delay(Duration::from_secs(5)));
    let yaml = workflow(&format!(
        "  - id: slow
    tool: http
    with: {{ url: \"{}\", timeout: 300ms }}
",
        server.url("/")
    ));
    let out = run(&yaml, &[]).code(1);
    let log = ledger(&out);
    assert_eq!(
        events(&log, "End", "slow")[0]["error"],
        format!("request to `{}` timed out after 300ms", server.url("/"))
    );
}

#[test]
fn tls_is_trusted_with_a_ca_bundle_and_refused_without() {
    if !crate::common::require_program("openssl") {
        return;
    }
    let ca = TestCa::new();
    let server = FakeServer::start_tls(&ca, |_| Reply::json(200, &json!({ "tls": true })));
    let t = Test::new();
    std::fs::copy(ca.ca_pem(), t.path().join("ca.pem")).unwrap();
    let yaml = workflow(&format!(
        "  - id: trusted
    tool: http
    with: {{ url: \"{0}\", ca_bundle: ca.pem }}
  - id: untrusted
    tool: http
    with: {{ url: \"{0}\" }}
",
        server.url_on("localhost", "/")
    ));
    let out = t
        .workflow(&yaml)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .args(["run", "wf.yaml", "--ledger", "rec.jsonl"])
        .run()
        .code(1);
    let log = ledger(&out);
    let trusted = &events(&log, "ToolOutput", "trusted")[0]["output"];
    assert_eq!(trusted["json"], json!({ "tls": true }));
    let error = events(&log, "End", "untrusted")[0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );
}

#[test]
fn http_without_the_net_capability_is_refused_before_the_run() {
    let out = run(
        "version: 1
name: web
policy: { preset: no_network }
nodes:
  - id: get
    tool: http
    with: { url: \"http://127.0.0.1:1/\" }
",
        &[],
    )
    .code(3);
    assert!(out.stderr.contains("net"), "{}", out.stderr);
    assert!(!out.dir.path().join("rec.jsonl").exists());
}

#[test]
fn a_url_outside_hosts_is_denied_without_a_connection() {
    let server = FakeServer::start(|_| Reply::text("no"));
    let out = run(
        &format!(
            "version: 1
name: web
inputs:
  key: none
policy: {{ preset: restrictive, allow: [net], hosts: [api.example.com] }}
nodes:
  - id: get
    tool: http
    with: {{ url: \"{}?api_key={{{{ inputs.key }}}}\" }}
",
            server.url("/")
        ),
        &["--input", "key=key-in-the-url-77"],
    )
    .code(3);
    let log = ledger(&out);
    let deny = &events(&log, "PolicyDeny", "get")[0];
    assert_eq!(deny["reason"], "HOST_NOT_PERMITTED");
    assert_eq!(
        deny["detail"],
        format!(
            "host of `{}?api_key=[REDACTED]` is not permitted",
            server.url("/")
        )
    );
    assert_eq!(
        events(&log, "Start", "get")[0]["input"]["url"],
        format!("{}?api_key=[REDACTED]", server.url("/"))
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn bad_values_are_refused_at_validation_with_their_location() {
    let yaml = workflow(
        "  - id: get
    tool: http
    with:
      url: \"http://127.0.0.1:1/\"
      expect_status: 700
      follow_redirects: 11
  - id: two_bodies
    tool: http
    with: { url: \"http://127.0.0.1:1/\", json: {}, body: x }
",
    );
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    for needle in [
        "`expect_status` must be a status",
        "`follow_redirects` must be true, false or a count from 0 to 10",
        "takes only one of `json`, `body`, `form`",
        "wf.yaml:9:22",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
}

/// Replay answers every call from the recording: with the server gone, `--check` and
/// `--against` open no connection; a changed request is a divergence that shows the change.
#[test]
fn replay_opens_no_connection_and_a_changed_request_diverges() {
    let server = FakeServer::start(echo);
    let yaml = workflow(&format!(
        "  - id: post
    tool: http
    with: {{ method: POST, url: \"{}\", json: {{ n: 1 }} }}
",
        server.url("/a")
    ));
    let out = run(&yaml, &[]).code(0);
    let dir = out.dir.path().to_path_buf();
    let before = server.connections();
    assert_eq!(before, 1);
    let replay = |args: &[&str]| Test::new().args(args).run_in(&dir);
    replay(&["replay", "rec.jsonl", "--check"])
        .code(0)
        .stdout_contains("replay matches");
    replay(&["replay", "rec.jsonl", "--against", "wf.yaml"])
        .code(0)
        .stdout_contains("no divergence");
    std::fs::write(
        dir.join("changed.yaml"),
        yaml.replace("json: { n: 1 }", "json: { n: 2 }"),
    )
    .unwrap();
    let changed = replay(&["replay", "rec.jsonl", "--against", "changed.yaml"]).code(1);
    assert!(
        changed
            .stdout
            .contains("node `post`: the rendered input differs"),
        "{}",
        changed.stdout
    );
    assert!(
        changed
            .stdout
            .contains(r#"asked input:    {"json":{"n":2}"#),
        "{}",
        changed.stdout
    );
    assert_eq!(server.connections(), before, "replay opened a connection");
    drop(server);
    replay(&["replay", "rec.jsonl", "--check"]).code(0);
}

/// `for_each` fan-out of `n` calls to `url`, one per item.
fn fan_out(url: &str, n: usize, network: &str) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!(
        "version: 1
name: fan
policy: {{ preset: restrictive, allow: [net], hosts: [\"127.0.0.1\"] }}
{network}nodes:
  - id: call
    for_each: [{}]
    tool: http
    with: {{ url: \"{url}?i={{{{ item }}}}\" }}
",
        items.join(", ")
    )
}

/// Network calls do not wait for the `--jobs` workers: at `--jobs 1` the server sees several
/// requests at once.
#[test]
fn network_calls_run_together_at_one_job() {
    let server = FakeServer::start(|_| Reply::text("ok"));
    server.hold_until(4);
    let out = run(&fan_out(&server.url("/"), 4, ""), &["--jobs", "1"]).code(0);
    drop(out);
    assert!(
        server.max_in_flight() >= 2,
        "at most {} at once",
        server.max_in_flight()
    );
}

/// `network.per_host` holds calls back: with a limit of 1, the server never sees two at
/// once (each request waits for a partner that never comes, then is answered).
#[test]
fn a_per_host_limit_of_one_sends_one_at_a_time() {
    let server = FakeServer::start(|_| Reply::text("ok"));
    server.hold_until(2);
    let network = "network: { per_host: { 127.0.0.1: 1 } }\n";
    run(&fan_out(&server.url("/"), 2, network), &[]).code(0);
    assert_eq!(server.max_in_flight(), 1);
    assert_eq!(server.requests().len(), 2);

    let server = FakeServer::start(|_| Reply::text("ok"));
    server.hold_until(2);
    run(&fan_out(&server.url("/"), 2, ""), &["--net-jobs", "1"]).code(0);
    assert_eq!(server.max_in_flight(), 1, "--net-jobs 1");
}

/// The ledger is the same whatever the lanes' sizes, with responses that arrive in another
/// order than they were asked for.
#[test]
fn the_ledger_is_the_same_at_any_lane_size() {
    let server = FakeServer::start(|req| {
        let i: u64 = req.path.rsplit('=').next().unwrap().parse().unwrap();
        Reply::json(200, &json!({ "i": i })).delay(Duration::from_millis((7 - i % 8) * 15))
    });
    let yaml = fan_out(&server.url("/"), 16, "");
    let ledgers: Vec<String> = [
        &["--jobs", "1", "--net-jobs", "1"][..],
        &["--jobs", "8", "--net-jobs", "64"][..],
        &["--jobs", "2", "--net-jobs", "3"][..],
    ]
    .iter()
    .map(|args| ledger_text(&run(&yaml, args).code(0)))
    .collect();
    assert_eq!(ledgers[0], ledgers[1]);
    assert_eq!(ledgers[0], ledgers[2]);
    assert_eq!(server.requests().len(), 48);
}

#[test]
fn network_limits_are_validated() {
    let yaml = "version: 1
name: web
network:
  max_concurrent: 0
  per_host: { \"api.example.com:443\": 1, ok.example.com: -1, fine.example.com: 2 }
  burst: 3
nodes:
  - id: a
    tool: noop
";
    let out = Test::new()
        .workflow(yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    for needle in [
        "a limit of 0 would let no call run",
        "`api.example.com:443` is not a host name",
        "expected a non-negative integer, found -1",
        "burst",
        "wf.yaml:4:19",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    Test::new()
        .workflow(&yaml.replace("  burst: 3\n", "").replace(
            "max_concurrent: 0\n  per_host: { \"api.example.com:443\": 1, ok.example.com: -1, fine.example.com: 2 }",
            "max_concurrent: 4\n  per_host: { API.example.com: 1 }",
        ))
        .args(["validate", "wf.yaml"])
        .run()
        .code(0);
}
