//! Secrets never leave a run in clear, whichever field carries them: the ledger, the
//! terminal, `--format json`, replay and diff all see the same redaction (`docs/policy.md`).

use crate::common::{Output, Test, require_program};

/// A secret with characters every encoding writes differently.
const SECRET: &str = "Sx-9f2/7Qa+b7c 6d5e";

/// Unpadded standard base64, as `base64` and every library write it before the padding.
fn base64(bytes: &[u8]) -> String {
    use base64ct::{Base64Unpadded, Encoding};
    Base64Unpadded::encode_string(bytes)
}

/// Every form of `secret` that must not appear: raw, JSON-escaped (short and full `\u`
/// forms), URL-encoded (upper and lower case, `%20` and `+` for space), and base64 at each
/// alignment (the characters that depend on the secret alone, less one at each end).
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    let mut forms = vec![secret.to_string(), json[1..json.len() - 1].to_string()];
    let full_unicode: String = secret
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    forms.push(full_unicode);
    let mut upper = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            upper.push(b as char);
        } else {
            upper.push_str(&format!("%{b:02X}"));
        }
    }
    forms.push(upper.clone());
    forms.push(upper.to_lowercase());
    forms.push(upper.replace("%20", "+"));
    for shift in 0..3 {
        let mut data = vec![b'x'; shift];
        data.extend_from_slice(secret.as_bytes());
        let enc = base64(&data);
        let start = (shift * 8).div_ceil(6) + 1;
        let end = data.len() * 8 / 6 - 1;
        forms.push(enc[start..end].to_string());
    }
    forms
}

/// Asserts that no form of `secret` is anywhere in `text`.
#[track_caller]
pub fn assert_no_trace(what: &str, text: &str, secret: &str) {
    for form in forms(secret) {
        assert!(
            !text.contains(&form),
            "{what} holds the secret as {form:?}:\n{text}"
        );
    }
    // Case-insensitive too, for the URL and hex-like forms.
    assert!(
        !text.to_lowercase().contains(&secret.to_lowercase()),
        "{what} holds the secret (any case):\n{text}"
    );
}

/// Checks the run's ledger, stdout and stderr, then `replay` (table and JSON) and `diff` of
/// the ledger with itself.
#[track_caller]
fn assert_run_leaves_no_trace(out: &Output) {
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).expect("a ledger");
    assert_no_trace("the ledger", &ledger, SECRET);
    assert_no_trace("stdout", &out.stdout, SECRET);
    assert_no_trace("stderr", &out.stderr, SECRET);
    for args in [
        vec!["replay", "l.jsonl"],
        vec!["replay", "l.jsonl", "--format", "json"],
        vec!["diff", "l.jsonl", "l.jsonl"],
        vec!["diff", "l.jsonl", "l.jsonl", "--format", "json"],
    ] {
        let again = Test::new()
            .args(&args)
            .env("KAIROS_TEST_SECRET", SECRET)
            .run_in(out.dir.path());
        assert_no_trace(&args.join(" "), &again.stdout, SECRET);
        assert_no_trace(&args.join(" "), &again.stderr, SECRET);
    }
}

/// A workflow where the secret (from `inputs.s`) reaches a path and a command the policy
/// denies, a `for_each` error, and a workflow output.
const THROUGH_INPUT: &str = r#"version: 1
name: leaky
inputs:
  s: { description: a value that happens to be secret }
policy:
  preset: restrictive
  allow: [fs_read, subprocess]
  commands: [echo]
  paths: { read: ["./allowed/**"] }
  secrets: [KAIROS_TEST_SECRET]
  enforcement: audit
nodes:
  - id: read
    tool: file.read
    with: { path: "/nowhere/{{ inputs.s }}" }
    continue_on_error: true
  - id: cmd
    run: "{{ inputs.s }} --flag"
    continue_on_error: true
  - id: each
    for_each: inputs.s
    tool: echo
    with: { message: "{{ item }}" }
    continue_on_error: true
  - id: say
    tool: echo
    with: { message: "ok" }
outputs:
  o: "{{ inputs.s }}"
"#;

fn run_through_input(format: &str) -> Output {
    Test::new()
        .workflow(THROUGH_INPUT)
        .env("KAIROS_TEST_SECRET", SECRET)
        .args([
            "run", "wf.yaml", "--ledger", "l.jsonl", "--format", format, "-i",
        ])
        .args([format!("s={SECRET}")])
        .run()
}

#[test]
fn secret_from_an_input_is_masked_in_every_field() {
    for format in ["table", "json"] {
        let out = run_through_input(format);
        let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
        // The secret did reach each field (masked): the test exercises what it means to.
        for event in ["\"PolicyDeny\"", "\"Error\"", "\"RunEnd\""] {
            let line = ledger
                .lines()
                .find(|l| l.contains(event) && l.contains("[REDACTED:KAIROS_TEST_SECRET]"));
            assert!(line.is_some(), "no masked {event} line:\n{ledger}");
        }
        assert_run_leaves_no_trace(&out);
    }
}

