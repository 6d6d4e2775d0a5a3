//! The trust boundary of files and records: `paths.read` / `paths.write` hold against symbolic
//! links (dangling ones too) and `..`; a resumed or replayed run re-checks the approvals its
//! ledger recorded; a ledger line with a duplicate key is refused by every reader.

use crate::common::{Test, root};
use crate::run::read_ledger;
use serde_json::Value;
use std::os::unix::fs::symlink;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/fixtures/attacks").join(name)).unwrap()
}

/// A test directory with `data/` (allowed), `data/sub/`, `outside/` (not allowed) and
/// `secret.txt` beside them, and the workflow `files/NAME.yaml` as `wf.yaml`.
fn tree(workflow: &str) -> Test {
    Test::new()
        .workflow(&fixture(&format!("files/{workflow}.yaml")))
        .file("data/inside.txt", "inside")
        .file("data/sub/.keep", "")
        .file("outside/.keep", "")
        .file("secret.txt", "secret")
}

fn link(t: &Test, target: &str, at: &str) {
    symlink(target, t.path().join(at)).unwrap();
}

/// Runs the fixture with `--input path=PATH`; gives the exit code and the node's events.
fn run_on(t: Test, path: &str) -> (i32, Vec<Value>, crate::common::Output) {
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "--input"])
        .args([format!("path={path}")])
        .run();
    let events = read_ledger(&out.dir.path().join("l.jsonl"));
    (out.code, events, out)
}

fn denied(events: &[Value]) -> Option<&str> {
    events
        .iter()
        .find(|e| e["event"] == "PolicyDeny")
        .and_then(|e| e["reason"].as_str())
}

fn exists(out: &crate::common::Output, path: &str) -> bool {
    out.dir.path().join(path).exists()
}

#[test]
fn dangling_symlink_write_is_denied() {
    let t = tree("write");
    link(&t, "../outside/created.txt", "data/dangling");
    let (code, events, out) = run_on(t, "data/dangling");
    assert_eq!(code, 3);
    assert_eq!(denied(&events), Some("PATH_NOT_PERMITTED"));
    assert!(
        !exists(&out, "outside/created.txt"),
        "written through the link"
    );
}

#[test]
fn dangling_symlink_into_a_missing_directory_write_is_denied() {
    let t = tree("write");
    link(&t, "../outside/new/dir/created.txt", "data/dangling");
    let (code, events, out) = run_on(t, "data/dangling");
    assert_eq!((code, denied(&events)), (3, Some("PATH_NOT_PERMITTED")));
    assert!(!exists(&out, "outside/new"));
}

#[test]
fn dangling_symlink_that_stays_inside_creates_its_target() {
    let t = tree("write");
    link(&t, "sub/later.txt", "data/later");
    let (code, events, out) = run_on(t, "data/later");
    assert_eq!((code, denied(&events)), (0, None));
    assert_eq!(
        std::fs::read_to_string(out.dir.path().join("data/sub/later.txt")).unwrap(),
        "written"
    );
}

#[test]
fn symlink_to_outside_read_is_denied() {
    let t = tree("read");
    link(&t, "../secret.txt", "data/leak");
    let (code, events, _) = run_on(t, "data/leak");
    assert_eq!((code, denied(&events)), (3, Some("PATH_NOT_PERMITTED")));
    assert!(
        !events.iter().any(|e| e["output"] == "secret"),
        "the secret reached the ledger"
    );
}

#[test]
fn symlink_that_stays_inside_is_read() {
    let t = tree("read");
    link(&t, "inside.txt", "data/alias");
    let (code, events, _) = run_on(t, "data/alias");
    assert_eq!(code, 0);
    assert!(events.iter().any(|e| e["output"] == "inside"));
}

#[test]
fn write_through_a_directory_symlink_inside_is_allowed() {
    let t = tree("write");
    link(&t, "sub", "data/alias");
    let (code, _, out) = run_on(t, "data/alias/f.txt");
    assert_eq!(code, 0);
    assert!(exists(&out, "data/sub/f.txt"));
}

#[test]
fn write_through_a_directory_symlink_to_outside_is_denied() {
    let t = tree("write");
    link(&t, "../outside", "data/out");
    let (code, events, out) = run_on(t, "data/out/new/f.txt");
    assert_eq!((code, denied(&events)), (3, Some("PATH_NOT_PERMITTED")));
    assert!(!exists(&out, "outside/new"));
}

