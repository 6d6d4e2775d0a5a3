//! Watching a run as it happens: when each call attempt starts and finishes and on which
//! thread, when each node commits, when an approval is requested and decided.
//!
//! This is the one place where wall-clock time enters the engine, and it leaves again at once:
//! an [`Observer`] is told what happened and when, and nothing it does flows back. The ledger
//! never sees an observation, so it is the same with or without one (`docs/determinism.md`).
//! Without an observer ([`RunOptions::observer`](super::RunOptions) is `None`, the default)
//! the engine does not even read the clock.
//!
//! Calls on workers are reported from the worker that runs them (`pool.rs`), per attempt;
//! inline calls from the scheduler thread. An observer is called from several threads at once
//! and should return quickly: a worker waits for it.
//!
//! The observations carry ids and statuses, never a call's input, output or error text: those
//! are redacted only after the call returns, so what an observer sees could hold a secret.

use crate::ledger::event::Status;
use std::sync::Arc;
use std::time::Instant;

/// The thread a call ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// The scheduler thread, which runs pure tools inline.
    Scheduler,
    /// Worker thread `n` (0-based) of the `--jobs` pool.
    Worker(usize),
    /// Thread `n` (0-based) of the network lane (`--net-jobs`).
    Network(usize),
}

/// One attempt of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptInfo<'a> {
    /// The node id, or the instance id of a `for_each` item (`fetch[2]`).
    pub instance: &'a str,
    /// The tool's name.
    pub tool: &'a str,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    pub lane: Lane,
}

/// Told what a run does while it runs. Every method has an empty default, so an observer
/// implements only what it needs.
pub trait Observer: Send + Sync {
    /// An attempt of a call begins on `info.lane`.
    fn attempt_started(&self, info: &AttemptInfo<'_>, at: Instant) {
        let _ = (info, at);
    }

    /// The attempt ended; `failed` when the tool reported an error (a retry may follow).
    fn attempt_finished(&self, info: &AttemptInfo<'_>, failed: bool, at: Instant) {
        let _ = (info, failed, at);
    }

    /// Node `node` (a whole node, with all its `for_each` instances) was committed to the
    /// ledger with `status`.
    fn node_committed(&self, node: &str, status: Status, at: Instant) {
        let _ = (node, status, at);
    }

    /// A person's decision on `node` (an approval node, or a call that needs approval) is
    /// requested: the run waits for it from here.
    fn approval_requested(&self, node: &str, at: Instant) {
        let _ = (node, at);
    }

    /// The decision on `node` was made.
    fn approval_decided(&self, node: &str, approved: bool, at: Instant) {
        let _ = (node, approved, at);
    }
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer(..)")
    }
}

/// Several observers as one: each is told everything, in order.
pub struct Observers(pub Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn attempt_started(&self, info: &AttemptInfo<'_>, at: Instant) {
        for o in &self.0 {
            o.attempt_started(info, at);
        }
    }

    fn attempt_finished(&self, info: &AttemptInfo<'_>, failed: bool, at: Instant) {
        for o in &self.0 {
            o.attempt_finished(info, failed, at);
        }
    }

    fn node_committed(&self, node: &str, status: Status, at: Instant) {
        for o in &self.0 {
            o.node_committed(node, status, at);
        }
    }

    fn approval_requested(&self, node: &str, at: Instant) {
        for o in &self.0 {
            o.approval_requested(node, at);
        }
    }

    fn approval_decided(&self, node: &str, approved: bool, at: Instant) {
        for o in &self.0 {
            o.approval_decided(node, approved, at);
        }
    }
}

/// Who watches a call, and the thread it runs on: what the retry loop needs to report its
/// attempts.
#[derive(Clone, Copy)]
pub(super) struct Watch<'a> {
    pub observer: &'a dyn Observer,
    pub lane: Lane,
}