#[test]
fn secret_in_an_approval_prompt_is_masked() {
    for (extra, code) in [(None, 4), (Some("--reject"), 1)] {
        let t = Test::new()
            .workflow(&format!(
                "version: 1\nname: a\npolicy: {{ preset: permissive, secrets: [KAIROS_TEST_SECRET] }}\nnodes:\n  - id: gate\n    approval: {{ prompt: \"publish {SECRET} and {{{{ inputs.s }}}}?\" }}\ninputs:\n  s: x\n"
            ))
            .env("KAIROS_TEST_SECRET", SECRET)
            .args(["run", "wf.yaml", "--ledger", "l.jsonl", "-i"])
            .args([format!("s={SECRET}")]);
        let t = match extra {
            Some(flag) => t.args([flag, "gate"]),
            None => t,
        };
        let out = t.run();
        assert_eq!(out.code, code, "{}", out.stderr);
        let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
        assert!(
            ledger.contains("\"ApprovalRequested\"")
                && ledger.contains("[REDACTED:KAIROS_TEST_SECRET]"),
            "{ledger}"
        );
        assert_run_leaves_no_trace(&out);
    }
}

#[test]
fn secret_written_in_the_workflow_is_masked_in_every_field() {
    // The secret is a literal of the workflow: a branch condition, a denied path and
    // command, a `for_each` that is not a list, an approval prompt and an output.
    let wf = format!(
        r#"version: 1
name: literal
policy:
  preset: restrictive
  allow: [fs_read, subprocess]
  commands: [echo]
  paths: {{ read: ["./allowed/**"] }}
  secrets: [KAIROS_TEST_SECRET]
  enforcement: audit
nodes:
  - id: read
    tool: file.read
    with: {{ path: "/nowhere/{SECRET}" }}
    continue_on_error: true
  - id: cmd
    run: "'{SECRET}' --flag"
    continue_on_error: true
  - id: each
    for_each: "'{SECRET}'"
    tool: echo
    with: {{ message: "{{{{ item }}}}" }}
    continue_on_error: true
  - id: pick
    branch:
      if: "'{SECRET}' == 'x'"
      then: [a]
      else: [b]
  - id: a
    tool: echo
    with: {{ message: a }}
  - id: b
    tool: echo
    with: {{ message: b }}
outputs:
  o: "{SECRET}"
"#
    );
    for format in ["table", "json"] {
        let out = Test::new()
            .workflow(&wf)
            .env("KAIROS_TEST_SECRET", SECRET)
            .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", format])
            .run();
        let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
        for event in [
            "\"PolicyDeny\"",
            "\"Error\"",
            "\"BranchDecision\"",
            "\"RunEnd\"",
        ] {
            let line = ledger
                .lines()
                .find(|l| l.contains(event) && l.contains("[REDACTED:KAIROS_TEST_SECRET]"));
            assert!(line.is_some(), "no masked {event} line:\n{ledger}");
        }
        assert_run_leaves_no_trace(&out);
    }
}

#[test]
fn redaction_counts_of_tool_results_are_not_counted_twice() {
    if !require_program("printenv") {
        return;
    }
    let out = Test::new()
        .workflow("version: 1\nname: c\npolicy: { preset: permissive, secrets: [KAIROS_TEST_SECRET] }\nnodes:\n  - id: a\n    run: printenv KAIROS_TEST_SECRET\n")
        .env("KAIROS_TEST_SECRET", SECRET)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl"])
        .run()
        .code(0);
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    let counts: Vec<String> = ledger
        .lines()
        .filter(|l| l.contains("\"ContentRedacted\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}={}", v["field"].as_str().unwrap(), v["count"])
        })
        .collect();
    assert_eq!(counts, ["output=1", "stdout=1"]);
    assert_run_leaves_no_trace(&out);
}