#[test]
fn dot_dot_components_cannot_leave_the_permitted_paths() {
    let t = tree("write");
    let (code, events, out) = run_on(t, "data/sub/../../outside/f.txt");
    assert_eq!((code, denied(&events)), (3, Some("PATH_NOT_PERMITTED")));
    assert!(!exists(&out, "outside/f.txt"));
    // `..` through a link goes back from where the link leads, as the kernel does.
    let t = tree("read");
    link(&t, "../outside", "data/out");
    std::fs::write(t.path().join("data/x.txt"), "x").unwrap();
    let (code, events, _) = run_on(t, "data/out/../data/x.txt");
    assert_eq!((code, denied(&events)), (0, None));
}

#[test]
fn dot_dot_that_stays_inside_is_allowed() {
    let t = tree("write");
    let (code, _, out) = run_on(t, "data/sub/../y.txt");
    assert_eq!(code, 0);
    assert!(exists(&out, "data/y.txt"));
}

#[test]
fn new_files_and_directories_in_allowed_paths_are_created() {
    let t = tree("write");
    let (code, _, out) = run_on(t, "data/new/dir/f.txt");
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(out.dir.path().join("data/new/dir/f.txt")).unwrap(),
        "written"
    );
}

/// The denial names the path as written: the ledger holds nothing of where the run happened.
#[test]
fn a_denied_link_is_named_as_written() {
    let t = tree("write");
    link(&t, "../outside/created.txt", "data/dangling");
    let (_, events, out) = run_on(t, "data/dangling");
    let detail = events
        .iter()
        .find(|e| e["event"] == "PolicyDeny")
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(
        detail,
        "writing `data/dangling` resolves outside the permitted paths"
    );
    let text = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    let dir = out.dir.path().canonicalize().unwrap();
    assert!(!text.contains(&dir.display().to_string()));
}

