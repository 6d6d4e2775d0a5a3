//! The product's promise (`docs/determinism.md`): the same workflow, inputs and seed give a byte-identical
//! ledger at any `--jobs`, on every run. Random DAGs mixing every node kind, with real
//! parallel work (sleeps, shell processes) whose timing varies from run to run.

use crate::common::Test;
use proptest::prelude::*;
use std::fmt::Write;

fn dag(n: usize, seed: u64) -> String {
    let mut state = seed | 1;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m.max(1) as u64) as usize
    };
    let mut y =
        String::from("version: 1\nname: prop\nseed: 5\npolicy: { preset: permissive }\nnodes:\n");
    let mut arms = std::collections::HashSet::new();
    for i in 0..n {
        let _ = writeln!(y, "  - id: n{i}");
        let deps: std::collections::BTreeSet<usize> = if i == 0 {
            Default::default()
        } else {
            (0..next(3)).map(|_| next(i)).collect()
        };
        if !deps.is_empty() {
            let list: Vec<String> = deps.iter().map(|d| format!("n{d}")).collect();
            let _ = writeln!(y, "    needs: [{}]", list.join(", "));
        }
        if next(4) == 0 {
            let _ = writeln!(y, "    priority: {}", next(5));
        }
        match next(12) {
            0 => y.push_str("    tool: noop\n"),
            1 if i > 0 => {
                let _ = writeln!(
                    y,
                    "    tool: echo\n    with: {{ message: \"{{{{ nodes.n{}.status }}}}\" }}",
                    next(i)
                );
            }
            2 => y.push_str("    tool: random\n    with: { int: [1, 100] }\n"),
            3 => {
                let _ = writeln!(
                    y,
                    "    tool: sleep\n    with: {{ duration: {}ms }}",
                    1 + next(4)
                );
            }
            4 => {
                let _ = writeln!(y, "    run: echo out{i}");
            }
            5 if i + 2 < n && !arms.contains(&(i + 1)) && !arms.contains(&(i + 2)) => {
                arms.insert(i + 1);
                arms.insert(i + 2);
                let _ = writeln!(
                    y,
                    "    branch: {{ if: \"{}\", then: [n{}], else: [n{}] }}",
                    if next(2) == 0 { "true" } else { "false" },
                    i + 1,
                    i + 2
                );
            }
            6 if i + 1 < n => {
                let _ = writeln!(y, "    fork: [n{}]", i + 1);
            }
            7 if i > 1 => {
                let _ = writeln!(y, "    join: [n{}, n{}]", next(i), next(i));
            }
            8 => y.push_str(
                "    for_each: [a, b, c]\n    tool: sleep\n    with: { duration: 1ms }\n",
            ),
            9 => y.push_str(
                "    tool: assert\n    with: { that: \"false\" }\n    continue_on_error: true\n",
            ),
            10 => y.push_str("    tool: assert\n    with: { that: \"false\" }\n"),
            _ => y.push_str(
                "    for_each: [1, 2]\n    tool: random\n    with: { choice: [x, y, z] }\n",
            ),
        }
    }
    y
}

fn ledger(yaml: &str, jobs: &str) -> Vec<u8> {
    let t = Test::new().workflow(yaml);
    let path = t.path().join("l.jsonl");
    let out = t
        .args(["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "-j", jobs])
        .run();
    assert!(
        out.code == 0 || out.code == 1,
        "exit {}: {}",
        out.code,
        out.stderr
    );
    std::fs::read(path).expect("ledger written")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn ledgers_are_identical_at_any_jobs(n in 50usize..300, seed in any::<u64>()) {
        let yaml = dag(n, seed);
        let reference = ledger(&yaml, "1");
        for jobs in ["2", "8", "8"] {
            let other = ledger(&yaml, jobs);
            prop_assert!(other == reference, "ledger differs at --jobs {}\n{}", jobs, yaml);
        }
    }
}

#[test]
fn generated_dags_exercise_every_kind() {
    let yaml = dag(300, 12345);
    for kind in [
        "tool: noop",
        "tool: echo",
        "tool: random",
        "tool: sleep",
        "run: echo",
        "branch:",
        "fork:",
        "join:",
        "for_each:",
        "continue_on_error: true",
        "priority:",
    ] {
        assert!(yaml.contains(kind), "no {kind} in the generated workflow");
    }
    let events = String::from_utf8(ledger(&yaml, "4")).unwrap();
    for event in [
        "\"BranchDecision\"",
        "\"ForkSpawn\"",
        "\"JoinComplete\"",
        "\"Skipped\"",
        "\"ToolOutput\"",
        "\"RunEnd\"",
    ] {
        assert!(events.contains(event), "no {event} in the ledger");
    }
}
