//! `kairos validate`: one test per diagnostic, on its code, message and line:column.

use crate::common::{Test, diagnostics, single};

const HEAD: &str = "version: 1\nname: t\n";

/// A workflow with the standard two-line head; the nodes start on line 4.
fn wf(nodes: &str) -> String {
    format!("{HEAD}nodes:\n{nodes}")
}

#[test]
fn yaml_syntax_error_points_at_the_bracket() {
    let d = single(
        &wf("  - id: a\n    tool: [noop\n"),
        "yaml_syntax",
        5,
        11,
        "unclosed bracket",
    );
    assert!(d.message.starts_with("invalid YAML"));
}

#[test]
fn yaml_syntax_error_in_block_mapping() {
    single(
        "version: 1\nname: t\n nodes: []\n",
        "yaml_syntax",
        3,
        7,
        "invalid YAML",
    );
}

#[test]
fn unknown_key_suggests_the_close_one() {
    let d = single(
        &wf("  - id: a\n    tool: noop\n    neds: [a]\n"),
        "unknown_key",
        6,
        5,
        "unknown key `neds` in node",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `needs`?"));
}

#[test]
fn unknown_top_level_key_lists_the_known_ones() {
    let d = single(
        &format!("{HEAD}colour: red\nnodes:\n  - id: a\n    tool: noop\n"),
        "unknown_key",
        3,
        1,
        "`colour`",
    );
    assert!(d.help.unwrap().contains("known keys: version, name"));
}

#[test]
fn unknown_with_key_of_a_tool() {
    let diags = diagnostics(&wf("  - id: a\n    tool: echo\n    with: { mesage: hi }\n"));
    let found: Vec<_> = diags
        .iter()
        .map(|d| (d.code.as_str(), d.line, d.column))
        .collect();
    assert_eq!(
        found,
        [
            ("kairos::missing_key", 6, 11),
            ("kairos::unknown_key", 6, 13)
        ]
    );
    assert!(
        diags[1]
            .message
            .contains("unknown key `mesage` in `with` of tool `echo`")
    );
    assert_eq!(diags[1].help.as_deref(), Some("did you mean `message`?"));
}

/// The diagnostic is where the key is repeated (as rustc reports a redefinition), with the
/// first occurrence as a secondary label, in the text and in `--format json`.
#[test]
fn duplicate_key_names_both_places() {
    let out = Test::new()
        .workflow("version: 1\nname: a\nname: b\nnodes:\n  - id: x\n    tool: noop\n")
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    out.stderr_contains("duplicate key `name`")
        .stderr_contains("[wf.yaml:3:1]")
        .stderr_contains("first defined here")
        .stderr_contains("defined again here");
    let d = single(
        "version: 1\nname: a\nname: b\nnodes:\n  - id: x\n    tool: noop\n",
        "duplicate_key",
        3,
        1,
        "`name`",
    );
    assert_eq!(
        d.labels,
        [
            (3, 1, "defined again here".to_string(), true),
            (2, 1, "first defined here".to_string(), false)
        ]
    );
}

#[test]
fn duplicate_key_inside_with() {
    let d = single(
        &wf("  - id: a\n    tool: echo\n    with:\n      message: a\n      message: b\n"),
        "duplicate_key",
        8,
        7,
        "`message`",
    );
    assert_eq!(d.labels[1], (7, 7, "first defined here".to_string(), false));
}

#[test]
fn missing_required_top_level_key() {
    single(
        "version: 1\nnodes:\n  - id: a\n    tool: noop\n",
        "missing_key",
        1,
        1,
        "missing required key `name` in workflow",
    );
}

#[test]
fn missing_node_id() {
    single(&wf("  - tool: noop\n"), "missing_key", 4, 5, "`id` in node");
}

#[test]
fn missing_required_tool_argument() {
    let d = single(
        &wf("  - id: a\n    tool: file.write\n    with: { path: x }\n"),
        "missing_key",
        6,
        11,
        "`content`",
    );
    assert!(d.help.unwrap().contains("text to write"));
}

#[test]
fn tool_needs_one_of_its_arguments() {
    single(
        &wf("  - id: a\n    tool: random\n    with: { int: [1, 2], float: [0, 1] }\n"),
        "invalid_value",
        6,
        11,
        "takes only one of `int`, `float`, `choice`, `shuffle`",
    );
    single(
        &wf("  - id: a\n    tool: shell\n"),
        "invalid_value",
        5,
        11,
        "tool `shell` needs one of `run`, `args`",
    );
}

#[test]
fn node_without_a_kind() {
    let d = single(
        &wf("  - id: lonely\n    needs: []\n"),
        "no_node_kind",
        4,
        9,
        "node `lonely` has no kind",
    );
    assert!(d.help.unwrap().contains("exactly one of"));
}

#[test]
fn node_with_two_kinds() {
    single(
        &wf("  - id: a\n    tool: noop\n    run: echo hi\n"),
        "two_node_kinds",
        5,
        5,
        "two kinds: `tool` and `run`",
    );
}

#[test]
fn duplicate_node_id() {
    let d = single(
        &wf("  - id: a\n    tool: noop\n  - id: a\n    tool: noop\n"),
        "duplicate_id",
        6,
        9,
        "duplicate node id `a`",
    );
    assert_eq!(
        d.labels,
        [
            (6, 9, "defined again here".to_string(), true),
            (4, 9, "first defined here".to_string(), false)
        ]
    );
}

/// Diagnostics with several places carry every label in `--format json`.
#[test]
fn json_diagnostics_carry_every_label() {
    let d = single(
        &wf(
            "  - id: a\n    needs: [c]\n    tool: noop\n  - id: b\n    needs: [a]\n    tool: noop\n  - id: c\n    needs: [b]\n    tool: noop\n",
        ),
        "cycle",
        4,
        9,
        "a -> c -> b -> a",
    );
    let places: Vec<(u64, u64, bool)> = d.labels.iter().map(|l| (l.0, l.1, l.3)).collect();
    assert_eq!(places, [(4, 9, true), (10, 9, false), (7, 9, false)]);
    let d = single(
        &wf("  - id: a\n    run: echo\n    tool: noop\n"),
        "two_node_kinds",
        5,
        5,
        "two kinds",
    );
    assert_eq!(d.labels.len(), 2);
    assert_eq!(d.labels[1].2, "`tool` here");
}

#[test]
fn invalid_node_id() {
    single(
        &wf("  - id: 3rd\n    tool: noop\n"),
        "invalid_id",
        4,
        9,
        "invalid node id `3rd`",
    );
    single(
        &wf("  - id: \"a.b\"\n    tool: noop\n"),
        "invalid_id",
        4,
        9,
        "`a.b`",
    );
}

#[test]
fn invalid_workflow_name() {
    single(
        "version: 1\nname: My Flow\nnodes:\n  - id: a\n    tool: noop\n",
        "invalid_name",
        2,
        7,
        "`My Flow`",
    );
}

#[test]
fn unknown_node_in_each_role() {
    let d = single(
        &wf("  - id: a\n    tool: noop\n  - id: b\n    needs: [aa]\n    tool: noop\n"),
        "unknown_node",
        7,
        13,
        "`needs` names unknown node `aa`",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `a`?"));
    single(
        &wf("  - id: a\n    branch: { if: \"true\", then: [nope] }\n"),
        "unknown_node",
        5,
        34,
        "`then` names unknown node `nope`",
    );
    single(
        &wf(
            "  - id: a\n    branch: { if: \"true\", then: [a2], else: [gone] }\n  - id: a2\n    tool: noop\n",
        ),
        "unknown_node",
        5,
        46,
        "`else` names unknown node `gone`",
    );
    single(
        &wf("  - id: a\n    fork: [x]\n"),
        "unknown_node",
        5,
        12,
        "`fork` names unknown node `x`",
    );
    single(
        &wf("  - id: a\n    join: [y]\n"),
        "unknown_node",
        5,
        12,
        "`join` names unknown node `y`",
    );
}

#[test]
fn cycle_names_every_node_on_it() {
    let yaml = wf(
        "  - id: a\n    needs: [c]\n    tool: noop\n  - id: b\n    needs: [a]\n    tool: noop\n  - id: c\n    needs: [b]\n    tool: noop\n",
    );
    single(&yaml, "cycle", 4, 9, "dependency cycle: a -> c -> b -> a");
    Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("`b` waits for `a`");
}

#[test]
fn cycle_through_a_template_reference() {
    single(
        &wf(
            "  - id: a\n    needs: [b]\n    tool: noop\n  - id: b\n    tool: echo\n    with: { message: \"{{ nodes.a.output }}\" }\n",
        ),
        "cycle",
        4,
        9,
        "a -> b -> a",
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    single(
        &wf("  - id: me\n    needs: [me]\n    tool: noop\n"),
        "cycle",
        4,
        9,
        "me -> me",
    );
}

#[test]
fn node_in_both_arms_of_a_branch() {
    single(
        &wf(
            "  - id: b\n    branch: { if: \"true\", then: [x], else: [x] }\n  - id: x\n    tool: noop\n",
        ),
        "node_in_both_arms",
        5,
        34,
        "node `x` is in both arms of branch `b`",
    );
}

#[test]
fn expression_that_does_not_compile() {
    single(
        &wf("  - id: a\n    tool: noop\n    if: \"1 +\"\n"),
        "expression_syntax",
        6,
        12,
        "invalid expression",
    );
}

#[test]
fn bare_expression_written_as_template_gets_help() {
    let d = single(
        &wf("  - id: a\n    tool: noop\n    if: \"{{ true }}\"\n"),
        "expression_syntax",
        6,
        18,
        "invalid expression",
    );
    assert!(d.help.unwrap().contains("without `{{ }}`"));
}

#[test]
fn template_that_does_not_compile() {
    single(
        &wf("  - id: a\n    tool: echo\n    with: { message: \"hi {{ name \" }\n"),
        "expression_syntax",
        6,
        29,
        "invalid template",
    );
}

#[test]
fn reference_to_unknown_node_in_a_template() {
    let d = single(
        &wf(
            "  - id: first\n    tool: noop\n  - id: b\n    tool: echo\n    with: { message: \"{{ nodes.frist.output }}\" }\n",
        ),
        "unknown_reference",
        8,
        32,
        "unknown node `frist`",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `first`?"));
}

#[test]
fn reference_to_unknown_node_by_subscript() {
    single(
        &wf(
            "  - id: a\n    tool: echo\n    with: { message: \"{{ nodes['no-such'].output }}\" }\n",
        ),
        "unknown_reference",
        6,
        33,
        "unknown node `no-such`",
    );
}

/// minijinja's variable tracking skips the value a slice is taken of; kairos reads the
/// reference as written, so an unknown node there is found before anything runs.
#[test]
fn reference_to_unknown_node_in_a_sliced_value() {
    single(
        &wf(
            "  - id: a\n    tool: noop\n  - id: b\n    tool: echo\n    with: { message: \"{{ (nodes.nope.output | list)[:2] }}\" }\n",
        ),
        "unknown_reference",
        8,
        33,
        "unknown node `nope`",
    );
}

#[test]
fn nodes_without_a_literal_name_in_a_sliced_value() {
    single(
        &wf("  - id: a\n    tool: echo\n    with: { message: \"{{ (nodes | list)[:1] }}\" }\n"),
        "invalid_value",
        6,
        27,
        "`nodes` is used without naming a node",
    );
}

#[test]
fn reference_to_unknown_input() {
    single(
        "version: 1\nname: t\ninputs:\n  since: { default: v1 }\nnodes:\n  - id: a\n    run: git log {{ inputs.snice }}\n",
        "unknown_reference",
        7,
        21,
        "unknown input `snice`",
    );
}

#[test]
fn reference_to_unknown_node_field() {
    let d = single(
        &wf(
            "  - id: a\n    tool: noop\n  - id: b\n    tool: echo\n    with: { message: \"{{ nodes.a.stdot }}\" }\n",
        ),
        "unknown_reference",
        8,
        34,
        "unknown node field `stdot`",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `stdout`?"));
}

#[test]
fn loop_variables_only_in_for_each_nodes() {
    single(
        &wf("  - id: a\n    tool: echo\n    with: { message: \"{{ item }}\" }\n"),
        "unknown_reference",
        6,
        26,
        "unknown variable `item`",
    );
}

#[test]
fn unknown_tool() {
    let d = single(
        &wf("  - id: a\n    tool: shel\n"),
        "unknown_tool",
        5,
        11,
        "unknown tool `shel`",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `shell`?"));
}

#[test]
fn invalid_durations() {
    single(
        &wf("  - id: a\n    tool: noop\n    timeout: 5x\n"),
        "invalid_duration",
        6,
        14,
        "`5x`",
    );
    single(
        &wf("  - id: a\n    tool: noop\n    timeout: 60\n"),
        "invalid_duration",
        6,
        14,
        "`60`",
    );
    single(
        &wf("  - id: a\n    tool: sleep\n    with: { duration: 1.5s }\n"),
        "invalid_duration",
        6,
        23,
        "`1.5s`",
    );
    single(
        &format!(
            "{HEAD}defaults:\n  retry: {{ attempts: 2, backoff: soon }}\nnodes:\n  - id: a\n    tool: noop\n"
        ),
        "invalid_duration",
        4,
        34,
        "`soon`",
    );
}

#[test]
fn valid_durations_are_accepted() {
    Test::new()
        .workflow(&format!("{HEAD}defaults:\n  timeout: 1h\n  retry: {{ attempts: 3, backoff: 500ms, max_backoff: 2m }}\nnodes:\n  - id: a\n    tool: sleep\n    with: {{ duration: 60s }}\n"))
        .args(["validate", "wf.yaml"])
        .run()
        .code(0);
}

#[test]
fn unknown_capability() {
    let d = single(
        &format!("{HEAD}policy:\n  allow: [network]\nnodes:\n  - id: a\n    tool: noop\n"),
        "unknown_capability",
        4,
        11,
        "unknown capability `network`",
    );
    assert!(d.help.unwrap().contains("net"));
}

#[test]
fn unknown_preset() {
    let d = single(
        &format!("{HEAD}policy:\n  preset: readonly\nnodes:\n  - id: a\n    tool: noop\n"),
        "unknown_preset",
        4,
        11,
        "`readonly`",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `read_only`?"));
}

#[test]
fn invalid_regex() {
    single(
        &format!("{HEAD}policy:\n  redact: [\"(unclosed\"]\nnodes:\n  - id: a\n    tool: noop\n"),
        "invalid_regex",
        4,
        12,
        "invalid regex",
    );
}

#[test]
fn invalid_glob() {
    single(
        &format!(
            "{HEAD}policy:\n  paths: {{ read: [\"data/[a-\"] }}\nnodes:\n  - id: a\n    tool: noop\n"
        ),
        "invalid_glob",
        4,
        19,
        "invalid glob `data/[a-`",
    );
}

#[test]
fn node_level_policy_is_checked_too() {
    single(
        &wf("  - id: a\n    tool: noop\n    policy: { deny: [fs_wrte] }\n"),
        "unknown_capability",
        6,
        22,
        "`fs_wrte`",
    );
}

#[test]
fn max_calls_names_a_tool_or_node() {
    single(
        &format!("{HEAD}policy:\n  max_calls: {{ shel: 2 }}\nnodes:\n  - id: a\n    tool: noop\n"),
        "unknown_node",
        4,
        16,
        "`max_calls` names unknown node `shel`",
    );
}

#[test]
fn unsupported_version() {
    let d = single(
        "version: 2\nname: t\nnodes:\n  - id: a\n    tool: noop\n",
        "unsupported_version",
        1,
        10,
        "version 2",
    );
    assert!(d.help.unwrap().contains("version: 1"));
}

#[test]
fn wrong_type() {
    single(
        &wf("  - id: a\n    tool: noop\n    continue_on_error: sometimes\n"),
        "wrong_type",
        6,
        24,
        "expected `true` or `false`, found a string",
    );
    single(
        "version: 1\nname: t\nnodes: {}\n",
        "wrong_type",
        3,
        8,
        "expected a list of nodes",
    );
}

#[test]
fn every_error_in_a_file_is_reported() {
    let yaml = wf(
        "  - id: a\n    tool: shel\n  - id: b\n    needs: [zz]\n    tool: noop\n  - id: c\n    tool: noop\n    timeout: soon\n",
    );
    let diags = diagnostics(&yaml);
    let found: Vec<(&str, u64, u64)> = diags
        .iter()
        .map(|d| (d.code.as_str(), d.line, d.column))
        .collect();
    assert_eq!(
        found,
        [
            ("kairos::unknown_tool", 5, 11),
            ("kairos::unknown_node", 7, 13),
            ("kairos::invalid_duration", 11, 14)
        ]
    );
    Test::new()
        .workflow(&yaml)
        .args(["validate", "wf.yaml"])
        .run()
        .code(2)
        .stderr_contains("[wf.yaml:5:11]")
        .stderr_contains("[wf.yaml:7:13]")
        .stderr_contains("[wf.yaml:11:14]")
        .stderr_contains("wf.yaml is not a valid workflow (3 errors)");
}

#[test]
fn graph_errors_are_reported_alongside_other_errors() {
    let yaml =
        wf("  - id: a\n    needs: [b]\n    tool: noop\n  - id: b\n    needs: [a]\n    tool: nop\n");
    let codes: Vec<String> = diagnostics(&yaml).into_iter().map(|d| d.code).collect();
    assert_eq!(codes, ["kairos::cycle", "kairos::unknown_tool"]);
}

#[test]
fn valid_file_gets_a_one_line_summary() {
    Test::new()
        .workflow(&format!("{HEAD}policy: {{ allow: [fs_read, subprocess] }}\nnodes:\n  - id: a\n    run: echo hi\n  - id: b\n    needs: [a]\n    tool: file.read\n    with: {{ path: x }}\n"))
        .args(["validate", "wf.yaml"])
        .run()
        .code(0)
        .stdout_contains("ok wf.yaml: 2 nodes, 1 edges, needs fs_read, subprocess; granted fs_read, subprocess");
}

#[test]
fn json_output_for_valid_and_invalid_files() {
    let out = Test::new()
        .file("good.yaml", &wf("  - id: a\n    tool: noop\n"))
        .file("bad.yaml", &wf("  - id: a\n    tool: nop\n"))
        .args([
            "validate",
            "--format",
            "json",
            "good.yaml",
            "bad.yaml",
            "missing.yaml",
        ])
        .run()
        .code(2);
    let doc = out.json();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["files"][0]["valid"], true);
    assert_eq!(doc["files"][0]["nodes"], 1);
    let bad = &doc["files"][1]["diagnostics"][0];
    assert_eq!(bad["code"], "kairos::unknown_tool");
    assert_eq!(
        (bad["line"].as_u64(), bad["column"].as_u64()),
        (Some(5), Some(11))
    );
    assert_eq!(bad["help"], "did you mean `noop`?");
    assert_eq!(doc["files"][2]["diagnostics"][0]["code"], "kairos::io");
}

#[test]
fn missing_file_is_bad_input() {
    Test::new()
        .args(["validate", "nope.yaml"])
        .run()
        .code(2)
        .stderr_contains("cannot read nope.yaml");
}

#[test]
fn not_utf8_is_bad_input() {
    let t = Test::new();
    std::fs::write(t.path().join("bin.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    t.args(["validate", "bin.yaml"])
        .run()
        .code(2)
        .stderr_contains("not UTF-8");
}

#[test]
fn empty_file_is_reported() {
    let diags = diagnostics("");
    assert!(!diags.is_empty());
    assert_eq!((diags[0].line, diags[0].column), (1, 1));
}

#[test]
fn bad_invocation_exits_2() {
    Test::new().args(["validate"]).run().code(2);
    Test::new().args(["frobnicate"]).run().code(2);
    Test::new()
        .args(["--help"])
        .run()
        .code(0)
        .stdout_contains("validate");
}

#[test]
fn diagnostics_render_as_snippets() {
    let out = Test::new()
        .workflow(&wf("  - id: a\n    tool: noop\n    neds: [a]\n"))
        .args(["validate", "wf.yaml"])
        .run()
        .code(2);
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn boolean_conditions_are_expressions() {
    Test::new()
        .workflow(&wf("  - id: a\n    tool: noop\n    if: false\n  - id: b\n    branch: { if: true, then: [a] }\n"))
        .args(["validate", "wf.yaml"])
        .run()
        .code(0);
}

#[test]
fn a_single_id_where_a_list_is_expected_gets_help() {
    let d = single(
        &wf("  - id: a\n    tool: noop\n  - id: b\n    needs: a\n    tool: noop\n"),
        "wrong_type",
        7,
        12,
        "expected a list of strings",
    );
    assert_eq!(
        d.help.as_deref(),
        Some("write a list, even of one item: `[a]`")
    );
}

#[test]
fn a_timeout_of_zero_is_refused_wherever_it_is_written() {
    let head = "version: 1\nname: t\npolicy: { preset: permissive }\n";
    // Each case: the line after `head` that holds the value, the value, and the message.
    let cases = [
        (
            "defaults: { timeout: 0s }\nnodes:\n  - { id: a, tool: noop }",
            "0s",
            "a timeout of 0",
        ),
        (
            "nodes:\n  - id: a\n    tool: noop\n    timeout: 0ms",
            "0ms",
            "a timeout of 0",
        ),
        (
            "nodes:\n  - { id: a, tool: http, with: { url: 'http://a.test/', timeout: 0s } }",
            "0s",
            "`timeout` is 0",
        ),
        (
            "nodes:\n  - { id: a, tool: llm, with: { model: m, prompt: hi, timeout: 0m } }",
            "0m",
            "a timeout of 0",
        ),
    ];
    for (body, value, message) in cases {
        let yaml = format!("{head}{body}\n");
        let (n, line) = yaml
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(&format!("timeout: {value}")))
            .unwrap();
        let column = line.find(&format!("timeout: {value}")).unwrap() + "timeout: ".len() + 1;
        crate::common::single(&yaml, "invalid_value", n as u64 + 1, column as u64, message);
    }
}

#[test]
fn for_each_on_a_node_that_is_decided_once_is_refused() {
    for kind in [
        "approval: { prompt: 'go {{ item }}?' }",
        "branch: { if: 'true', then: [b] }",
    ] {
        let yaml = format!(
            "version: 1\nname: f\nnodes:\n  - id: a\n    for_each: [1, 2]\n    {kind}\n  - {{ id: b, tool: noop }}\n"
        );
        crate::common::single(&yaml, "invalid_value", 5, 5, "`for_each` is for task nodes");
    }
}
