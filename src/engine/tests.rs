//! The engine in-process, with fake tools: a tool that records its calls, one that fails on
//! demand, one that sleeps on a worker, one that declares a resource the policy refuses. The
//! ledger goes to memory; cancellation is a value the test interrupts, without signals.

use super::{RunOptions, RunReport, RunStatus, run_to};
use crate::cancel::Cancel;
use crate::ledger::event::{Event, Status};
use crate::ledger::writer::Memory;
use crate::policy::{Capability, Resource};
use crate::tools::{Args, CallCx, KeyKind, Outcome, Placement, Tool, ToolSpec, Toolbox, key};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Records the `value` of every call and outputs it.
struct Recorder {
    spec: &'static ToolSpec,
    placement: Placement,
    calls: Mutex<Vec<String>>,
}

impl Tool for Recorder {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn placement(&self) -> Placement {
        self.placement
    }
    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }
    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        let value = args["value"].as_str().unwrap_or_default().to_string();
        self.calls.lock().unwrap().push(value.clone());
        Outcome::value(Value::String(value))
    }
}

/// Fails its first `fail` calls, then succeeds.
struct Flaky {
    spec: &'static ToolSpec,
    fail: u32,
    calls: AtomicU32,
}

impl Tool for Flaky {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }
    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.fail {
            Outcome::failed(format!("failure {}", n + 1))
        } else {
            Outcome::value(Value::from(n + 1))
        }
    }
}

/// Sleeps `ms` milliseconds on a worker and outputs them; with `interrupt: "yes"`, interrupts
/// the run first (as a Ctrl-C arriving while the call runs).
struct Sleeper {
    spec: &'static ToolSpec,
}

impl Tool for Sleeper {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }
    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let ms = args["ms"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match args.get("interrupt").and_then(Value::as_str) {
            Some("yes") => {
                cx.cancel.interrupt();
            }
            Some("twice") => {
                cx.cancel.interrupt();
                cx.cancel.interrupt();
            }
            _ => {}
        }
        cx.cancel.sleep(Duration::from_millis(ms));
        Outcome::value(Value::from(ms))
    }
}

/// Says it writes `path`; writes nothing, but counts its calls.
struct Scribe {
    spec: &'static ToolSpec,
    calls: AtomicU32,
}

impl Tool for Scribe {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        vec![Resource::Write(args["path"].as_str().unwrap_or_default())]
    }
    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Outcome::value(Value::Null)
    }
}

const fn spec(name: &'static str, keys: &'static [crate::tools::KeySpec]) -> ToolSpec {
    ToolSpec {
        name,
        summary: "a fake tool for tests",
        keys,
        one_of: &[],
        capabilities: &[],
    }
}

static VALUE: &[crate::tools::KeySpec] = &[key("value", KeyKind::Template, true, "")];

/// Loads `yaml` with `tool` ahead of the built-in ones, runs it and gives the report and the
/// ledger text.
fn run(yaml: &str, tool: &'static dyn Tool, options: RunOptions) -> (RunReport, String) {
    // A test's toolbox lives as long as the test binary.
    let tools: &'static [&'static dyn Tool] = Box::leak(Box::new([tool]));
    let wf = crate::workflow::validate::load_with("wf.yaml", yaml.into(), Toolbox::with(tools))
        .unwrap_or_else(|d| {
            let mut out = String::new();
            d.render(&mut out);
            panic!("{out}")
        });
    let policy = crate::policy::effective::Effective::new(crate::plan::layers(&wf, None));
    let inputs = crate::plan::resolve_inputs(&wf, &options.inputs).unwrap();
    let memory = Memory::default();
    let report = run_to(
        &wf,
        &options,
        &policy,
        &inputs,
        memory.clone(),
        &super::Live,
    )
    .unwrap();
    (report, String::from_utf8(memory.take()).unwrap())
}

/// The events of a ledger, one per line.
fn events(ledger: &str) -> Vec<(String, Option<String>, Value)> {
    ledger
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let kind = v["event"].as_str().unwrap().to_string();
            // Every line reads back as its typed event.
            Event::parse(&kind, line).unwrap_or_else(|e| panic!("{line}: {e}"));
            (kind, v["node"].as_str().map(str::to_string), v)
        })
        .collect()
}

