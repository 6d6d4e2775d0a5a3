//! Approvals (`docs/workflow.md`): decisions up front, pauses, who may approve.

use crate::common::Test;
use crate::run::read_ledger;
use serde_json::Value;

const TWO: &str = "version: 1
name: two
policy: { preset: permissive, approvers: [alice, bob] }
nodes:
  - id: build
    run: echo built
  - id: ship
    needs: [build]
    approval: { prompt: \"ship {{ nodes.build.output }}?\" }
  - id: announce
    needs: [build]
    approval: { prompt: announce? }
  - id: shipped
    needs: [ship]
    tool: echo
    with: { message: shipped }
  - id: independent
    tool: echo
    with: { message: unrelated work }
";

fn run(args: &[&str]) -> (i32, Vec<Value>, crate::common::Output) {
    let out = Test::new()
        .workflow(TWO)
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl"])
        .args(args)
        .run();
    let path = out.dir.path().join("l.jsonl");
    let ev = if path.exists() {
        read_ledger(&path)
    } else {
        Vec::new()
    };
    (out.code, ev, out)
}

fn kinds(ev: &[Value]) -> Vec<String> {
    ev.iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["node"].as_str().unwrap_or("")
            )
            .trim()
            .to_string()
        })
        .collect()
}

#[test]
fn without_decisions_the_run_pauses_after_everything_else() {
    let (code, ev, _) = run(&[]);
    assert_eq!(code, 4);
    let k = kinds(&ev);
    let tail = &k[k.len() - 3..];
    assert_eq!(
        tail,
        [
            "ApprovalRequested ship",
            "ApprovalRequested announce",
            "RunPaused"
        ]
    );
    assert!(
        k.contains(&"End independent".to_string()),
        "independent work ran before the pause"
    );
    assert_eq!(
        ev.last().unwrap()["pending"],
        serde_json::json!(["ship", "announce"])
    );
    assert_eq!(ev[ev.len() - 3]["prompt"], "ship built?");
}

#[test]
fn decisions_up_front_request_then_resolve() {
    let (code, ev, _) = run(&[
        "--approve",
        "ship",
        "--reject",
        "announce",
        "--approver",
        "alice",
        "--reason",
        "later",
    ]);
    assert_eq!(code, 1, "a rejection fails its node");
    let k = kinds(&ev);
    let at = k
        .iter()
        .position(|e| e == "ApprovalRequested ship")
        .unwrap();
    assert_eq!(
        k[at + 1],
        "ApprovalRequested announce",
        "both ready approvals are requested together"
    );
    assert_eq!(k[at + 2], "ApprovalResolved ship");
    let resolved: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "ApprovalResolved")
        .collect();
    assert_eq!(resolved[0]["decision"], "approved");
    assert_eq!(resolved[0]["approver"], "alice");
    assert_eq!(resolved[1]["decision"], "rejected");
    assert_eq!(resolved[1]["reason"], "later");
    let end_announce = ev
        .iter()
        .find(|e| e["event"] == "End" && e["node"] == "announce")
        .unwrap();
    assert_eq!(
        (
            end_announce["status"].as_str(),
            end_announce["error"].as_str()
        ),
        (Some("failed"), Some("rejected: later"))
    );
    assert!(
        k.contains(&"End shipped".to_string()),
        "an approval's dependents run once approved"
    );
}

#[test]
fn a_rejection_skips_dependents() {
    let (_, ev, _) = run(&[
        "--reject",
        "ship",
        "--approve",
        "announce",
        "--approver",
        "bob",
    ]);
    let skipped = ev
        .iter()
        .find(|e| e["event"] == "Skipped" && e["node"] == "shipped")
        .unwrap();
    assert_eq!(skipped["reason"], "`ship` failed");
}

#[test]
fn only_listed_approvers_decide() {
    let (code, ev, out) = run(&["--approve", "ship", "--approver", "mallory"]);
    assert_eq!(code, 2);
    assert!(ev.is_empty(), "no decision recorded, nothing run");
    assert!(
        out.stderr
            .contains("`mallory` may not approve: the policy allows alice, bob"),
        "{}",
        out.stderr
    );
    let (code, _, out) = run(&["--approve", "ship"]);
    assert_eq!(code, 2);
    assert!(out.stderr.contains("give `--approver NAME`"));
    let (code, _, out) = run(&["--approve", "build", "--approver", "alice"]);
    assert_eq!(code, 2);
    assert!(out.stderr.contains("`build` is not an approval node"));
}

