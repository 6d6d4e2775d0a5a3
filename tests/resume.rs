//! `kairos run --resume`: a paused, interrupted or crashed run continues in the same file and
//! ends byte-identical to an uninterrupted run given the same decisions.

use crate::common::Test;
use std::path::Path;

const TWO: &str = "version: 1
name: two
policy: { preset: permissive }
nodes:
  - id: build
    run: echo built
  - id: ship
    needs: [build]
    approval: { prompt: ship? }
  - id: announce
    needs: [build]
    approval: { prompt: announce? }
  - id: shipped
    needs: [ship]
    run: echo shipped
  - id: side_a
    tool: echo
    with: { message: a }
  - id: side_b
    needs: [side_a]
    run: echo b
";

/// Sends SIGINT, as Ctrl-C does (without needing a `kill` program on the machine).
fn interrupt(child: &std::process::Child) {
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(child), Signal::INT).expect("send SIGINT");
}

fn kairos(dir: &Path, args: &[&str]) -> crate::common::Output {
    Test::new().args(args).run_in(dir)
}

#[test]
fn pause_then_resume_equals_deciding_up_front() {
    for (ship, announce) in [
        ("--approve", "--approve"),
        ("--reject", "--approve"),
        ("--approve", "--reject"),
    ] {
        let t = Test::new().workflow(TWO);
        let dir = t.path().to_path_buf();
        kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "paused.jsonl"]).code(4);
        let paused = std::fs::read_to_string(dir.join("paused.jsonl")).unwrap();
        assert!(
            paused.contains("\"node\":\"side_b\""),
            "independent work finished before the pause"
        );
        assert!(paused.trim_end().ends_with("\"pending\":[\"ship\",\"announce\"],\"resume\":\"kairos run WORKFLOW --resume LEDGER --approve ID --approver NAME\"}"));
        let resumed = kairos(
            &dir,
            &[
                "run",
                "wf.yaml",
                "--resume",
                "paused.jsonl",
                ship,
                "ship",
                announce,
                "announce",
                "--approver",
                "ann",
            ],
        );
        let reference = kairos(
            &dir,
            &[
                "run",
                "wf.yaml",
                "-q",
                "--ledger",
                "direct.jsonl",
                ship,
                "ship",
                announce,
                "announce",
                "--approver",
                "ann",
            ],
        );
        assert_eq!(resumed.code, reference.code, "{}", resumed.stderr);
        assert_eq!(
            std::fs::read(dir.join("paused.jsonl")).unwrap(),
            std::fs::read(dir.join("direct.jsonl")).unwrap(),
            "{ship} ship, {announce} announce"
        );
        drop(t);
    }
}

#[test]
fn resume_one_approval_at_a_time() {
    let t = Test::new().workflow(TWO);
    let dir = t.path().to_path_buf();
    kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]).code(4);
    // Decide the first; the run goes on and pauses again at the second.
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--resume",
            "l.jsonl",
            "--approve",
            "ship",
            "--approver",
            "ann",
        ],
    )
    .code(4);
    // The earlier decision is in the ledger; only the second is given now.
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--resume",
            "l.jsonl",
            "--approve",
            "announce",
            "--approver",
            "ann",
        ],
    )
    .code(0);
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "direct.jsonl",
            "--approve",
            "ship",
            "--approve",
            "announce",
            "--approver",
            "ann",
        ],
    )
    .code(0);
    assert_eq!(
        std::fs::read(dir.join("l.jsonl")).unwrap(),
        std::fs::read(dir.join("direct.jsonl")).unwrap()
    );
    kairos(&dir, &["run", "wf.yaml", "--resume", "l.jsonl"])
        .code(2)
        .stderr_contains("the run already finished");
    drop(t);
}

#[test]
fn resume_refuses_another_run() {
    let t = Test::new()
        .workflow(TWO)
        .file("other.yaml", &TWO.replace("echo built", "echo rebuilt"));
    let dir = t.path().to_path_buf();
    kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]).code(4);
    let before = std::fs::read(dir.join("l.jsonl")).unwrap();
    kairos(&dir, &["run", "other.yaml", "--resume", "l.jsonl"])
        .code(2)
        .stderr_contains("the ledger of another workflow");
    kairos(
        &dir,
        &["run", "wf.yaml", "--seed", "9", "--resume", "l.jsonl"],
    )
    .code(2)
    .stderr_contains("another seed");
    let text = String::from_utf8(before.clone()).unwrap();
    let corrupted = text.replacen("\"built\"", "\"BUILT\"", 1);
    std::fs::write(dir.join("corrupt.jsonl"), &corrupted).unwrap();
    kairos(&dir, &["run", "wf.yaml", "--resume", "corrupt.jsonl"])
        .code(2)
        .stderr_contains("broken chain");
    assert_eq!(
        std::fs::read(dir.join("l.jsonl")).unwrap(),
        before,
        "a refused resume leaves the ledger as it was"
    );
    drop(t);
}