#[test]
fn a_fake_tool_is_called_with_its_rendered_arguments() {
    static SPEC: ToolSpec = spec("fake.record", VALUE);
    static TOOL: Recorder = Recorder {
        spec: &SPEC,
        placement: Placement::Inline,
        calls: Mutex::new(Vec::new()),
    };
    let (report, ledger) = run(
        "version: 1\nname: t\ninputs:\n  who: { default: x }\nnodes:\n  - id: a\n    for_each: [1, 2]\n    tool: fake.record\n    with: { value: \"{{ inputs.who }}-{{ item }}\" }\n  - id: b\n    needs: [a]\n    tool: fake.record\n    with: { value: \"{{ nodes.a.output | join(',') }}\" }\n",
        &TOOL,
        RunOptions {
            inputs: vec![("who".into(), "ada".into())],
            ..RunOptions::default()
        },
    );
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        *TOOL.calls.lock().unwrap(),
        ["ada-1", "ada-2", "ada-1,ada-2"]
    );
    let outputs: Vec<(String, Value)> = events(&ledger)
        .into_iter()
        .filter(|(k, _, _)| k == "ToolOutput")
        .map(|(_, node, v)| (node.unwrap(), v["output"].clone()))
        .collect();
    assert_eq!(
        outputs,
        [
            ("a[0]".to_string(), Value::from("ada-1")),
            ("a[1]".to_string(), Value::from("ada-2")),
            ("b".to_string(), Value::from("ada-1,ada-2")),
        ]
    );
}

#[test]
fn retries_call_the_tool_again_until_it_succeeds() {
    static SPEC: ToolSpec = spec("fake.flaky", &[]);
    static TOOL: Flaky = Flaky {
        spec: &SPEC,
        fail: 2,
        calls: AtomicU32::new(0),
    };
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.flaky\n    retry: { attempts: 4, backoff: 1ms }\n",
        &TOOL,
        RunOptions::default(),
    );
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(TOOL.calls.load(Ordering::SeqCst), 3);
    let kinds: Vec<String> = events(&ledger).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "RunStart",
            "Start",
            "ToolOutput",
            "Retry",
            "ToolOutput",
            "Retry",
            "End",
            "RunEnd"
        ]
    );
    let end = &events(&ledger)[6].2;
    assert_eq!(end["attempts"], 3);
    assert_eq!(end["status"], "succeeded");
}

#[test]
fn a_failing_tool_fails_its_node_and_skips_what_needs_it() {
    static SPEC: ToolSpec = spec("fake.broken", &[]);
    static TOOL: Flaky = Flaky {
        spec: &SPEC,
        fail: u32::MAX,
        calls: AtomicU32::new(0),
    };
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.broken\n  - id: b\n    needs: [a]\n    tool: noop\n",
        &TOOL,
        RunOptions::default(),
    );
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.counts.get(Status::Failed), 1);
    assert_eq!(report.counts.get(Status::Skipped), 1);
    let skipped = events(&ledger)
        .into_iter()
        .find(|(k, _, _)| k == "Skipped")
        .unwrap();
    assert_eq!(skipped.1.as_deref(), Some("b"));
    assert_eq!(skipped.2["reason"], "`a` failed");
}

#[test]
fn slow_tools_on_workers_write_the_same_ledger_at_any_jobs() {
    static SPEC: ToolSpec = spec("fake.sleep", &[key("ms", KeyKind::Template, true, "")]);
    static TOOL: Sleeper = Sleeper { spec: &SPEC };
    // Later nodes finish first: commit order must not follow completion order.
    let mut yaml = String::from("version: 1\nname: t\nnodes:\n");
    for k in 0..6 {
        yaml.push_str(&format!(
            "  - id: s{k}\n    tool: fake.sleep\n    with: {{ ms: \"{}\" }}\n",
            60 - 10 * k
        ));
    }
    yaml.push_str("  - id: all\n    join: [s0, s1, s2, s3, s4, s5]\n");
    let ledgers: Vec<String> = [1, 2, 8]
        .into_iter()
        .map(|jobs| {
            run(
                &yaml,
                &TOOL,
                RunOptions {
                    jobs,
                    ..RunOptions::default()
                },
            )
            .1
        })
        .collect();
    assert_eq!(ledgers[0], ledgers[1]);
    assert_eq!(ledgers[0], ledgers[2]);
    let ends: Vec<String> = events(&ledgers[0])
        .into_iter()
        .filter(|(k, _, _)| k == "End")
        .map(|(_, n, _)| n.unwrap())
        .collect();
    assert_eq!(ends, ["s0", "s1", "s2", "s3", "s4", "s5", "all"]);
}

