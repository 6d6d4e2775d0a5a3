//! A ledger holding an event kind this kairos does not know (written by a newer kairos) is
//! refused by every command that reads it, with a diagnostic naming the line and the event,
//! never read as if the line were not there.

use crate::common::{Output, Test, rechain};
use std::path::Path;

const FLOW: &str = "version: 1
name: newer
policy: { preset: permissive }
nodes:
  - id: build
    tool: echo
    with: { message: built }
  - id: ship
    needs: [build]
    approval: { prompt: ship? }
  - id: shipped
    needs: [ship]
    tool: echo
    with: { message: shipped }
";

const MESSAGE: &str = "unknown event `Teleport` (written by a newer kairos?)";

fn kairos(dir: &Path, args: &[&str]) -> Output {
    Test::new().args(args).run_in(dir)
}

/// `ledger` with a `Teleport` line after its second line, renumbered and chained again: a
/// ledger that passes the chain check and holds an event this kairos does not know (line 3).
fn with_unknown_event(ledger: &str) -> String {
    let mut lines: Vec<String> = ledger.lines().map(str::to_string).collect();
    lines.insert(
        2,
        "{\"seq\":0,\"prev\":\"\",\"event\":\"Teleport\",\"clock\":2,\"node\":\"build\",\"to\":\"mars\"}"
            .into(),
    );
    let renumbered: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let rest = l.split_once(",\"prev\"").unwrap().1;
            format!("{{\"seq\":{i},\"prev\"{rest}")
        })
        .collect();
    rechain(&(renumbered.join("\n") + "\n"))
}

#[test]
fn every_reader_refuses_an_event_of_a_newer_kairos() {
    let t = Test::new().workflow(FLOW);
    let dir = t.path().to_path_buf();
    kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "paused.jsonl"]).code(4);
    let paused = std::fs::read_to_string(dir.join("paused.jsonl")).unwrap();
    let newer = with_unknown_event(&paused);
    std::fs::write(dir.join("newer.jsonl"), &newer).unwrap();
    // The chain holds: only what the line says is new.
    kairos(&dir, &["replay", "paused.jsonl"]).code(0);
    let at_line = format!("newer.jsonl:3: {MESSAGE}");

    for args in [
        &["replay", "newer.jsonl"][..],
        &["replay", "newer.jsonl", "--format", "json"],
        &["replay", "newer.jsonl", "--check"],
        &["replay", "newer.jsonl", "--against", "wf.yaml"],
        &["diff", "paused.jsonl", "newer.jsonl"],
        &["diff", "newer.jsonl", "paused.jsonl", "--format", "json"],
        &["diff", "newer.jsonl", "newer.jsonl"],
    ] {
        let out = kairos(&dir, args).code(2).stderr_contains(&at_line);
        assert!(out.stdout.is_empty(), "{args:?} printed {}", out.stdout);
    }

    // verify: the format check fails at the line; a ledger verify cannot read through is a
    // failed verification (exit 1), like any other damage.
    let out = kairos(&dir, &["verify", "newer.jsonl", "--format", "json"])
        .code(1)
        .stderr_contains(&at_line);
    let doc = out.json();
    assert_eq!(doc["verified"], false);
    assert_eq!(doc["first_failure"]["check"], "format");
    assert_eq!(doc["first_failure"]["line"], 3);
    assert!(
        doc["first_failure"]["detail"]
            .as_str()
            .unwrap()
            .contains(MESSAGE),
        "{doc}"
    );
    kairos(&dir, &["keygen", "--out", "ci"]).code(0);
    kairos(&dir, &["sign", "newer.jsonl", "--key", "ci.key"])
        .code(2)
        .stderr_contains(&at_line)
        .stderr_contains("refusing to sign");
    assert!(!dir.join("newer.jsonl.intoto.json").exists());

    // resume: refused before anything runs, and the ledger is left as it was.
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "--resume",
            "newer.jsonl",
            "--approve",
            "ship",
        ],
    )
    .code(2)
    .stderr_contains(&at_line);
    assert_eq!(
        std::fs::read_to_string(dir.join("newer.jsonl")).unwrap(),
        newer
    );
    drop(t);
}
