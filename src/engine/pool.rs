//! The worker pool: long-lived threads that run the calls that wait (processes, sleeps,
//! files), fed from one priority queue in canonical order, and the loop that runs one call
//! with its retries.
//!
//! Workers only run calls; they never touch the engine's state. A finished call goes back to
//! the scheduler as a [`JobResult`], which decides when it commits. With an observer, each
//! attempt is reported from the thread that runs it (see `observe.rs`).

use super::gate::{Granted, RetryGrant};
use super::observe::{AttemptInfo, Lane, Observer, Watch};
use super::rng;
use super::state::PolicyCheck;
use crate::cancel::Cancel;
use crate::exec::{AttemptId, ShellBackend};
use crate::policy::paths::PathRules;
use crate::syntax::duration;
use crate::tools::{self, Attempt, Tool};
use crate::workflow::NodeIdx;
use crate::workflow::model::Retry;
use rand::RngExt;
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work for a worker thread: one task, or one `for_each` instance.
pub(super) struct Job {
    pub key: (Reverse<i64>, u32, u32),
    pub node: NodeIdx,
    pub instance: Option<u32>,
    pub tool: &'static dyn Tool,
    pub args: Map<String, Value>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub seed: u64,
    pub instance_id: String,
    /// Where its retries ask for their grant, when they count as calls (see `gate.rs`).
    pub grant: Option<RetryGrant>,
    /// What the call checks again when it opens a file.
    pub paths: PathRules,
    /// Whether program names are looked up on kairos's own `PATH` (`CallCx::own_path`).
    pub own_path: bool,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    // The heap pops the greatest; the canonical first (highest priority, earliest declared)
    // must be the greatest, so compare reversed.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key.cmp(&self.key)
    }
}

/// A job's node, instance and what its call did (none when it was not run, or was cut short,
/// because of an interrupt).
pub(super) type JobResult = (NodeIdx, Option<u32>, Option<Finished>);

/// What a call did: its attempts, and the checks of the `max_calls` limits its retries asked
/// (in order; see `gate.rs`).
#[derive(Debug, Default)]
pub(super) struct Finished {
    pub attempts: Vec<Attempt>,
    pub checks: Vec<PolicyCheck>,
}

/// The job queue and whether it is closed, with the condition workers wait on.
type Queue = (Mutex<(BinaryHeap<Job>, bool)>, Condvar);

/// Finished jobs on their way back to the scheduler.
///
/// A worker wakes the scheduler only when the job queue runs low. While enough work is
/// queued, results wait and the scheduler takes them in batches: with short commands it would
/// otherwise wake once per command and take CPU time from the commands themselves.
#[derive(Default)]
struct Results {
    done: Mutex<Vec<JobResult>>,
    wake: Condvar,
}

impl Results {
    fn put(&self, result: JobResult, urgent: bool) {
        self.done.lock().expect("results lock").push(result);
        if urgent {
            self.wake.notify_one();
        }
    }

    /// The results so far; when there are none, waits up to `timeout` for a worker's call.
    fn take(&self, timeout: Duration) -> Vec<JobResult> {
        let mut done = self.done.lock().expect("results lock");
        if done.is_empty() {
            done = self
                .wake
                .wait_timeout(done, timeout)
                .expect("results lock")
                .0;
        }
        std::mem::take(&mut *done)
    }
}

/// Long-lived worker threads fed from one priority queue.
struct Pool {
    shared: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(
        jobs: usize,
        results: &Arc<Results>,
        cancel: &Cancel,
        observer: Option<&Arc<dyn Observer>>,
        shell: Option<&Arc<dyn ShellBackend>>,
    ) -> Self {
        let shared = Arc::new((Mutex::new((BinaryHeap::new(), false)), Condvar::new()));
        let threads = (0..jobs)
            .map(|i| {
                let shared = Arc::clone(&shared);
                let results = Arc::clone(results);
                let cancel = cancel.clone();
                let observer = observer.cloned();
                let shell = shell.cloned();
                std::thread::Builder::new()
                    .name(format!("kairos-worker-{i}"))
                    .spawn(move || {
                        let watch = observer.as_deref().map(|observer| Watch {
                            observer,
                            lane: Lane::Worker(i),
                        });
                        worker(&shared, &results, jobs, &cancel, watch, shell.as_deref());
                    })
                    .expect("spawn a worker thread")
            })
            .collect();
        Self { shared, threads }
    }