#[test]
fn an_interrupt_lets_running_calls_finish_and_starts_nothing_new() {
    static SPEC: ToolSpec = spec(
        "fake.nap",
        &[
            key("ms", KeyKind::Template, true, ""),
            key("interrupt", KeyKind::Template, false, ""),
        ],
    );
    static TOOL: Sleeper = Sleeper { spec: &SPEC };
    let cancel = Cancel::default();
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.nap\n    with: { ms: \"100\", interrupt: \"yes\" }\n  - id: b\n    needs: [a]\n    tool: noop\n",
        &TOOL,
        RunOptions {
            cancel: cancel.clone(),
            ..RunOptions::default()
        },
    );
    assert_eq!(cancel.count(), 1);
    assert_eq!(report.status, RunStatus::Interrupted);
    let events = events(&ledger);
    let last = events.last().unwrap();
    assert_eq!(last.0, "RunPaused");
    assert_eq!(last.2["reason"], "interrupted");
    // `a` ran to the end (not cut short by the first interrupt) and committed.
    let a = events
        .iter()
        .find(|(k, n, _)| k == "ToolOutput" && n.as_deref() == Some("a"))
        .unwrap();
    assert_eq!(a.2["output"], 100);
    assert!(!events.iter().any(|(_, n, _)| n.as_deref() == Some("b")));
}

#[test]
fn the_gate_checks_what_a_tool_declares_not_its_name() {
    static SPEC: ToolSpec = ToolSpec {
        capabilities: &[Capability::FsWrite],
        ..spec("fake.scribe", &[key("path", KeyKind::Template, true, "")])
    };
    static TOOL: Scribe = Scribe {
        spec: &SPEC,
        calls: AtomicU32::new(0),
    };
    let (report, ledger) = run(
        "version: 1\nname: t\npolicy:\n  preset: restrictive\n  allow: [fs_write]\n  paths: { write: [\"./out/**\"] }\nnodes:\n  - id: ok\n    tool: fake.scribe\n    with: { path: out/a.txt }\n  - id: bad\n    tool: fake.scribe\n    with: { path: /etc/passwd }\n",
        &TOOL,
        RunOptions::default(),
    );
    assert_eq!(report.status, RunStatus::Denied);
    assert_eq!(TOOL.calls.load(Ordering::SeqCst), 1, "only `ok` was called");
    let deny = events(&ledger)
        .into_iter()
        .find(|(k, _, _)| k == "PolicyDeny")
        .unwrap();
    assert_eq!(deny.1.as_deref(), Some("bad"));
    assert_eq!(deny.2["reason"], "PATH_NOT_PERMITTED");
    let allow = events(&ledger)
        .into_iter()
        .find(|(k, _, _)| k == "PolicyAllow")
        .unwrap();
    assert_eq!(allow.1.as_deref(), Some("ok"));
    assert_eq!(allow.2["checks"], serde_json::json!(["capability", "path"]));
}

#[test]
fn a_second_interrupt_drops_the_running_call_so_it_runs_again_on_resume() {
    static SPEC: ToolSpec = spec(
        "fake.doze",
        &[
            key("ms", KeyKind::Template, true, ""),
            key("interrupt", KeyKind::Template, false, ""),
        ],
    );
    static TOOL: Sleeper = Sleeper { spec: &SPEC };
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.doze\n    with: { ms: \"10000\", interrupt: twice }\n",
        &TOOL,
        RunOptions::default(),
    );
    assert_eq!(report.status, RunStatus::Interrupted);
    let kinds: Vec<String> = events(&ledger).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(kinds, ["RunStart", "RunPaused"]);
}

/// A fan-out node whose instances a `max_calls` limit denied is denied (not succeeded), in the
/// ledger and the summary; a run under the first release's rules writes what it wrote.
#[test]
fn a_fan_out_whose_instances_were_denied_is_denied() {
    static SPEC: ToolSpec = spec("fake.count", VALUE);
    static TOOL: Recorder = Recorder {
        spec: &SPEC,
        placement: Placement::Inline,
        calls: Mutex::new(Vec::new()),
    };
    let yaml = "version: 1\nname: t\npolicy:\n  preset: permissive\n  max_calls: { fake.count: 1 }\nnodes:\n  - id: each\n    for_each: [a, b, c]\n    tool: fake.count\n    with: { value: \"{{ item }}\" }\n";
    let end = |ledger: &str| {
        events(ledger)
            .into_iter()
            .find(|(k, n, _)| k == "End" && n.as_deref() == Some("each"))
            .unwrap()
            .2["status"]
            .clone()
    };
    let (report, ledger) = run(
        yaml,
        &TOOL,
        RunOptions {
            summary: true,
            ..RunOptions::default()
        },
    );
    assert_eq!(report.status, RunStatus::Denied);
    assert_eq!(end(&ledger), "denied");
    assert_eq!(report.nodes[0].status, "denied");
    assert_eq!(report.counts.get(Status::Denied), 1);
    let (_, first) = run(
        yaml,
        &TOOL,
        RunOptions {
            rules: super::Rules::First,
            ..RunOptions::default()
        },
    );
    assert_eq!(end(&first), "succeeded");
    assert_eq!(*TOOL.calls.lock().unwrap(), ["a", "a"], "one call per run");
}