#[test]
fn replay_check_reproduces_approvals() {
    let (_, _, out) = run(&[
        "--approve",
        "ship",
        "--approve",
        "announce",
        "--approver",
        "bob",
    ]);
    Test::new()
        .args(["replay", "l.jsonl", "--check"])
        .run_in(out.dir.path())
        .code(0);
}

const GATED: &str = "version: 1
name: gated
policy: { preset: permissive, require_approval: [fs_write] }
nodes:
  - id: draft
    tool: template
    with: { text: notes }
  - id: write
    needs: [draft]
    tool: file.write
    with: { path: out.txt, content: \"{{ nodes.draft.output }}\" }
";

#[test]
fn require_approval_gates_calls_that_need_a_capability() {
    let t = Test::new().workflow(GATED);
    let dir = t.path().to_path_buf();
    let paused = Test::new()
        .args(["run", "wf.yaml", "-q", "--ledger", "p.jsonl"])
        .run_in(&dir)
        .code(4);
    drop(paused);
    assert!(
        !dir.join("out.txt").exists(),
        "the call waits for its approval"
    );
    let ev = read_ledger(&dir.join("p.jsonl"));
    let req = ev
        .iter()
        .find(|e| e["event"] == "ApprovalRequested")
        .unwrap();
    assert_eq!(req["node"], "write");
    assert!(
        req["prompt"]
            .as_str()
            .unwrap()
            .contains("`file.write`, which needs fs_write")
    );
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--resume",
            "p.jsonl",
            "--approve",
            "write",
        ])
        .run_in(&dir)
        .code(0);
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "notes"
    );
    std::fs::remove_file(dir.join("out.txt")).unwrap();
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "direct.jsonl",
            "--approve",
            "write",
        ])
        .run_in(&dir)
        .code(0);
    assert_eq!(
        std::fs::read(dir.join("p.jsonl")).unwrap(),
        std::fs::read(dir.join("direct.jsonl")).unwrap()
    );
    let k = kinds(&read_ledger(&dir.join("direct.jsonl")));
    let at = k
        .iter()
        .position(|e| e == "ApprovalRequested write")
        .unwrap();
    assert_eq!(
        &k[at..at + 3],
        [
            "ApprovalRequested write",
            "ApprovalResolved write",
            "Start write"
        ]
    );
    std::fs::remove_file(dir.join("out.txt")).unwrap();
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "rejected.jsonl",
            "--reject",
            "write",
        ])
        .run_in(&dir)
        .code(1);
    assert!(
        !dir.join("out.txt").exists(),
        "a rejected call does not run"
    );
    drop(t);
}

/// On a terminal, kairos asks: the prompt, approve or reject, and a name the policy accepts.
/// Driven through a pseudo-terminal with `script` (util-linux).
#[test]
fn interactive_approval_through_a_pseudo_terminal() {
    if !crate::common::require_program("script") {
        return;
    }
    let t = Test::new().workflow(TWO);
    let dir = t.path().to_path_buf();
    let bin = assert_cmd::cargo::cargo_bin!("kairos");
    let command = format!("{} run wf.yaml -q --ledger l.jsonl", bin.display());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the command on a pseudo-terminal");
    use std::io::Write;
    // ship: approve, first as someone the policy refuses, then as alice; announce: reject.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"y\nmallory\nalice\nn\nbob\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("approval `ship`: ship built?"), "{screen}");
    assert!(screen.contains("`mallory` may not approve"), "{screen}");
    let ev = read_ledger(&dir.join("l.jsonl"));
    let resolved: Vec<(&str, &str, &str)> = ev
        .iter()
        .filter(|e| e["event"] == "ApprovalResolved")
        .map(|e| {
            (
                e["node"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
                e["approver"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        resolved,
        [
            ("ship", "approved", "alice"),
            ("announce", "rejected", "bob")
        ]
    );
    drop(t);
}