/// Runs a workflow whose shell nodes print `secret` in Python's URL and JSON encodings and in
/// base64 as the `base64` tool wraps it; nothing of it may reach the ledger or the terminal.
fn encodings_leave_no_trace(secret: &str) {
    let script = std::fs::read_to_string(
        crate::common::root().join("tests/fixtures/attacks/secrets/encode.py"),
    )
    .unwrap();
    // 50 bytes before the secret put the 76-column break of `base64` inside its encoding.
    let wf = "version: 1\nname: enc\npolicy: { preset: permissive, secrets: [KAIROS_TEST_SECRET] }\nnodes:\n  - id: python\n    run: python3 encode.py\n  - id: b64\n    run: \"{ printf '%050d' 0; printf %s \\\"$KAIROS_TEST_SECRET\\\"; } | base64; printf %s \\\"$KAIROS_TEST_SECRET\\\" | base64 -w 7\"\n  - id: reuse\n    tool: echo\n    with: { message: \"{{ nodes.python.stdout }} {{ nodes.b64.stdout }}\" }\noutputs:\n  all: \"{{ nodes.python.output }} {{ nodes.b64.output }}\"\n";
    for format in ["table", "json"] {
        let out = Test::new()
            .workflow(wf)
            .file("encode.py", &script)
            .env("KAIROS_TEST_SECRET", secret)
            .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", format])
            .run()
            .code(0);
        let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
        let stdout_of = |node: &str| -> String {
            let line = ledger
                .lines()
                .find(|l| {
                    l.contains("\"ToolOutput\"") && l.contains(&format!("\"node\":\"{node}\""))
                })
                .unwrap_or_else(|| panic!("no ToolOutput of {node}:\n{ledger}"));
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["stdout"].as_str().unwrap().to_string()
        };
        // Every line the tools printed was masked whole.
        let python = stdout_of("python");
        assert_eq!(python.lines().count(), 8, "{python}");
        for line in python.lines() {
            assert_eq!(
                line.trim_matches('"'),
                "[REDACTED:KAIROS_TEST_SECRET]",
                "{python}"
            );
        }
        let b64 = stdout_of("b64");
        assert!(
            b64.matches("[REDACTED:KAIROS_TEST_SECRET]").count() >= 2,
            "{b64}"
        );
        for text in [&ledger, &out.stdout, &out.stderr] {
            assert_no_trace("run", text, secret);
            // Base64 with its line breaks taken out, raw or JSON-escaped.
            assert_no_trace(
                "unwrapped",
                &text.replace("\\n", "").replace('\n', ""),
                secret,
            );
        }
    }
}

#[test]
fn secret_in_python_url_and_json_encodings_and_wrapped_base64_is_masked() {
    if !require_program("python3") || !require_program("base64") {
        return;
    }
    encodings_leave_no_trace(SECRET);
    encodings_leave_no_trace("pässwörd/42 x+y\"q");
}

#[test]
fn a_pattern_matching_a_prefix_of_a_secret_leaves_nothing_of_it() {
    let secret = "tok-abc-def-123456";
    let out = Test::new()
        .workflow("version: 1\nname: p\npolicy: { preset: permissive, secrets: [KAIROS_TEST_SECRET], redact: [\"tok-[a-z]{3}\", \"key=\\\\w+\"] }\nnodes:\n  - id: a\n    run: echo \"$KAIROS_TEST_SECRET and key=$KAIROS_TEST_SECRET\"\n")
        .env("KAIROS_TEST_SECRET", secret)
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--format", "json"])
        .run()
        .code(0);
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    for text in [&ledger, &out.stdout, &out.stderr] {
        assert!(!text.contains("def-123456"), "{text}");
        assert!(!text.contains("123456"), "{text}");
    }
    assert!(
        ledger.contains("[REDACTED:KAIROS_TEST_SECRET] and "),
        "{ledger}"
    );
}

/// A secret given through an input reaches tool inputs (masked there, counted by
/// `ContentRedacted`); the recording holds the input masked, so a replay renders the masked
/// value, and takes the recorded count for a call whose input it renders the same: the replay
/// matches, with the secret set or not. A call whose input changed counts afresh.
#[test]
fn replay_matches_a_run_whose_secret_came_through_an_input() {
    let yaml = "version: 1\nname: r\ninputs:\n  token: { description: t }\npolicy:\n  preset: permissive\n  secrets: [KAIROS_TEST_SECRET]\nnodes:\n  - id: a\n    tool: echo\n    with: { message: \"{{ inputs.token }} and {{ inputs.token }}\" }\n  - id: b\n    run: \"echo {{ inputs.token }}\"\n";
    let out = Test::new()
        .workflow(yaml)
        .env("KAIROS_TEST_SECRET", SECRET)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "-i"])
        .args([format!("token={SECRET}")])
        .run()
        .code(0);
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(
        ledger.contains("\"node\":\"a\",\"field\":\"input\",\"count\":2"),
        "{ledger}"
    );
    for env in [Some(SECRET), None] {
        let mut t = Test::new().file("l.jsonl", &ledger).file("wf.yaml", yaml);
        if let Some(secret) = env {
            t = t.env("KAIROS_TEST_SECRET", secret);
        }
        t.args(["replay", "l.jsonl", "--check"]).run().code(0);
    }
    // A changed workflow renders a different input: the divergence is the call, not the count.
    let changed = yaml.replace("and {{ inputs.token }}", "or {{ inputs.token }}");
    Test::new()
        .file("l.jsonl", &ledger)
        .file("wf2.yaml", &changed)
        .args(["replay", "l.jsonl", "--against", "wf2.yaml"])
        .run()
        .code(1)
        .stdout_contains("`a`");
}