/// A network call that does not heed interrupts (a request waiting on a server): interrupts
/// the run `interrupt` times, then waits until `RELEASED` (or half a minute), and outputs
/// whether it was released.
struct Stuck {
    spec: &'static ToolSpec,
}

static RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Tool for Stuck {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn placement(&self) -> Placement {
        Placement::Network
    }
    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }
    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let times: u32 = args["interrupt"].as_str().unwrap().parse().unwrap();
        for _ in 0..times {
            cx.cancel.interrupt();
        }
        let wait = |until: &dyn Fn() -> bool| {
            for _ in 0..3000 {
                if until() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            false
        };
        if times == 1 {
            // Waits a little past the interrupt: the call is let finish.
            let start = std::time::Instant::now();
            wait(&|| start.elapsed() > Duration::from_millis(50));
            return Outcome::value(Value::from("finished"));
        }
        Outcome::value(Value::from(wait(&|| RELEASED.load(Ordering::SeqCst))))
    }
}

static STUCK_SPEC: ToolSpec = spec(
    "fake.stuck",
    &[key("interrupt", KeyKind::Template, true, "")],
);

#[test]
fn a_first_interrupt_lets_a_network_call_finish() {
    static TOOL: Stuck = Stuck { spec: &STUCK_SPEC };
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.stuck\n    with: { interrupt: \"1\" }\n  - id: b\n    needs: [a]\n    tool: noop\n",
        &TOOL,
        RunOptions {
            jobs: 1,
            net_jobs: 1,
            ..RunOptions::default()
        },
    );
    assert_eq!(report.status, RunStatus::Interrupted);
    let events = events(&ledger);
    let a = events
        .iter()
        .find(|(k, n, _)| k == "ToolOutput" && n.as_deref() == Some("a"))
        .unwrap();
    assert_eq!(a.2["output"], "finished");
}

/// After a second interrupt the run ends without waiting for a network call stuck on its
/// server: the call is still waiting when the run has returned (it runs again on resume).
#[test]
fn a_second_interrupt_does_not_wait_for_network_calls() {
    static TOOL: Stuck = Stuck { spec: &STUCK_SPEC };
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.stuck\n    with: { interrupt: \"2\" }\n",
        &TOOL,
        RunOptions::default(),
    );
    let still_waiting = !RELEASED.swap(true, Ordering::SeqCst);
    assert!(still_waiting, "the run waited for the network call");
    assert_eq!(report.status, RunStatus::Interrupted);
    let kinds: Vec<String> = events(&ledger).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(kinds, ["RunStart", "RunPaused"]);
}

/// Fails every call with the hint its `hint` argument names: `never`, or `after` (retryable
/// after 30 ms).
struct Hinted {
    spec: &'static ToolSpec,
    calls: AtomicU32,
}

impl Tool for Hinted {
    fn spec(&self) -> &'static ToolSpec {
        self.spec
    }
    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }
    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let hint = match args["value"].as_str() {
            Some("never") => crate::tools::RetryHint::NEVER,
            _ => crate::tools::RetryHint {
                retryable: true,
                after_ms: Some(30),
            },
        };
        Outcome {
            retry: Some(hint),
            ..Outcome::failed("busy")
        }
    }
}