#[test]
fn a_torn_last_line_is_reported_and_repaired() {
    let t = Test::new().workflow(TWO);
    let dir = t.path().to_path_buf();
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "l.jsonl",
            "--approve",
            "ship",
            "--approve",
            "announce",
            "--approver",
            "ann",
        ],
    )
    .code(0);
    let full = std::fs::read(dir.join("l.jsonl")).unwrap();
    // Cut in the middle of the last ToolOutput line, as a crash during a write would.
    let text = String::from_utf8(full.clone()).unwrap();
    let cut = text.rfind("\"event\":\"ToolOutput\"").unwrap() + 10;
    std::fs::write(dir.join("l.jsonl"), &full[..cut]).unwrap();
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "--resume",
            "l.jsonl",
            "--approve",
            "ship",
            "--approve",
            "announce",
            "--approver",
            "ann",
        ],
    )
    .code(0)
    .stderr_contains("was torn (cut off in the middle of a write) and is cut");
    assert_eq!(std::fs::read(dir.join("l.jsonl")).unwrap(), full);
    drop(t);
}

/// Crash test: kill -9 at random moments, resume, and compare with an uninterrupted run. A
/// node whose `End` was on disk at the crash must not run again.
#[test]
fn kill_9_then_resume_gives_the_uninterrupted_ledger() {
    let mut yaml =
        String::from("version: 1\nname: crash\npolicy: { preset: permissive }\nnodes:\n");
    for i in 0..40 {
        let needs = if i >= 2 {
            format!("    needs: [s{}]\n", i - 2)
        } else {
            String::new()
        };
        yaml.push_str(&format!(
            "  - id: s{i}\n{needs}    run: \"sleep 0.01; echo s{i} >> log\"\n"
        ));
    }
    let t = Test::new().workflow(&yaml);
    let dir = t.path().to_path_buf();
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "reference.jsonl",
            "-j",
            "2",
        ],
    )
    .code(0);
    let reference = std::fs::read(dir.join("reference.jsonl")).unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut resumed_mid_run = 0;
    for trial in 0..20 {
        std::fs::remove_file(dir.join("log")).ok();
        let ledger = format!("t{trial}.jsonl");
        let mut child = crate::common::spawn(
            &dir,
            &["run", "wf.yaml", "-q", "--ledger", &ledger, "-j", "2"],
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(20 + rng % 200));
        child.kill().unwrap();
        child.wait().unwrap();
        let path = dir.join(&ledger);
        let prefix = std::fs::read_to_string(&path).unwrap_or_default();
        if !prefix.contains('\n') {
            continue; // killed before RunStart reached the disk: nothing to resume
        }
        if prefix.contains("\"RunEnd\"") {
            continue; // the run finished before the kill
        }
        resumed_mid_run += 1;
        let committed: Vec<String> = prefix
            .lines()
            .filter(|l| l.ends_with('}') && l.contains("\"event\":\"End\""))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| e["node"].as_str().unwrap().to_string())
            .collect();
        kairos(
            &dir,
            &["run", "wf.yaml", "-q", "--resume", &ledger, "-j", "2"],
        )
        .code(0);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            reference,
            "trial {trial}: the resumed ledger differs"
        );
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        for id in &committed {
            assert_eq!(
                log.lines().filter(|l| l == id).count(),
                1,
                "trial {trial}: committed node {id} ran again"
            );
        }
    }
    assert!(
        resumed_mid_run >= 10,
        "most trials should interrupt the run ({resumed_mid_run} did)"
    );
    drop(t);
}

