//! What kairos prints for people never drives the terminal (control characters from nodes,
//! outputs, YAML keys and errors are escaped), and printing never panics: a full disk is a
//! one-line error and exit 2, a reader that went away ends the command quietly
//! (`docs/cli.md`).

use crate::common::{Output, Test, root};
use std::path::Path;
use std::process::{Command, Stdio};

fn fixture() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/attacks/terminal/escape.yaml")).unwrap()
}

/// Characters that drive a terminal (what `report::text` escapes).
fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[track_caller]
fn assert_safe(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|&c| is_unsafe(c)) {
        panic!("{what} holds {c:?}:\n{text:?}");
    }
}

/// Runs the fixture (ledger `name`), with `word` in its output.
fn run(t: Test, name: &str, word: &str) -> Output {
    t.env("KAIROS_TEST_WORD", word)
        .args(["run", "wf.yaml", "--ledger", name])
        .run()
}

#[test]
fn control_characters_are_escaped_in_the_run_summary_and_output_lines() {
    let out = run(Test::new().workflow(&fixture()), "l.jsonl", "one").code(0);
    assert_safe("stdout", &out.stdout);
    assert_safe("stderr", &out.stderr);
    // Shown, not obeyed: the escapes are visible in the table and in `output NAME:`.
    assert!(
        out.stdout.contains("\\x1b]0;pwned\\x07\\x1b[2J"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok\\rFAIL\\x08\\x08\\u{202e}txt.exe\\u{9b}m"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("output o\\x1b[31mx\\u{202e}: "),
        "{}",
        out.stdout
    );
}

#[test]
fn replay_and_diff_tables_escape_control_characters() {
    let first = run(Test::new().workflow(&fixture()), "a.jsonl", "one").code(0);
    let dir = first.dir.path();
    Test::new()
        .env("KAIROS_TEST_WORD", "two")
        .args(["run", "wf.yaml", "--ledger", "b.jsonl"])
        .run_in(dir)
        .code(0);
    for args in [
        vec!["replay", "a.jsonl"],
        vec!["diff", "a.jsonl", "b.jsonl"],
    ] {
        let out = Test::new().args(&args).run_in(dir);
        assert_safe(&args.join(" "), &out.stdout);
        assert_safe(&args.join(" "), &out.stderr);
        assert!(
            out.stdout.contains("\\x1b"),
            "{}: {}",
            args.join(" "),
            out.stdout
        );
    }
}

#[test]
fn replay_node_stays_raw_and_json_keeps_the_text() {
    let out = run(Test::new().workflow(&fixture()), "l.jsonl", "one");
    let dir = out.dir.path();
    let raw = Test::new()
        .args(["replay", "l.jsonl", "--node", "evil"])
        .run_in(dir)
        .code(0);
    assert!(
        raw.stdout.starts_with("\u{1b}]0;pwned\u{7}"),
        "{:?}",
        raw.stdout
    );
    // JSON escapes control characters itself; the value is the text the node gave.
    let out = Test::new()
        .args(["replay", "l.jsonl", "--format", "json"])
        .run_in(dir)
        .code(0);
    assert!(!out.stdout.contains('\u{1b}'), "{}", out.stdout);
    let json = out.json();
    let evil = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "evil")
        .unwrap();
    assert!(
        evil["output"]
            .as_str()
            .unwrap()
            .starts_with("\u{1b}]0;pwned\u{7}"),
        "{evil}"
    );
}

#[test]
fn an_error_quoting_a_control_character_is_escaped() {
    let out = Test::new()
        .args(["replay", "\u{1b}]0;pwned\u{7}\u{202e}.jsonl"])
        .run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_safe("stderr", &out.stderr);
    assert!(
        out.stderr.contains("\\x1b]0;pwned\\x07\\u{202e}"),
        "{}",
        out.stderr
    );
}

/// The `kairos` binary with `args`, run in `dir` with stdout going to `stdout`.
fn kairos(dir: &Path, args: &[&str], stdout: Stdio) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin!("kairos"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run kairos")
}

/// A workflow, its ledger and a key pair and signature, and every printing command on them.
fn printing_commands() -> (tempfile::TempDir, Vec<Vec<&'static str>>) {
    let out = Test::new()
        .workflow("version: 1\nname: p\nnodes:\n  - id: a\n    tool: echo\n    with: { message: hello }\noutputs:\n  o: \"{{ nodes.a.output }}\"\n")
        .args(["run", "wf.yaml", "--ledger", "l.jsonl", "--quiet"])
        .run()
        .code(0);
    let dir = out.dir;
    let commands = vec![
        vec!["run", "wf.yaml", "--ledger", "r1.jsonl"],
        vec!["run", "wf.yaml", "--ledger", "r2.jsonl", "--format", "json"],
        vec!["validate", "wf.yaml"],
        vec!["validate", "wf.yaml", "--format", "json"],
        vec!["replay", "l.jsonl"],
        vec!["replay", "l.jsonl", "--format", "json"],
        vec!["replay", "l.jsonl", "--node", "a"],
        vec!["replay", "l.jsonl", "--check"],
        vec!["diff", "l.jsonl", "l.jsonl"],
        vec!["diff", "l.jsonl", "l.jsonl", "--format", "json"],
        vec!["verify", "l.jsonl"],
        vec!["verify", "l.jsonl", "--format", "json"],
        vec!["graph", "wf.yaml"],
        vec!["keygen", "--out", "k"],
        vec!["sign", "l.jsonl", "--key", "k.key"],
    ];
    (dir, commands)
}

#[test]
fn writing_to_a_full_disk_is_one_line_and_exit_2() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full here");
        return;
    }
    let (dir, commands) = printing_commands();
    for args in commands {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = kairos(dir.path(), &args, Stdio::from(full));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", args.join(" "));
        assert_eq!(
            stderr,
            "error: cannot write the output: No space left on device (os error 28)\n",
            "{}",
            args.join(" ")
        );
    }
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let (dir, commands) = printing_commands();
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = kairos(dir.path(), &args, Stdio::from(writer));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{}: {stderr}", args.join(" "));
        assert_eq!(out.status.code(), Some(0), "{}", args.join(" "));
    }
}

#[test]
fn stdout_and_stderr_both_full_still_exit_2_without_a_panic() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full here");
        return;
    }
    let (dir, commands) = printing_commands();
    for args in commands {
        let full = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap()
        };
        let status = Command::new(assert_cmd::cargo::cargo_bin!("kairos"))
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(full()))
            .stderr(Stdio::from(full()))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{}", args.join(" "));
    }
}