impl<'a> Watch<'a> {
    /// A watch for calls on the scheduler thread, when there is an observer.
    pub fn inline(observer: Option<&'a dyn Observer>) -> Option<Self> {
        observer.map(|observer| Watch {
            observer,
            lane: Lane::Scheduler,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ApprovalDecision, Live, RunOptions, run_to};
    use crate::ledger::writer::Memory;
    use std::sync::Mutex;

    /// Writes down what it is told, as text.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Log {
        fn push(&self, line: String) {
            self.0.lock().unwrap().push(line);
        }
    }

    impl Observer for Log {
        fn attempt_started(&self, i: &AttemptInfo<'_>, _: Instant) {
            self.push(format!(
                "start {} {} #{} {:?}",
                i.instance, i.tool, i.attempt, i.lane
            ));
        }
        fn attempt_finished(&self, i: &AttemptInfo<'_>, failed: bool, _: Instant) {
            self.push(format!(
                "finish {} #{} failed={failed}",
                i.instance, i.attempt
            ));
        }
        fn node_committed(&self, node: &str, status: Status, _: Instant) {
            self.push(format!("commit {node} {}", status.name()));
        }
        fn approval_requested(&self, node: &str, _: Instant) {
            self.push(format!("requested {node}"));
        }
        fn approval_decided(&self, node: &str, approved: bool, _: Instant) {
            self.push(format!("decided {node} {approved}"));
        }
    }

    const WORKFLOW: &str = "version: 1
name: watched
policy: { preset: permissive }
nodes:
  - id: flaky
    run: exit 3
    retry: { attempts: 2, backoff: 1ms }
  - id: greet
    tool: echo
    with: { message: hi }
  - id: each
    for_each: [a, b]
    run: echo {{ item }}
  - id: ship
    needs: [greet]
    approval: { prompt: ship? }
";

    /// Runs the workflow above with `observer` at `jobs`; gives the ledger.
    fn run(jobs: usize, observer: Option<Arc<dyn Observer>>) -> Vec<u8> {
        let wf = crate::workflow::load_str("wf.yaml", WORKFLOW).expect("valid workflow");
        let policy = crate::policy::effective::Effective::new(crate::plan::layers(&wf, None));
        let inputs = crate::plan::resolve_inputs(&wf, &[]).unwrap();
        let decision = ApprovalDecision {
            approve: true,
            approver: None,
            reason: None,
        };
        let options = RunOptions {
            jobs,
            approvals: [("ship".to_string(), decision)].into(),
            observer,
            ..RunOptions::default()
        };
        let memory = Memory::default();
        run_to(&wf, &options, &policy, &inputs, memory.clone(), &Live).unwrap();
        memory.take()
    }

    #[test]
    fn attempts_commits_and_approvals_are_reported_where_they_happen() {
        let log = Arc::new(Log::default());
        run(1, Some(Arc::clone(&log) as Arc<dyn Observer>));
        let log = log.0.lock().unwrap().clone();
        let has = |line: &str| log.iter().any(|l| l == line);
        // A retried call on a worker: two attempts, each reported.
        assert!(has("start flaky shell #1 Worker(0)"), "{log:#?}");
        assert!(has("finish flaky #1 failed=true"), "{log:#?}");
        assert!(has("start flaky shell #2 Worker(0)"), "{log:#?}");
        assert!(has("finish flaky #2 failed=true"), "{log:#?}");
        // An inline tool, on the scheduler thread; fan-out items by instance id.
        assert!(has("start greet echo #1 Scheduler"), "{log:#?}");
        assert!(has("start each[1] shell #1 Worker(0)"), "{log:#?}");
        // Commits in commit order, whole nodes; the approval after its request.
        let commits: Vec<&str> = log
            .iter()
            .filter(|l| l.starts_with("commit"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            commits,
            [
                "commit flaky failed",
                "commit greet succeeded",
                "commit each succeeded",
                "commit ship succeeded"
            ]
        );
        let at = |line: &str| log.iter().position(|l| l == line).unwrap();
        assert!(at("requested ship") < at("decided ship true"));
        assert!(at("decided ship true") < at("commit ship succeeded"));
    }

    #[test]
    fn an_observer_leaves_the_ledger_unchanged_at_any_jobs() {
        let plain = run(1, None);
        for jobs in [1, 4] {
            let watched = run(jobs, Some(Arc::new(Log::default())));
            assert_eq!(
                String::from_utf8_lossy(&watched),
                String::from_utf8_lossy(&plain),
                "--jobs {jobs}"
            );
        }
        assert_eq!(run(4, None), plain);
    }
}