#[test]
fn a_tool_can_rule_a_retry_out_or_ask_for_a_longer_wait() {
    static NEVER_SPEC: ToolSpec = spec("fake.hinted", VALUE);
    static NEVER: Hinted = Hinted {
        spec: &NEVER_SPEC,
        calls: AtomicU32::new(0),
    };
    let yaml = |v: &str| {
        format!(
            "version: 1\nname: t\nnodes:\n  - id: a\n    tool: fake.hinted\n    retry: {{ attempts: 3, backoff: 1ms }}\n    with: {{ value: {v} }}\n"
        )
    };
    let (report, ledger) = run(&yaml("never"), &NEVER, RunOptions::default());
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(NEVER.calls.load(Ordering::SeqCst), 1);
    assert!(!ledger.contains("\"Retry\""));

    static AFTER: Hinted = Hinted {
        spec: &NEVER_SPEC,
        calls: AtomicU32::new(0),
    };
    let (_, ledger) = run(&yaml("after"), &AFTER, RunOptions::default());
    assert_eq!(AFTER.calls.load(Ordering::SeqCst), 3);
    let delays: Vec<u64> = events(&ledger)
        .into_iter()
        .filter(|(k, _, _)| k == "Retry")
        .map(|(_, _, v)| v["delay_ms"].as_u64().unwrap())
        .collect();
    // The backoff (at most 1 ms) is shorter than the wait asked for.
    assert_eq!(delays, [30, 30]);
}

#[test]
fn a_loop_runs_its_body_once_per_iteration_one_iteration_after_another() {
    static SPEC: ToolSpec = spec("fake.loop_record", VALUE);
    static TOOL: Recorder = Recorder {
        spec: &SPEC,
        placement: Placement::Worker,
        calls: Mutex::new(Vec::new()),
    };
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: l\n    loop:\n      max_iterations: 3\n      on_max: succeed\n      nodes:\n        - id: a\n          tool: fake.loop_record\n          with: { value: \"a{{ loop.iteration }}\" }\n        - id: b\n          needs: [a]\n          tool: fake.loop_record\n          with: { value: \"b{{ loop.iteration }} after {{ nodes.a.output }}\" }\n",
        &TOOL,
        RunOptions {
            jobs: 4,
            ..RunOptions::default()
        },
    );
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        *TOOL.calls.lock().unwrap(),
        [
            "a1",
            "b1 after a1",
            "a2",
            "b2 after a2",
            "a3",
            "b3 after a3"
        ]
    );
    let nodes: Vec<(String, String)> = events(&ledger)
        .into_iter()
        .filter(|(k, _, _)| k == "End" || k == "LoopIteration")
        .map(|(k, n, _)| (k, n.unwrap()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("End", "l#1/a"),
        ("End", "l#1/b"),
        ("LoopIteration", "l"),
        ("End", "l#2/a"),
        ("End", "l#2/b"),
        ("LoopIteration", "l"),
        ("End", "l#3/a"),
        ("End", "l#3/b"),
        ("LoopIteration", "l"),
        ("End", "l"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(nodes, expected);
    // The run counts the workflow's own node; the body's instances are its events.
    assert_eq!(report.counts.succeeded, 1);
}

#[test]
fn an_interrupt_inside_a_loop_pauses_the_run_without_ending_the_loop() {
    static SPEC: ToolSpec = spec(
        "fake.loop_nap",
        &[
            key("ms", KeyKind::Template, true, ""),
            key("interrupt", KeyKind::Template, false, ""),
        ],
    );
    static TOOL: Sleeper = Sleeper { spec: &SPEC };
    let cancel = Cancel::default();
    let (report, ledger) = run(
        "version: 1\nname: t\nnodes:\n  - id: l\n    loop:\n      max_iterations: 3\n      on_max: succeed\n      nodes:\n        - id: a\n          tool: fake.loop_nap\n          with: { ms: \"5\", interrupt: \"{{ 'yes' if loop.iteration == 2 else 'no' }}\" }\n  - id: after\n    needs: [l]\n    tool: noop\n",
        &TOOL,
        RunOptions {
            cancel: cancel.clone(),
            ..RunOptions::default()
        },
    );
    assert_eq!(report.status, RunStatus::Interrupted);
    let events = events(&ledger);
    assert_eq!(events.last().unwrap().0, "RunPaused");
    // Iteration 2's running call finished and committed, which completes iteration 2; no third
    // iteration starts, and the loop has no `End`.
    let nodes: Vec<&str> = events.iter().filter_map(|(_, n, _)| n.as_deref()).collect();
    assert!(nodes.contains(&"l#2/a"));
    assert!(!nodes.iter().any(|n| n.starts_with("l#3/") || *n == "after"));
    let iterations = events
        .iter()
        .filter(|(k, _, _)| k == "LoopIteration")
        .count();
    assert_eq!(iterations, 2);
    assert!(
        !events
            .iter()
            .any(|(k, n, _)| k == "End" && n.as_deref() == Some("l"))
    );
}
