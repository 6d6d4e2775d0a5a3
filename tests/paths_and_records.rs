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