    fn push(&self, job: Job) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("queue lock").0.push(job);
        cv.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("queue lock").1 = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(
    shared: &Queue,
    results: &Results,
    workers: usize,
    cancel: &Cancel,
    watch: Option<Watch<'_>>,
    shell: Option<&dyn ShellBackend>,
) {
    let (lock, cv) = shared;
    loop {
        let job = {
            let mut state = lock.lock().expect("queue lock");
            loop {
                if let Some(job) = state.0.pop() {
                    break job;
                }
                if state.1 {
                    return;
                }
                state = cv.wait(state).expect("queue lock");
            }
        };
        // After Ctrl-C, queued jobs are handed back unrun, and a call that the interrupt cut
        // short (a backoff or a `sleep` ended early) is handed back as not run.
        let attempts = (!cancel.requested()).then(|| {
            execute(&Call {
                tool: job.tool,
                args: &job.args,
                timeout: job.timeout,
                retry: job.retry.as_ref(),
                seed: job.seed,
                instance_id: &job.instance_id,
                cancel,
                paths: &job.paths,
                own_path: job.own_path,
                watch,
                grant: job.grant.as_ref(),
                shell,
            })
        });
        let attempts = attempts.flatten();
        // The call is over: the next instance's retries may ask.
        drop(job.grant);
        // The scheduler is needed soon only when the workers may run out of queued jobs.
        let queued = lock.lock().expect("queue lock").0.len();
        results.put((job.node, job.instance, attempts), queued < 2 * workers);
    }
}

/// One tool call as the retry loop needs it: the tool, its rendered arguments, the node's
/// timeout and retry, what its RNG is derived from, and where interrupts and observations go.
pub(super) struct Call<'a> {
    pub tool: &'a dyn Tool,
    pub args: &'a Map<String, Value>,
    pub timeout: Option<Duration>,
    pub retry: Option<&'a Retry>,
    pub seed: u64,
    pub instance_id: &'a str,
    pub cancel: &'a Cancel,
    /// What the call checks again when it opens a file (`tools/open.rs`).
    pub paths: &'a PathRules,
    /// Whether program names are looked up on kairos's own `PATH` (`CallCx::own_path`).
    pub own_path: bool,
    /// Told when each attempt starts and finishes, when there is an observer.
    pub watch: Option<Watch<'a>>,
    /// Where its retries ask for their grant, when they count as calls.
    pub grant: Option<&'a RetryGrant>,
    /// Where a `shell` call runs when not here (`--executor`).
    pub shell: Option<&'a dyn ShellBackend>,
}

/// Runs a tool call with its retries. Backoff jitter comes from the node's RNG, so the
/// schedule is the same on every run. `None` when an interrupt cut the call short: it is not
/// committed, and runs again on resume.
pub(super) fn execute(call: &Call<'_>) -> Option<Finished> {
    let mut out = Finished {
        attempts: Vec::with_capacity(1),
        checks: Vec::new(),
    };
    execute_into(call, &mut out.attempts, &mut out.checks).then_some(out)
}

