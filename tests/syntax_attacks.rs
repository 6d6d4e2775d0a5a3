//! Hostile workflow and policy files: whatever the text, `validate` and `run` answer with
//! bounded, terminal-safe diagnostics and exit 2, never a panic, an abort or a flood.
//! Fixtures: `tests/fixtures/attacks/syntax/`; large inputs are generated here.

use crate::common::{Test, root};

fn fixture(name: &str) -> String {
    let path = root().join("tests/fixtures/attacks/syntax").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What must never reach a terminal from a diagnostic.
const RAW: &[char] = &[
    '\x1b', '\r', '\x08', '\x07', '\u{9b}', '\u{202c}', '\u{202e}', '\u{2067}', '\u{2069}',
];

#[track_caller]
fn assert_no_raw_controls(text: &str) {
    if let Some(c) = text.chars().find(|c| RAW.contains(c)) {
        panic!("raw {c:?} printed:\n{}", text.escape_debug());
    }
}

/// No Rust internals on stderr.
#[track_caller]
fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
}

#[test]
fn diagnostic_past_column_65535_is_rendered_without_panic() {
    let pad = "x".repeat(70_000);
    let yaml = format!(
        "version: 1\nname: t\nnodes: [{{id: a, tool: echo, with: {{message: \"{pad}\"}}, bogus: 1}}]\n"
    );
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("unknown key `bogus` in node")
        .stderr_contains("[wf.yaml:3:70050]");
    assert_no_panic(&out.stderr);
    assert!(out.stderr.len() < 4_000, "{} bytes", out.stderr.len());
    // The snippet is a window around the key, cut with an ellipsis.
    assert!(out.stderr.contains("…xxxx"), "{}", out.stderr);
    assert!(out.stderr.contains("bogus: 1}]"), "{}", out.stderr);
}

fn six_thousand_unknown_keys() -> String {
    let keys: Vec<String> = (0..6000).map(|i| format!("k{i}: 1")).collect();
    format!(
        "version: 1\nname: t\nnodes: [{{id: a, tool: noop, {}}}]\n",
        keys.join(", ")
    )
}

