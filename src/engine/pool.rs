//! The worker pools: long-lived threads that run the calls that wait, each pool fed from one
//! priority queue in canonical order, and the loop that runs one call with its retries.
//!
//! There are two lanes. The `--jobs` workers run what waits on the machine (processes, sleeps,
//! files); the network lane (`--net-jobs`, the workflow's `network:`) runs what waits on a
//! network peer, so a slow server never holds a worker that could start a process. The
//! network lane may also hold back calls to a host that has as many running as the workflow's
//! `network.per_host` allows. Threads start when there is work for them: a run without
//! network calls starts no network thread.
//!
//! Workers only run calls; they never touch the engine's state. A finished call goes back to
//! the scheduler as a [`JobResult`], which decides when it commits, so neither lane's size
//! changes the ledger. With an observer, each attempt is reported from the thread that runs it
//! (see `observe.rs`).

use super::gate::{Granted, RetryGrant};
use super::observe::{AttemptInfo, Lane, Observer, Watch};
use super::rng;
use super::state::PolicyCheck;
use crate::cancel::Cancel;
use crate::exec::{AttemptId, ShellBackend};
use crate::net::Net;
use crate::policy::paths::PathRules;
use crate::syntax::duration;
use crate::tools::{self, Attempt, Tool};
use crate::workflow::NodeIdx;
use crate::workflow::model::Retry;
use rand::RngExt;
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
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
    /// The run's network access.
    pub net: Net,
    /// The run's MCP servers.
    pub mcp: crate::mcp::Servers,
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

/// A lane's job queue, with the condition its workers wait on.
type Queue = (Mutex<QueueState>, Condvar);

#[derive(Default)]
struct QueueState {
    jobs: BinaryHeap<Job>,
    closed: bool,
    /// Workers waiting for a job.
    idle: usize,
    /// Calls held back by a per-host limit (network lane only).
    hosts: HostSlots,
}

/// The network lane's limits: how many calls run at once, and per host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetLimits {
    /// Network calls running at once; 0: [`DEFAULT_NET_JOBS`].
    pub max: usize,
    /// Calls running at once to a host (lower-case name, as `hosts` reads it from the URL).
    pub per_host: BTreeMap<String, usize>,
}

/// The network lane's size when neither `--net-jobs` nor the workflow sets it: network calls
/// mostly wait, so many run at once.
pub const DEFAULT_NET_JOBS: usize = 64;

/// Per-host limits of a lane: calls running per limited host, and the jobs waiting for one of
/// them to end (they keep their canonical order among themselves).
#[derive(Default)]
struct HostSlots {
    limits: BTreeMap<String, usize>,
    running: HashMap<String, usize>,
    parked: HashMap<String, BinaryHeap<Job>>,
}

impl HostSlots {
    /// The limited host a job's call reaches, if any: the host of the first URL its tool says
    /// it touches. Redirect hops are not counted apart (they are part of the call).
    fn host_of(&self, job: &Job) -> Option<String> {
        if self.limits.is_empty() {
            return None;
        }
        job.tool.resources(&job.args).iter().find_map(|r| match r {
            tools::Resource::Url(url) => {
                crate::policy::hosts::host_of(url).filter(|h| self.limits.contains_key(h))
            }
            _ => None,
        })
    }

    /// Takes a job to run now, or parks it until a call to its host ends (`None`).
    fn admit(&mut self, job: Job) -> Option<(Job, Option<String>)> {
        let Some(host) = self.host_of(&job) else {
            return Some((job, None));
        };
        let limit = self.limits[&host].max(1);
        let running = self.running.entry(host.clone()).or_default();
        if *running >= limit {
            self.parked.entry(host).or_default().push(job);
            return None;
        }
        *running += 1;
        Some((job, Some(host)))
    }

    /// A call to `host` ended: the first job parked for it, to be queued again.
    fn release(&mut self, host: &str) -> Option<Job> {
        if let Some(n) = self.running.get_mut(host) {
            *n = n.saturating_sub(1);
        }
        self.parked.get_mut(host).and_then(BinaryHeap::pop)
    }
}

/// Finished jobs on their way back to the scheduler.
///
/// A worker wakes the scheduler only when the job queue runs low. While enough work is
/// queued, results wait and the scheduler takes them in batches: with short commands it would
/// otherwise wake once per command and take CPU time from the commands themselves.
#[derive(Default)]
struct Results {
    /// Each with whether it came from the network lane.
    done: Mutex<Vec<(bool, JobResult)>>,
    wake: Condvar,
}

impl Results {
    fn put(&self, network: bool, result: JobResult, urgent: bool) {
        self.done
            .lock()
            .expect("results lock")
            .push((network, result));
        if urgent {
            self.wake.notify_one();
        }
    }

