//! `kairos run --executor slurm` (docs/executors.md): the same ledger as a local run, one
//! status query per interval, Ctrl-C cancels the run's jobs, `--resume` re-adopts them. Against
//! fake Slurm programs on `PATH` (`tests/fixtures/slurm-fake`), and against a real single-node
//! cluster when one runs here (`ci/slurm/start.sh`; CI starts it).

use crate::common::{Test, require_program, root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Shell calls of every shape: `run:` lines through `sh` and plain, `args:`, `env`, `stdin`,
/// `cwd`, a failure whose message names the program, retries, `for_each`, a missing program,
/// and tools that stay local.
const WORKFLOW: &str = r#"version: 1
name: cluster
seed: 7
defaults:
  timeout: 2m
policy:
  preset: permissive
  commands: [sh, printf, cat, tr, ls, sleep, "false", no-such-program]
executor:
  work_dir: slurm-work
  poll: 100ms
nodes:
  - id: greet
    run: printf 'hello %s\n' "$WHO"
    with: { env: { WHO: world } }
  - id: shout
    needs: [greet]
    run: tr a-z A-Z
    with: { stdin: "{{ nodes.greet.output }}" }
  - id: plain
    tool: shell
    with: { args: [printf, "%s|", "no shell", "$HOME"], cwd: sub }
  - id: each
    for_each: [a, b, c]
    run: "printf '%s-%s' {{ item }} {{ index }}"
  - id: missing
    run: ls /no/such/directory
    continue_on_error: true
  - id: flaky
    run: "false"
    retry: { attempts: 2, backoff: 10ms }
    continue_on_error: true
  - id: absent
    run: no-such-program --flag
    continue_on_error: true
  - id: dice
    tool: random
    with: { int: [1, 6] }
"#;

/// A directory holding the fake Slurm programs; their logs go to `state/` beside them.
fn fake_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("fake-slurm");
    std::fs::create_dir_all(&bin).unwrap();
    let fakes = root().join("tests/fixtures/slurm-fake");
    for name in ["sbatch", "squeue", "sacct", "scancel"] {
        std::fs::copy(fakes.join(name), bin.join(name)).unwrap();
    }
    bin
}