#[test]
fn six_thousand_unknown_keys_on_one_line_print_a_bounded_report() {
    let yaml = six_thousand_unknown_keys();
    assert!(yaml.len() > 58_000);
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("unknown key `k19` in node")
        .stderr_contains("... and 5,980 more errors")
        .stderr_contains("error: wf.yaml is not a valid workflow (6000 errors)");
    assert!(!out.stderr.contains("`k20`"), "the 21st is not printed");
    assert!(out.stderr.len() < 100_000, "{} bytes", out.stderr.len());
    // `run` prints the same bounded report.
    let out = Test::new()
        .workflow(&yaml)
        .args(["run", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("... and 5,980 more errors");
    assert!(out.stderr.len() < 100_000, "{} bytes", out.stderr.len());
}

#[test]
fn validate_json_lists_at_most_a_thousand_diagnostics_and_counts_the_rest() {
    let out = Test::new()
        .workflow(&six_thousand_unknown_keys())
        .args(["validate", "--format", "json", "wf.yaml"])
        .run()
        .code(2);
    let json = out.json();
    let file = &json["files"][0];
    assert_eq!(json["valid"], false);
    assert_eq!(file["diagnostics"].as_array().unwrap().len(), 1000);
    assert_eq!(file["diagnostics_omitted"], 5000);
    // Columns are exact, counted in characters.
    assert_eq!(
        file["diagnostics"][1]["message"],
        "unknown key `k1` in node"
    );
    assert_eq!(file["diagnostics"][1]["column"], 36);
}

#[test]
fn diagnostics_of_far_apart_labels_do_not_print_the_lines_between() {
    // A duplicate key 50,000 lines after the first: both places, not the whole file.
    let mut yaml = String::from("version: 1\nname: t\nnodes: [{id: a, tool: noop}]\noutputs:\n");
    for i in 0..50_000 {
        yaml.push_str(&format!("  o{i}: x\n"));
    }
    yaml.push_str("version: 1\n");
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("duplicate key `version`")
        .stderr_contains("[wf.yaml:50005:1]");
    assert!(out.stderr.len() < 4_000, "{} bytes", out.stderr.len());
}

#[test]
fn control_characters_in_keys_are_escaped_in_diagnostics() {
    let out = Test::new()
        .workflow(&fixture("escaped-keys.yaml"))
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains(r"unknown key `\x1b]0;pwned\x07` in node")
        .stderr_contains(r"unknown key `\x1b[2J\x1b[H` in node")
        .stderr_contains(r"unknown key `over\rwrite` in node")
        .stderr_contains(r"unknown key `back\x08space` in node")
        .stderr_contains(r"unknown key `\u{202e}evil` in node")
        .stderr_contains(r"unknown key `csi\u{9b}2J` in node")
        .stderr_contains(r"invalid node id `b\x1b[31m`");
    assert_no_raw_controls(&out.stderr);
}

#[test]
fn raw_bidi_controls_in_the_file_are_escaped_in_message_and_snippet() {
    let out = Test::new()
        .workflow(&fixture("raw-bidi.yaml"))
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains(r"unknown key `\u{202e}evil\u{202c}` in node")
        .stderr_contains(r"│     \u{202e}evil\u{202c}: 1")
        .stderr_contains(r"unknown key `\u{2067}x\u{2069}` in node");
    assert_no_raw_controls(&out.stderr);
}

#[test]
fn raw_escape_sequence_in_the_file_is_escaped_in_the_snippet() {
    let out = Test::new()
        .workflow(&fixture("raw-escape.yaml"))
        .args(["run", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("invalid YAML")
        .stderr_contains(r#"message: "x\x1b]0;pwned\x07\x1b[2J" }"#);
    assert_no_raw_controls(&out.stderr);
}

#[test]
fn control_characters_in_an_organisation_policy_are_escaped() {
    let out = Test::new()
        .workflow("version: 1\nname: t\nnodes: [{id: a, tool: noop}]\n")
        .file("org.yaml", "preset: restrictive\n\"\\e]0;x\\a\": 1\n")
        .args(["validate", "--policy", "org.yaml", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains(r"unknown key `\x1b]0;x\x07` in policy");
    assert_no_raw_controls(&out.stderr);
}

/// A workflow whose policy has `glob` in `paths.read` and in `hosts`.
fn with_glob(glob: &str) -> String {
    format!(
        "version: 1\nname: t\npolicy:\n  paths: {{ read: ['{glob}'] }}\n  hosts: ['{glob}']\nnodes: [{{id: a, tool: noop}}]\n"
    )
}

#[test]
fn path_glob_nested_100000_deep_is_refused_not_a_stack_overflow() {
    let glob = format!("{}a{}", "{".repeat(100_000), "}".repeat(100_000));
    for command in ["validate", "run"] {
        let out = Test::new()
            .workflow(&with_glob(&glob))
            .args([command, "wf.yaml"])
            .run()
            .code(2)
            .stderr_contains("kairos::invalid_glob")
            .stderr_contains("longer than 4096 bytes")
            .stderr_contains("[wf.yaml:4:19]")
            .stderr_contains("[wf.yaml:5:11]");
        assert_no_panic(&out.stderr);
        assert!(out.stderr.len() < 10_000, "{} bytes", out.stderr.len());
    }
}

#[test]
fn path_glob_nested_past_the_limit_is_refused() {
    let glob = format!("{}a{}", "{".repeat(1000), "}".repeat(1000));
    let out = Test::new()
        .workflow(&with_glob(&glob))
        .args(["run", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("nested 1000 deep; at most 8 levels are allowed");
    assert_no_panic(&out.stderr);
    let glob = format!("{}a{}", "{".repeat(8), "}".repeat(8));
    Test::new()
        .workflow(&with_glob(&glob))
        .args(["run", "wf.yaml"])
        .run()
        .code(0);
}

#[test]
fn path_glob_with_300000_stars_is_refused() {
    let out = Test::new()
        .workflow(&with_glob(&"*".repeat(300_000)))
        .args(["run", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("invalid glob `****")
        .stderr_contains("longer than 4096 bytes (300000 bytes)");
    assert_no_panic(&out.stderr);
}

#[test]
fn path_glob_with_too_many_wildcards_is_refused() {
    // Within the length limit, past the wildcard limit: the regex globset made did not
    // compile and it panicked.
    let glob = "*?".repeat(2000);
    let out = Test::new()
        .workflow(&with_glob(&glob))
        .args(["run", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("4000 wildcards (`*`, `?`, `[`, `{`); at most 256 are allowed");
    assert_no_panic(&out.stderr);
}

#[test]
fn glob_limits_hold_in_an_organisation_policy() {
    let glob = format!("{}a{}", "{".repeat(100_000), "}".repeat(100_000));
    let out = Test::new()
        .workflow("version: 1\nname: t\nnodes: [{id: a, tool: noop}]\n")
        .file("org.yaml", &format!("hosts: ['{glob}']\n"))
        .args(["run", "--policy", "org.yaml", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("kairos::invalid_glob")
        .stderr_contains("[org.yaml:1:9]");
    assert_no_panic(&out.stderr);
}

#[test]
fn deeply_nested_yaml_is_a_syntax_error() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let yaml = format!(
            "version: 1\nname: t\nnodes: []\nx: {}1{}\n",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let out = Test::new()
            .workflow(&yaml)
            .args(["validate", "wf.yaml"])
            .run()
            .code(2)
            .stderr_contains("kairos::yaml_syntax");
        assert_no_panic(&out.stderr);
        assert!(out.stderr.len() < 4_000, "{} bytes", out.stderr.len());
    }
}

#[test]
fn alias_bomb_is_a_syntax_error() {
    let mut yaml =
        String::from("version: 1\nname: t\nnodes: []\na: &a [x, x, x, x, x, x, x, x, x]\n");
    for (p, c) in ('a'..='i').zip('b'..='j') {
        yaml.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{p}"); 9].join(", ")
        ));
    }
    let out = Test::new()
        .workflow(&yaml)
        .args(["run", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("invalid YAML: budget breached");
    assert!(!out.stderr.contains("(used"), "{}", out.stderr);
}

#[test]
fn nul_byte_and_invalid_utf8_are_bad_input() {
    let t = Test::new().file(
        "nul.yaml",
        "version: 1\nname: t\nnodes: [{id: a\0b, tool: noop}]\n",
    );
    let out = t.args(["validate", "nul.yaml"]).run().code(2);
    assert!(out.stderr.contains(r"a\x00b, tool: noop"), "{}", out.stderr);
    assert!(!out.stderr.contains('\0'));
    let t = Test::new();
    std::fs::write(t.path().join("bad.yaml"), b"version: 1\nname: t\nx: \xff\n").unwrap();
    t.args(["run", "bad.yaml"])
        .run()
        .code(2)
        .stderr_contains("not UTF-8");
}

#[test]
fn byte_order_mark_is_accepted_and_columns_still_count_from_it() {
    Test::new()
        .workflow("\u{feff}version: 1\nname: t\nnodes: [{id: a, tool: noop}]\n")
        .args(["validate", "wf.yaml"])
        .run()
        .code(0);
    let out = Test::new()
        .workflow("\u{feff}version: 1\nnme: t\nnodes: [{id: a, tool: noop}]\n")
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("[wf.yaml:2:1]");
    assert!(out.stderr.contains(r"\u{feff}version: 1"), "{}", out.stderr);
}

#[test]
fn control_characters_in_a_file_name_are_escaped() {
    let name = "\x1b]0;pwned\x07.yaml";
    let out = Test::new()
        .args(["validate", name])
        .run()
        .code(2)
        .stderr_contains(r"cannot read \x1b]0;pwned\x07.yaml");
    assert_no_raw_controls(&out.stderr);
    let out = Test::new()
        .file(
            name,
            "version: 1\nname: t\nnodes: [{id: a, tool: noop, bad: 1}]\n",
        )
        .args(["validate", name])
        .run()
        .code(2)
        .stderr_contains(r"[\x1b]0;pwned\x07.yaml:3:29]")
        .stderr_contains(r"error: \x1b]0;pwned\x07.yaml is not a valid workflow (1 error)");
    assert_no_raw_controls(&out.stderr);
    let out = Test::new()
        .file(name, "version: 1\nname: t\nnodes: [{id: a, tool: noop}]\n")
        .args(["validate", name])
        .run()
        .code(0)
        .stdout_contains(r"ok \x1b]0;pwned\x07.yaml: 1 nodes");
    assert_no_raw_controls(&out.stdout);
    let out = Test::new()
        .workflow("version: 1\nname: t\nnodes: [{id: a, tool: noop}]\n")
        .args(["run", "--policy", name, "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains(r"cannot read \x1b]0;pwned\x07.yaml");
    assert_no_raw_controls(&out.stderr);
}

#[test]
fn template_failure_past_column_65535_is_reported_without_panic() {
    let pad = "x".repeat(70_000);
    let yaml = format!(
        "version: 1\nname: t\nnodes: [{{id: a, tool: echo, with: {{message: \"{pad}{{{{ 1 / 0 }}}}\"}}}}]\n"
    );
    let out = Test::new()
        .workflow(&yaml)
        .args(["run", "wf.yaml"])
        .run()
        .code(1)
        .stderr_contains("kairos::template_failed")
        .stderr_contains("[wf.yaml:3:70049]");
    assert_no_panic(&out.stderr);
    assert!(!out.stderr.contains("internal error"), "{}", out.stderr);
    assert!(out.stderr.len() < 4_000, "{} bytes", out.stderr.len());
}

#[test]
fn many_template_failures_print_a_bounded_report() {
    let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let yaml = format!(
        "version: 1\nname: t\nnodes:\n  - id: a\n    for_each: [{}]\n    tool: echo\n    with: {{ message: \"{{{{ item / 0 }}}}\" }}\n    continue_on_error: true\n",
        items.join(", ")
    );
    let out = Test::new()
        .workflow(&yaml)
        .args(["run", "wf.yaml"])
        .run()
        .stderr_contains("kairos::template_failed")
        .stderr_contains("... and 80 more errors");
    assert_eq!(out.stderr.matches("kairos::template_failed").count(), 20);
}

#[test]
fn several_yaml_documents_are_one_plain_error() {
    Test::new()
        .workflow("version: 1\nname: t\nnodes: []\n---\nversion: 2\n")
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("the file holds more than one YAML document (`---`); kairos reads one")
        .stderr_contains("[wf.yaml:5:1]");
}

#[test]
fn collection_keys_are_wrong_type_not_empty_duplicates() {
    let out = Test::new()
        .workflow(
            "version: 1\nname: t\nnodes: [{id: a, tool: noop}]\n? [a, b]\n: 1\n? {c: d}\n: 2\n",
        )
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("expected a key of workflow, found a list")
        .stderr_contains("expected a key of workflow, found a mapping");
    assert!(!out.stderr.contains("duplicate key"), "{}", out.stderr);
    assert!(!out.stderr.contains("unknown key ``"), "{}", out.stderr);
}

#[test]
fn many_policy_violations_are_capped_like_other_diagnostics() {
    let mut yaml = String::from("version: 1\nname: t\npolicy: { preset: restrictive }\nnodes:\n");
    for i in 0..1200 {
        yaml.push_str(&format!("  - {{id: n{i}, run: echo {i}}}\n"));
    }
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(3)
        .stderr_contains("kairos::capability_not_granted")
        .stderr_contains("... and 1,180 more errors");
    assert!(out.stderr.len() < 100_000, "{} bytes", out.stderr.len());
    let out = Test::new()
        .workflow(&yaml)
        .args(["validate", "--format", "json", "wf.yaml"])
        .run()
        .code(3);
    let file = &out.json()["files"][0];
    assert_eq!(file["diagnostics"].as_array().unwrap().len(), 1000);
    assert_eq!(file["diagnostics_omitted"], 200);
}

/// A panic nobody foresaw prints one line asking for a bug report and exits 2: no backtrace
/// (even with `RUST_BACKTRACE` set), and not the panic's message, which may quote input.
#[test]
fn an_internal_error_is_one_line_asking_for_a_bug_report() {
    let out = Test::new()
        .env("KAIROS_DEBUG_PANIC", "quoting sk-live-secret-value")
        .env("RUST_BACKTRACE", "1")
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("kairos: internal error at src/main.rs:"),
        "{}",
        out.stderr
    );
    assert!(lines[0].contains("please report it"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("sk-live-secret-value"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("backtrace"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}