    /// The results so far; when there are none, waits up to `timeout` for a worker's call.
    fn take(&self, timeout: Duration) -> Vec<(bool, JobResult)> {
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

/// Long-lived worker threads fed from one priority queue, started as work arrives, up to
/// `size`.
struct Pool {
    shared: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
    size: usize,
    /// The network lane: its threads are not waited for after a second interrupt.
    network: bool,
    results: Arc<Results>,
    cancel: Cancel,
    observer: Option<Arc<dyn Observer>>,
    /// Where `shell` calls run when not here (`--executor`); the network lane has none.
    shell: Option<Arc<dyn ShellBackend>>,
}

impl Pool {
    fn new(
        size: usize,
        network: bool,
        per_host: BTreeMap<String, usize>,
        results: &Arc<Results>,
        cancel: &Cancel,
        observer: Option<&Arc<dyn Observer>>,
        shell: Option<&Arc<dyn ShellBackend>>,
    ) -> Self {
        let state = QueueState {
            hosts: HostSlots {
                limits: per_host,
                ..HostSlots::default()
            },
            ..QueueState::default()
        };
        Self {
            shared: Arc::new((Mutex::new(state), Condvar::new())),
            threads: Vec::new(),
            size: size.max(1),
            network,
            results: Arc::clone(results),
            cancel: cancel.clone(),
            observer: observer.cloned(),
            shell: shell.cloned(),
        }
    }

    fn push(&mut self, job: Job) {
        let (lock, cv) = &*self.shared;
        let mut state = lock.lock().expect("queue lock");
        state.jobs.push(job);
        // A thread more when the queued jobs outnumber the threads waiting for one.
        let spawn = state.jobs.len() > state.idle && self.threads.len() < self.size;
        drop(state);
        cv.notify_one();
        if spawn {
            self.spawn();
        }
    }

    fn spawn(&mut self) {
        let i = self.threads.len();
        let shared = Arc::clone(&self.shared);
        let results = Arc::clone(&self.results);
        let cancel = self.cancel.clone();
        let observer = self.observer.clone();
        let shell = self.shell.clone();
        let (size, network) = (self.size, self.network);
        let (name, lane) = if network {
            (format!("kairos-net-{i}"), Lane::Network(i))
        } else {
            (format!("kairos-worker-{i}"), Lane::Worker(i))
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let watch = observer.as_deref().map(|observer| Watch { observer, lane });
                worker(
                    &shared,
                    &results,
                    (size, network),
                    &cancel,
                    watch,
                    shell.as_deref(),
                );
            })
            .expect("spawn a worker thread");
        self.threads.push(thread);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().expect("queue lock").closed = true;
        cv.notify_all();
        // After a second interrupt, a network call still waiting on its server is left to end
        // on its own (by its timeout, or with the process): the run does not wait for it.
        let abandon = self.network && self.cancel.killed();
        for t in self.threads.drain(..) {
            if !abandon {
                let _ = t.join();
            }
        }
    }
}

/// Takes the next job this worker may run, waiting for one; `None` once the pool is closed.
fn next_job(shared: &Queue) -> Option<(Job, Option<String>)> {
    let (lock, cv) = shared;
    let mut state = lock.lock().expect("queue lock");
    loop {
        while let Some(job) = state.jobs.pop() {
            if let Some(taken) = state.hosts.admit(job) {
                return Some(taken);
            }
        }
        if state.closed {
            return None;
        }
        state.idle += 1;
        state = cv.wait(state).expect("queue lock");
        state.idle -= 1;
    }
}

fn worker(
    shared: &Queue,
    results: &Results,
    (workers, network): (usize, bool),
    cancel: &Cancel,
    watch: Option<Watch<'_>>,
    shell: Option<&dyn ShellBackend>,
) {
    let (lock, cv) = shared;
    while let Some((job, host)) = next_job(shared) {
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
                net: &job.net,
                mcp: &job.mcp,
                own_path: job.own_path,
                watch,
                grant: job.grant.as_ref(),
                shell,
            })
        });
        let attempts = attempts.flatten();
        // The call is over: the next instance's retries may ask.
        drop(job.grant);
        let queued = {
            let mut state = lock.lock().expect("queue lock");
            if let Some(host) = &host
                && let Some(next) = state.hosts.release(host)
            {
                state.jobs.push(next);
                cv.notify_one();
            }
            state.jobs.len()
        };
        // The scheduler is needed soon only when the workers may run out of queued jobs.
        results.put(
            network,
            (job.node, job.instance, attempts),
            queued < 2 * workers,
        );
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
    /// The run's network access.
    pub net: &'a Net,
    /// The run's MCP servers.
    pub mcp: &'a crate::mcp::Servers,
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
        net,
        mcp,
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
                net,
                own_path,
                mcp,
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
        let hint = outcome.retry.filter(|_| failed);
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
        // A failure the tool says another attempt would repeat ends the call. It is decided
        // after the grant, which `Gate::seal` counts for a recorded call stopped short too.
        if hint.is_some_and(|h| !h.retryable) {
            retry = None;
        }
        match retry {
            Some(r) => {
                let base = r.backoff.as_secs_f64() * r.factor.powi(k as i32);
                let capped = r.max_backoff.map_or(base, |m| base.min(m.as_secs_f64()));
                // Half fixed, half jitter: spreads retries, never waits less than half.
                let draw = rng.as_mut().map_or(0.5, |r| r.random::<f64>());
                let delay = capped * (0.5 + 0.5 * draw);
                // A server's `Retry-After` is a floor (the tool caps it; docs/llm.md).
                let delay = hint
                    .and_then(|h| h.after_ms)
                    .map_or(delay, |ms| delay.max(ms as f64 / 1000.0));
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

/// The two lanes as the scheduler sees them: each started on the first call that needs it,
/// with the count of calls handed out and not yet back.
pub(super) struct Workers {
    jobs: usize,
    net: NetLimits,
    cancel: Cancel,
    observer: Option<Arc<dyn Observer>>,
    shell: Option<Arc<dyn ShellBackend>>,
    pool: Option<Pool>,
    network: Option<Pool>,
    results: Arc<Results>,
    /// Calls out, on the `--jobs` workers and on the network lane.
    outstanding: (usize, usize),
}

impl Workers {
    pub fn new(
        jobs: usize,
        net: NetLimits,
        cancel: Cancel,
        observer: Option<Arc<dyn Observer>>,
        shell: Option<Arc<dyn ShellBackend>>,
    ) -> Self {
        Self {
            jobs,
            net,
            cancel,
            observer,
            shell,
            pool: None,
            network: None,
            results: Arc::default(),
            outstanding: (0, 0),
        }
    }

    pub fn push(&mut self, job: Job) {
        let (results, cancel) = (&self.results, &self.cancel);
        let (observer, shell) = (self.observer.as_ref(), self.shell.as_ref());
        if job.tool.placement() == tools::Placement::Network {
            let size = match self.net.max {
                0 => DEFAULT_NET_JOBS,
                n => n,
            };
            let per_host = &self.net.per_host;
            self.network
                .get_or_insert_with(|| {
                    Pool::new(
                        size,
                        true,
                        per_host.clone(),
                        results,
                        cancel,
                        observer,
                        None,
                    )
                })
                .push(job);
            self.outstanding.1 += 1;
        } else {
            let jobs = self.jobs;
            self.pool
                .get_or_insert_with(|| {
                    Pool::new(
                        jobs,
                        false,
                        BTreeMap::new(),
                        results,
                        cancel,
                        observer,
                        shell,
                    )
                })
                .push(job);
            self.outstanding.0 += 1;
        }
    }

    /// Workers for a sub-graph of this run (a loop iteration, a call): the same limits and
    /// executor, threads of their own.
    pub fn sibling(&self) -> Self {
        Workers::new(
            self.jobs,
            self.net.clone(),
            self.cancel.clone(),
            self.observer.clone(),
            self.shell.clone(),
        )
    }

    /// Calls handed out whose results have not been taken back. After a second interrupt,
    /// calls waiting on the network are not counted: the run does not wait for them.
    pub fn outstanding(&self) -> usize {
        let network = if self.cancel.killed() {
            0
        } else {
            self.outstanding.1
        };
        self.outstanding.0 + network
    }

    /// The results so far; when there are none, waits up to `timeout` for one.
    pub fn take(&mut self, timeout: Duration) -> Vec<JobResult> {
        let batch = self.results.take(timeout);
        batch
            .into_iter()
            .map(|(network, result)| {
                let count = if network {
                    &mut self.outstanding.1
                } else {
                    &mut self.outstanding.0
                };
                *count = count.saturating_sub(1);
                result
            })
            .collect()
    }

    /// Stops the threads (after the last call has come back, or been abandoned).
    pub fn stop(&mut self) {
        self.pool = None;
        self.network = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job calling `http` on `url`, `n`-th in canonical order.
    fn job(n: u32, url: &str) -> Job {
        let mut args = Map::new();
        args.insert("url".into(), Value::String(url.into()));
        Job {
            key: (Reverse(0), n, 0),
            node: n,
            instance: None,
            tool: &tools::Http,
            args,
            timeout: None,
            retry: None,
            seed: 0,
            instance_id: format!("n{n}"),
            grant: None,
            paths: PathRules::none(),
            net: Net::default(),
            mcp: crate::mcp::Servers::default(),
            own_path: false,
        }
    }

    #[test]
    fn a_host_at_its_limit_parks_its_calls_in_order_until_one_ends() {
        let mut slots = HostSlots {
            limits: BTreeMap::from([("a.test".to_string(), 1)]),
            ..HostSlots::default()
        };
        let (first, host) = slots.admit(job(0, "http://A.test/1")).unwrap();
        assert_eq!((first.node, host.as_deref()), (0, Some("a.test")));
        assert!(slots.admit(job(2, "http://a.test:8080/3")).is_none());
        assert!(slots.admit(job(1, "http://a.test/2")).is_none());
        // Another host is not limited.
        let (other, host) = slots.admit(job(3, "http://b.test/")).unwrap();
        assert_eq!((other.node, host), (3, None));
        // The first parked in canonical order comes back when the running call ends; it is
        // then admitted in its turn, and the other waits for it.
        let next = slots.release("a.test").unwrap();
        assert_eq!(next.node, 1);
        assert!(slots.admit(next).is_some());
        assert_eq!(slots.release("a.test").unwrap().node, 2);
    }
}