/// `PATH` with `bin` first.
fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn log(bin: &Path, program: &str) -> Vec<String> {
    std::fs::read_to_string(bin.join(format!("state/{program}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs the workflow here and on (fake or real) Slurm with the same `PATH`; returns both
/// ledgers and the Slurm run's stderr.
fn local_and_slurm(test: Test, path: &str) -> (String, String, crate::common::Output) {
    let dir = test.path().to_path_buf();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let base = ["run", "wf.yaml", "-q"];
    let local = Test::new()
        .args(base)
        .args(["--executor", "local", "--ledger", "local.jsonl"])
        .env("PATH", path)
        .run_in(&dir);
    let slurm = test
        .args(base)
        .args(["--executor", "slurm", "--ledger", "slurm.jsonl"])
        .env("PATH", path)
        .env("KAIROS_TIMINGS", "1")
        .run();
    assert_eq!(slurm.code, local.code, "{}\n{}", local.stderr, slurm.stderr);
    let read = |name: &str| std::fs::read_to_string(slurm.dir.path().join(name)).unwrap();
    (read("local.jsonl"), read("slurm.jsonl"), slurm)
}

#[test]
fn a_slurm_run_writes_the_ledger_of_a_local_run() {
    let test = Test::new().workflow(WORKFLOW);
    let bin = fake_bin(test.path());
    let (local, slurm, out) = local_and_slurm(test, &path_with(&bin));
    assert_eq!(local, slurm, "ledgers differ");
    // The failing command's own message, with its name as written.
    assert!(slurm.contains("ls: cannot access"), "{slurm}");
    assert!(slurm.contains("hello world") && slurm.contains("HELLO WORLD"));
    // Every shell attempt was a job (`flaky` twice; `absent` never leaves kairos: its program
    // is not on kairos's `PATH`), and no tool but `shell` was.
    assert_eq!(log(&bin, "sbatch").len(), 9, "{:?}", log(&bin, "sbatch"));
    assert!(out.stderr.contains("9 submitted"), "{}", out.stderr);
}

/// The `attempt` slices of a `--trace` file with their job id and nodes, by node instance.
fn traced_jobs(trace: &Path) -> std::collections::BTreeMap<String, (String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(trace).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let jobs: std::collections::BTreeMap<String, (String, String)> = events
        .iter()
        .filter(|e| e["cat"] == "attempt")
        .map(|e| {
            let args = &e["args"];
            (
                args["node"].as_str().unwrap().to_string(),
                (
                    args["job"].as_str().unwrap_or_default().to_string(),
                    args["job_nodes"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    for (node, (job, _)) in &jobs {
        let queued = events
            .iter()
            .find(|e| e["cat"] == "queue" && e["args"]["node"] == node.as_str())
            .unwrap_or_else(|| panic!("no queued slice for {node}"));
        assert_eq!(queued["args"]["job"], job.as_str());
    }
    jobs
}

const TRACED: &str = "version: 1\nname: traced\npolicy: { preset: permissive }\n\
     executor: { work_dir: w, poll: 100ms }\nnodes:\n  - id: n\n    for_each: [1, 2]\n    run: sleep 1\n";

#[test]
fn the_trace_names_each_attempts_job_and_node_and_the_ledger_does_not() {
    let test = Test::new().workflow(TRACED);
    let bin = fake_bin(test.path());
    let out = test
        .args(["run", "wf.yaml", "-q", "--executor", "slurm"])
        .args(["--ledger", "l.jsonl", "--trace", "t.json"])
        .env("PATH", &path_with(&bin))
        .run()
        .code(0);
    let submitted: std::collections::BTreeSet<String> = std::fs::read_dir(bin.join("state/jobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains('.'))
        .collect();
    let jobs = traced_jobs(&out.dir.path().join("t.json"));
    assert_eq!(
        jobs.keys().map(String::as_str).collect::<Vec<_>>(),
        ["n[0]", "n[1]"]
    );
    let traced: std::collections::BTreeSet<String> =
        jobs.values().map(|(job, _)| job.clone()).collect();
    assert_eq!(traced, submitted);
    assert!(
        jobs.values().all(|(_, nodes)| nodes == "fakenode"),
        "{jobs:?}"
    );
    let ledger = std::fs::read_to_string(out.dir.path().join("l.jsonl")).unwrap();
    assert!(!ledger.contains("fakenode"));
    for job in &submitted {
        assert!(
            !ledger.contains(&format!("\"{job}\"")),
            "job {job} in the ledger"
        );
    }
}

#[test]
fn status_queries_name_the_run_not_its_jobs() {
    let test = Test::new().workflow(
        "version: 1\nname: many\npolicy: { preset: permissive }\n\
         executor: { work_dir: w, poll: 200ms }\nnodes:\n  - id: n\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]\n    run: sleep 1\n",
    );
    let bin = fake_bin(test.path());
    let started = Instant::now();
    // The output keeps the test's directory, and the fakes' logs in it.
    let _out = test
        .args(["run", "wf.yaml", "-q", "--executor", "slurm"])
        .env("PATH", &path_with(&bin))
        .run()
        .code(0);
    let elapsed = started.elapsed();
    let queries = log(&bin, "squeue");
    assert_eq!(log(&bin, "sbatch").len(), 20);
    assert!(!queries.is_empty());
    let names: std::collections::BTreeSet<&str> = queries
        .iter()
        .map(|q| q.split(' ').find(|a| a.starts_with("--name=")).unwrap())
        .collect();
    assert_eq!(names.len(), 1, "one name for the whole run: {names:?}");
    // At most one query per interval, whatever the number of jobs.
    let intervals = (elapsed.as_millis() / 200 + 1) as usize;
    assert!(
        queries.len() <= intervals,
        "{} queries in {elapsed:?}",
        queries.len()
    );
}

/// Starts `kairos ARGS` in `dir` with `PATH`, without waiting.
fn spawn(dir: &Path, path: &str, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin!("kairos"))
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kairos")
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The exit code of `child`; it is killed when it has not ended within a minute.
fn exit_code(mut child: Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "kairos did not end: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `ready` or fails after a minute.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_cancels_the_queued_jobs_with_scancel() {
    let test = Test::new().workflow(
        "version: 1\nname: stuck\npolicy: { preset: permissive }\n\
         executor: { work_dir: w, poll: 100ms }\nnodes:\n  - id: n\n    for_each: [1, 2, 3]\n    run: echo fake-pending\n",
    );
    let bin = fake_bin(test.path());
    let child = spawn(
        test.path(),
        &path_with(&bin),
        &[
            "run",
            "wf.yaml",
            "-q",
            "--executor",
            "slurm",
            "--ledger",
            "l.jsonl",
        ],
    );
    let jobs = |dir: &Path| {
        walk(dir)
            .into_iter()
            .filter(|p| p.ends_with("1/job"))
            .count()
    };
    wait_until("three submitted jobs", || jobs(&test.path().join("w")) == 3);
    // Two status queries later, kairos waits for all three.
    let asked = log(&bin, "squeue").len();
    wait_until("two more status queries", || {
        log(&bin, "squeue").len() >= asked + 2
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let code = exit_code(child);
    assert_eq!(code, kairos::exit::INTERRUPTED);
    let cancelled = log(&bin, "scancel");
    assert_eq!(cancelled.len(), 1, "one batch: {cancelled:?}");
    assert_eq!(cancelled[0].split(' ').count(), 3);
    // Nothing was committed for them: a resume runs them again.
    let ledger = std::fs::read_to_string(test.path().join("l.jsonl")).unwrap();
    assert!(!ledger.contains("fake-pending\""), "{ledger}");
}

#[test]
fn resume_adopts_the_jobs_a_killed_run_left_running() {
    let test = Test::new().workflow(
        "version: 1\nname: adopt\npolicy: { preset: permissive }\n\
         executor: { work_dir: w, poll: 100ms }\nnodes:\n  - id: slow\n    run: sleep 2; echo slept\n  - id: after\n    needs: [slow]\n    run: echo after\n",
    );
    let bin = fake_bin(test.path());
    let path = path_with(&bin);
    let mut child = spawn(
        test.path(),
        &path,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--executor",
            "slurm",
            "--ledger",
            "l.jsonl",
        ],
    );
    wait_until("the submission", || {
        walk(&test.path().join("w"))
            .iter()
            .any(|p| p.ends_with("slow/1/job"))
    });
    // Killed, not interrupted: nothing cancels the job.
    child.kill().unwrap();
    exit_code(child);
    Test::new()
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--executor",
            "slurm",
            "--resume",
            "l.jsonl",
        ])
        .env("PATH", &path)
        .env("KAIROS_TIMINGS", "1")
        .run_in(test.path())
        .code(0)
        .stderr_contains("1 adopted");
    let submitted = log(&bin, "sbatch");
    assert_eq!(
        submitted.len(),
        2,
        "`slow` submitted once, then `after`: {submitted:?}"
    );
    let ledger = std::fs::read_to_string(test.path().join("l.jsonl")).unwrap();
    assert!(ledger.contains("\"slept\""), "{ledger}");
}

#[test]
fn a_bad_executor_block_is_refused_with_its_location() {
    Test::new()
        .workflow(
            "version: 1\nname: bad\nexecutor: { kind: kubernetes, cpus: 0 }\nnodes:\n  - id: a\n    tool: noop\n",
        )
        .args(["validate", "wf.yaml"])
        .run()
        .code(kairos::exit::BAD_INPUT)
        .stderr_contains("unknown executor")
        .stderr_contains("must be at least 1");
}

/// Whether a Slurm controller answers here (`ci/slurm/start.sh` started one).
fn cluster_answers() -> bool {
    Command::new("sinfo")
        .arg("--noheader")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_workflow_runs_on_a_real_slurm_cluster_with_the_local_ledger() {
    if !require_program("sbatch") {
        return;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !cluster_answers() {
        assert!(
            !ci,
            "no Slurm controller answers: CI starts one with ci/slurm/start.sh"
        );
        eprintln!("skipped: no Slurm controller answers (start one with ci/slurm/start.sh)");
        return;
    }
    let test = Test::new().workflow(WORKFLOW);
    let path = std::env::var("PATH").unwrap_or_default();
    let (local, slurm, out) = local_and_slurm(test, &path);
    assert_eq!(local, slurm, "ledgers differ");
    assert!(out.stderr.contains("9 submitted"), "{}", out.stderr);
    // The trace names the real job ids and the node they ran on. The jobs last long enough
    // for a status query to see them running (the poller's interval grows while nothing
    // finishes; it is under 3 s for the first 6 s).
    let out = Test::new()
        .workflow(&TRACED.replace("sleep 1", "sleep 3"))
        .args([
            "run",
            "wf.yaml",
            "-q",
            "--executor",
            "slurm",
            "--trace",
            "t.json",
        ])
        .run()
        .code(0);
    let jobs = traced_jobs(&out.dir.path().join("t.json"));
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for (job, nodes) in jobs.values() {
        assert!(job.parse::<u64>().is_ok(), "{jobs:?}");
        assert!(!nodes.is_empty(), "{jobs:?}");
    }
}

#[test]
fn an_organisation_policy_can_send_shell_calls_to_slurm() {
    let test = Test::new()
        .workflow(
            "version: 1\nname: org\npolicy: { preset: permissive }\nnodes:\n  - id: a\n    run: echo from the cluster\n",
        )
        .file(
            "org.yaml",
            "deny: [net]\nexecutor: { kind: slurm, work_dir: w, poll: 100ms, partition: batch }\n",
        );
    let bin = fake_bin(test.path());
    let out = test
        .args([
            "run", "wf.yaml", "-q", "--policy", "org.yaml", "--ledger", "l.jsonl",
        ])
        .env("PATH", &path_with(&bin))
        .run()
        .code(0);
    let submitted = log(&bin, "sbatch");
    assert_eq!(submitted.len(), 1);
    assert!(submitted[0].contains("--partition=batch"), "{submitted:?}");
    // The recorded organisation policy, `executor:` and all, replays and verifies.
    for command in [
        &["replay", "l.jsonl", "--against", "wf.yaml"][..],
        &["verify", "l.jsonl"],
    ] {
        Test::new().args(command).run_in(out.dir.path()).code(0);
    }
    // `kairos validate` reads the organisation's block as `run` does.
    Test::new()
        .args(["validate", "wf.yaml", "--policy", "org.yaml"])
        .run_in(out.dir.path())
        .code(0);
}