#[test]
fn ctrl_c_lets_running_nodes_finish_then_resume_completes() {
    // Running commands finish after a first Ctrl-C (a `sleep` tool, a wait, would end at once).
    let yaml = "version: 1\nname: sleepy\npolicy: { preset: permissive }\nnodes:\n  - id: start\n    fork: [a, b]\n  - id: a\n    run: sleep 0.6\n  - id: b\n    run: sleep 0.6\n  - id: after\n    needs: [a, b]\n    tool: sleep\n    with: { duration: 300ms }\n  - id: last\n    needs: [after]\n    tool: echo\n    with: { message: done }\n";
    let t = Test::new().workflow(yaml);
    let dir = t.path().to_path_buf();
    let child = crate::common::spawn(
        &dir,
        &["run", "wf.yaml", "-q", "--ledger", "l.jsonl", "-j", "4"],
    );
    std::thread::sleep(std::time::Duration::from_millis(250));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("resume with: kairos run wf.yaml --resume l.jsonl")
    );
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["event"].as_str(), last["reason"].as_str()),
        (Some("RunPaused"), Some("interrupted"))
    );
    assert!(
        text.contains("\"node\":\"a\"") && text.contains("\"node\":\"b\""),
        "running nodes finished and committed"
    );
    assert!(
        !text.contains("\"node\":\"after\""),
        "no node started after the interrupt"
    );
    kairos(&dir, &["run", "wf.yaml", "-q", "--resume", "l.jsonl"]).code(0);
    kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "direct.jsonl"]).code(0);
    assert_eq!(
        std::fs::read(dir.join("l.jsonl")).unwrap(),
        std::fs::read(dir.join("direct.jsonl")).unwrap()
    );
    drop(t);
}

#[test]
fn a_second_ctrl_c_kills_running_commands() {
    let yaml = "version: 1\nname: stuck\npolicy: { preset: permissive }\nnodes:\n  - id: long\n    run: sleep 30\n";
    let t = Test::new().workflow(yaml);
    let dir = t.path().to_path_buf();
    let child = crate::common::spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..2 {
        interrupt(&child);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    // Had the command not been killed, the first interrupt would have let it finish and commit.
    assert!(
        !text.contains("\"node\":\"long\""),
        "a killed command's result is not committed"
    );
    drop(t);
}

#[test]
fn a_ledger_being_written_cannot_be_resumed_at_the_same_time() {
    let t = Test::new().workflow(
        "version: 1\nname: slow\nnodes:\n  - id: nap\n    tool: sleep\n    with: { duration: 3s }\n",
    );
    let dir = t.path().to_path_buf();
    let mut child = crate::common::spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(dir.join("l.jsonl"))
        .unwrap_or_default()
        .contains('\n')
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Test::new()
        .args(["run", "wf.yaml", "--resume", "l.jsonl"])
        .run_in(&dir)
        .code(2)
        .stderr_contains("another kairos process is writing it");
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    assert!(text.contains("\"RunEnd\""), "{text}");
    Test::new().args(["verify", "l.jsonl"]).run_in(&dir).code(0);
    drop(t);
}

#[test]
fn ctrl_c_while_a_paused_loop_waits_for_running_nodes_is_an_interrupt() {
    // The loop's body pauses at once; `nap`, ready when the loop's turn came, is still
    // running, and the run waits for it before it pauses. Ctrl-C then wins: exit 130.
    let t = Test::new().workflow(
        "version: 1
name: both
nodes:
  - id: l
    loop:
      max_iterations: 1
      on_max: succeed
      nodes:
        - id: ok
          approval: { prompt: go? }
  - id: nap
    tool: sleep
    with: { duration: 4s }
",
    );
    let dir = t.path().to_path_buf();
    let mut child = crate::common::spawn(&dir, &["run", "wf.yaml", "-q", "--ledger", "l.jsonl"]);
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(dir.join("l.jsonl"))
        .unwrap_or_default()
        .contains("ApprovalRequested")
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let text = std::fs::read_to_string(dir.join("l.jsonl")).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains("\"reason\":\"interrupted\""), "{last}");
    // Resumed with the decision, it finishes.
    kairos(
        &dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--resume",
            "l.jsonl",
            "--approve",
            "l#1/ok",
        ],
    )
    .code(0);
    drop(t);
}

#[test]
fn a_fifo_is_not_resumed_and_nothing_waits_for_a_writer() {
    let t = Test::new().workflow("version: 1\nname: n\nnodes:\n  - id: a\n    tool: noop\n");
    let dir = t.path().to_path_buf();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        dir.join("l.jsonl"),
        rustix::fs::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    kairos(&dir, &["run", "wf.yaml", "--resume", "l.jsonl"])
        .code(2)
        .stderr_contains("it is not a regular file");
    drop(t);
}