/// [`execute`], appending the attempts to `out` and the checks of its retries to `checks`;
/// returns whether the call ran to its end (`false`: an interrupt cut it short).
pub(super) fn execute_into(
    call: &Call<'_>,
    out: &mut Vec<Attempt>,
    checks: &mut Vec<PolicyCheck>,
) -> bool {
    let Call {
        tool,
        args,
        timeout,
        retry,
        seed,
        instance_id,
        cancel,
        paths,
        own_path,
        watch,
        grant,
        shell,
    } = *call;
    // The RNG is derived only for the calls that draw from it.
    let mut rng = (tool.draws_rng() || retry.is_some_and(|r| r.attempts > 1))
        .then(|| rng::for_node(seed, instance_id));
    let attempts = retry.map_or(1, |r| r.attempts.max(1));
    for k in 0..attempts {
        let info = watch.map(|w| {
            let info = AttemptInfo {
                instance: instance_id,
                tool: tool.spec().name,
                attempt: k + 1,
                lane: w.lane,
            };
            w.observer.attempt_started(&info, Instant::now());
            (w.observer, info)
        });
        let outcome = tool.call(
            args,
            &mut tools::CallCx {
                rng: rng.as_mut(),
                timeout,
                cancel,
                paths,
                own_path,
                shell,
                attempt: AttemptId {
                    instance: instance_id,
                    attempt: k + 1,
                },
            },
        );
        if outcome.is_interrupted() && cancel.requested() {
            return false;
        }
        let failed = outcome.error.is_some();
        if let Some((observer, info)) = &info {
            observer.attempt_finished(info, failed, Instant::now());
        }
        let mut retry = retry.filter(|_| failed && k + 1 < attempts);
        // Under a call limit, a retry is a call: it runs only once granted.
        if retry.is_some()
            && let Some(grant) = grant
        {
            match grant.request(cancel) {
                Granted::Yes(exceeded) => checks.extend(exceeded),
                Granted::No(exceeded) => {
                    checks.extend(exceeded);
                    retry = None;
                }
                Granted::Interrupted => return false,
            }
        }
        match retry {
            Some(r) => {
                let base = r.backoff.as_secs_f64() * r.factor.powi(k as i32);
                let capped = r.max_backoff.map_or(base, |m| base.min(m.as_secs_f64()));
                // Half fixed, half jitter: spreads retries, never waits less than half.
                let draw = rng.as_mut().map_or(0.5, |r| r.random::<f64>());
                let delay = capped * (0.5 + 0.5 * draw);
                // No wait is longer than the longest duration a workflow may write (a large
                // `factor` would otherwise grow it without end).
                let delay_ms = (delay * 1000.0)
                    .round()
                    .min(duration::MAX.as_millis() as f64) as u64;
                out.push(Attempt {
                    outcome,
                    delay_ms: Some(delay_ms),
                });
                // Ctrl-C ends the wait at once; the call then runs again on resume.
                if !cancel.wait(Duration::from_millis(delay_ms)) {
                    return false;
                }
            }
            None => {
                out.push(Attempt {
                    outcome,
                    delay_ms: None,
                });
                break;
            }
        }
    }
    true
}

/// The pool as the scheduler sees it: started on the first call that needs a worker, with
/// the count of calls handed out and not yet back.
pub(super) struct Workers {
    jobs: usize,
    cancel: Cancel,
    observer: Option<Arc<dyn Observer>>,
    shell: Option<Arc<dyn ShellBackend>>,
    pool: Option<Pool>,
    results: Arc<Results>,
    outstanding: usize,
}

impl Workers {
    pub fn new(
        jobs: usize,
        cancel: Cancel,
        observer: Option<Arc<dyn Observer>>,
        shell: Option<Arc<dyn ShellBackend>>,
    ) -> Self {
        Self {
            jobs,
            cancel,
            observer,
            shell,
            pool: None,
            results: Arc::default(),
            outstanding: 0,
        }
    }

    pub fn push(&mut self, job: Job) {
        let (jobs, results, cancel) = (self.jobs, &self.results, &self.cancel);
        let (observer, shell) = (self.observer.as_ref(), self.shell.as_ref());
        self.pool
            .get_or_insert_with(|| Pool::start(jobs, results, cancel, observer, shell))
            .push(job);
        self.outstanding += 1;
    }

    /// Calls handed out whose results have not been taken back.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The results so far; when there are none, waits up to `timeout` for one.
    pub fn take(&mut self, timeout: Duration) -> Vec<JobResult> {
        let batch = self.results.take(timeout);
        self.outstanding -= batch.len();
        batch
    }

    /// Stops the threads (after the last call has come back).
    pub fn stop(&mut self) {
        self.pool = None;
    }
}