/// A ledger of `records/approval.yaml` approved by alice, cut after the approval's commit
/// (as a crash would leave it: the resumed run writes what follows) when `cut`, with
/// `"approver":"alice"` replaced by `forged` and the lines chained again.
fn forged_approval(forged: &str, cut: bool) -> Test {
    let t = Test::new().workflow(&fixture("records/approval.yaml"));
    let dir = t.path().to_path_buf();
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "full.jsonl",
            "--approve",
            "ship",
            "--approver",
            "alice",
        ])
        .run_in(&dir)
        .code(0);
    std::fs::remove_file(dir.join("shipped.txt")).unwrap();
    let full = std::fs::read_to_string(dir.join("full.jsonl")).unwrap();
    let mut lines: Vec<&str> = full.lines().collect();
    if cut {
        let end = lines
            .iter()
            .position(|l| l.contains(r#""event":"End","#) && l.contains(r#""node":"ship""#))
            .unwrap();
        lines.truncate(end + 1);
    }
    let edited = format!("{}\n", lines.join("\n")).replace(r#","approver":"alice""#, forged);
    assert_ne!(edited, full, "the approver was replaced");
    std::fs::write(dir.join("forged.jsonl"), crate::common::rechain(&edited)).unwrap();
    t
}

#[test]
fn resume_refuses_an_approval_by_an_approver_the_policy_does_not_list() {
    let t = forged_approval(r#","approver":"mallory""#, true);
    let before = std::fs::read(t.path().join("forged.jsonl")).unwrap();
    let out = t
        .args(["run", "wf.yaml", "-q", "--resume", "forged.jsonl"])
        .run()
        .code(2)
        .stderr_contains("kairos::recorded_approval")
        .stderr_contains("forged.jsonl:3: the recorded decision on `ship`")
        .stderr_contains("`mallory` may not approve: the policy allows alice, bob");
    assert!(
        !exists(&out, "shipped.txt"),
        "the forged approval let the call run"
    );
    assert_eq!(
        std::fs::read(out.dir.path().join("forged.jsonl")).unwrap(),
        before,
        "the refused ledger was changed"
    );
}

#[test]
fn resume_refuses_an_approval_without_an_approver_when_the_policy_lists_them() {
    let t = forged_approval("", true);
    let out = t
        .args(["run", "wf.yaml", "-q", "--resume", "forged.jsonl"])
        .run()
        .code(2)
        .stderr_contains("give `--approver NAME`");
    assert!(!exists(&out, "shipped.txt"));
}

#[test]
fn resume_takes_an_approval_by_a_listed_approver() {
    let t = forged_approval(r#","approver":"bob""#, true);
    let out = t
        .args(["run", "wf.yaml", "-q", "--resume", "forged.jsonl"])
        .run()
        .code(0);
    assert!(exists(&out, "shipped.txt"));
}

#[test]
fn replay_check_refuses_an_approval_by_an_approver_the_policy_does_not_list() {
    let t = forged_approval(r#","approver":"mallory""#, false);
    t.args(["replay", "forged.jsonl", "--check"])
        .run()
        .code(2)
        .stderr_contains("`mallory` may not approve");
}

/// Runs a one-node workflow; gives its directory, with the ledger `l.jsonl` and a copy in
/// which `from` is replaced by `to` in line `line` (1-based), chained again, as `dup.jsonl`.
fn duplicated(line: usize, from: &str, to: &str) -> Test {
    let t = Test::new().workflow(
        "version: 1\nname: dup\nnodes:\n  - id: a\n    tool: echo\n    with: { message: hi }\n",
    );
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .run_in(&dir)
        .code(0);
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(lines[line - 1].contains(from), "{}", lines[line - 1]);
    lines[line - 1] = lines[line - 1].replacen(from, to, 1);
    std::fs::write(
        dir.join("dup.jsonl"),
        crate::common::rechain(&format!("{}\n", lines.join("\n"))),
    )
    .unwrap();
    t
}

fn every_reader_refuses(t: Test, message: &str) {
    let dir = t.path().to_path_buf();
    for (args, code) in [
        (vec!["replay", "dup.jsonl"], 2),
        (vec!["replay", "dup.jsonl", "--check"], 2),
        (vec!["diff", "l.jsonl", "dup.jsonl"], 2),
        (vec!["verify", "dup.jsonl"], 1),
    ] {
        Test::new()
            .args(&args)
            .run_in(&dir)
            .code(code)
            .stderr_contains(message);
    }
    Test::new()
        .args(["keygen", "--out", "k"])
        .run_in(&dir)
        .code(0);
    Test::new()
        .args(["sign", "dup.jsonl", "--key", "k.key"])
        .run_in(&dir)
        .code(2)
        .stderr_contains(message);
    assert!(!dir.join("dup.jsonl.intoto.json").exists(), "signed anyway");
    drop(t);
}

#[test]
fn ledger_line_with_a_duplicate_key_is_refused_by_every_reader() {
    let t = duplicated(
        5,
        r#""status":"succeeded","counts""#,
        r#""status":"failed","status":"succeeded","counts""#,
    );
    every_reader_refuses(t, "dup.jsonl:5: duplicate key `status`");
}

#[test]
fn ledger_line_with_a_duplicate_key_in_a_nested_object_is_refused() {
    let t = duplicated(5, r#""outputs":{}"#, r#""outputs":{"x":1,"x":2}"#);
    every_reader_refuses(t, "dup.jsonl:5: duplicate key `x` in `/outputs`");
    let t = duplicated(5, r#""outputs":{}"#, r#""extra":1,"extra":2,"outputs":{}"#);
    every_reader_refuses(t, "dup.jsonl:5: duplicate key `extra`");
}

#[test]
fn resume_refuses_a_ledger_line_with_a_duplicate_key() {
    let t = Test::new().workflow(&fixture("records/approval.yaml"));
    let dir = t.path().to_path_buf();
    Test::new()
        .args(["run", "wf.yaml", "-q", "--ledger", "p.jsonl"])
        .run_in(&dir)
        .code(4);
    let text = std::fs::read_to_string(dir.join("p.jsonl")).unwrap();
    let edited = text.replacen(r#""prompt":"ship?""#, r#""prompt":"ship?","prompt":"x""#, 1);
    assert_ne!(edited, text);
    std::fs::write(dir.join("p.jsonl"), crate::common::rechain(&edited)).unwrap();
    t.args([
        "run",
        "wf.yaml",
        "-q",
        "--resume",
        "p.jsonl",
        "--approve",
        "ship",
        "--approver",
        "alice",
    ])
    .run()
    .code(2)
    .stderr_contains("p.jsonl:2: duplicate key `prompt`");
}
