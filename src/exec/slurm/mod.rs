//! The Slurm executor (`docs/executors.md`): one coordinator per run.
//!
//! A worker thread that runs a `shell` call writes the attempt's directory and wrapper
//! (`wrapper.rs`), takes one of the run's in-flight slots, submits at the run's submit rate
//! (asking again, with backoff, when the controller is briefly away) and then sleeps on a
//! condition variable until its job is over. One poller thread (`poll.rs`) asks the controller
//! about all the run's jobs at once, with one `squeue` per interval (longer while nothing
//! finishes), sees exit files appear, turns jobs that ended without one into errors after a
//! grace period for file-system caching, and cancels jobs on Ctrl-C. Jobs carry the run's name
//! and are submitted without requeue: retries are kairos's, each recorded.

use super::{AttemptId, ExecutorSpec, JobRecord, ShellBackend};
use crate::cancel::Cancel;
use crate::tools::Outcome;
use crate::tools::shell::{self, Prepared, Request};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod commands;
mod poll;
pub mod wrapper;

use commands::Phase;

/// The variables of kairos's own environment every job gets (the call's `env` adds to them,
/// and `executor.env` names more). A variable the policy lists in `secrets` is never passed.
pub const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
];

/// Defaults of the `executor:` keys (`docs/executors.md`).
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 100;
pub const DEFAULT_SUBMIT_RATE: u64 = 10;
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);
/// The longest interval the poller backs off to while nothing finishes.
pub const MAX_POLL: Duration = Duration::from_secs(30);
/// How long a job that is over may lack its exit file before it counts as lost: network file
/// systems cache directory contents for up to about half a minute.
pub const GRACE: Duration = Duration::from_secs(45);

/// How a run's jobs are submitted and watched.
#[derive(Clone, Debug)]
pub struct Config {
    /// The job name of every job of the run: one `squeue --name` sees them all.
    pub name: String,
    /// The run's directory in the shared work directory.
    pub run_dir: PathBuf,
    /// The directory a call without `cwd` runs in (kairos's own).
    pub cwd: PathBuf,
    /// `sbatch` options besides the fixed ones, from the `executor:` block.
    pub options: Vec<String>,
    /// `--time` for calls without a timeout.
    pub time: Option<Duration>,
    pub max_in_flight: usize,
    /// The shortest time between two submissions.
    pub submit_gap: Duration,
    pub poll: Duration,
    pub max_poll: Duration,
    pub grace: Duration,
    /// How often a submission is tried when the controller answers with a transient error,
    /// and the first wait between tries (doubling).
    pub submit_tries: u32,
    pub submit_backoff: Duration,
    /// The base environment of every job.
    pub env: Vec<(String, String)>,
    /// Whether this run continues an earlier one (`--resume`): an attempt that an earlier
    /// process submitted, with the same wrapper, is waited for instead of submitted again.
    pub adopt: bool,
    pub uid: u32,
    /// The directory of `sbatch`, `squeue`, `sacct` and `scancel`; `None`: kairos's `PATH`.
    pub bin: Option<PathBuf>,
}

impl Config {
    /// The configuration of a run writing `ledger`, from its `executor:` settings; `secrets`
    /// are names never passed from kairos's environment.
    pub fn new(
        spec: &ExecutorSpec,
        ledger: &Path,
        secrets: &[String],
        adopt: bool,
    ) -> std::io::Result<Config> {
        let cwd = std::env::current_dir()?;
        // One name per run, the same when it is resumed: from where its ledger is.
        let ledger = std::fs::canonicalize(ledger).unwrap_or_else(|_| cwd.join(ledger));
        let key = crate::ledger::sha256_hex(ledger.as_os_str().as_encoded_bytes());
        let key = &key[..16];
        let work_dir = cwd.join(spec.work_dir.as_deref().unwrap_or(".kairos/slurm"));
        let mut options = Vec::new();
        let mut push = |flag: &str, value: &Option<String>| {
            if let Some(v) = value {
                options.push(format!("--{flag}={v}"));
            }
        };
        push("partition", &spec.partition);
        push("account", &spec.account);
        push("cpus-per-task", &spec.cpus.map(|c| c.to_string()));
        push("mem", &spec.mem);
        options.extend(spec.sbatch.iter().cloned());
        let env = BASE_ENV
            .iter()
            .copied()
            .chain(spec.env.iter().map(String::as_str))
            .filter(|name| !secrets.iter().any(|s| s == name))
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect();
        let rate = spec.submit_rate.unwrap_or(DEFAULT_SUBMIT_RATE).max(1);
        Ok(Config {
            name: format!("kairos-{key}"),
            run_dir: work_dir.join(key),
            cwd,
            options,
            time: spec.time,
            max_in_flight: spec
                .max_in_flight
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT)
                .try_into()
                .unwrap_or(usize::MAX),
            submit_gap: Duration::from_secs(1) / u32::try_from(rate).unwrap_or(u32::MAX),
            poll: spec.poll.unwrap_or(DEFAULT_POLL),
            max_poll: MAX_POLL.max(spec.poll.unwrap_or(DEFAULT_POLL)),
            grace: GRACE,
            submit_tries: 6,
            submit_backoff: Duration::from_secs(1),
            env,
            adopt,
            uid: rustix::process::getuid().as_raw(),
            bin: None,
        })
    }
}

/// Counts for a benchmark or a curious person (`KAIROS_TIMINGS`); never in the ledger.
#[derive(Debug, Default)]
pub struct Stats {
    pub submitted: AtomicU64,
    pub submit_retries: AtomicU64,
    pub adopted: AtomicU64,
    pub status_queries: AtomicU64,
    pub accounting_queries: AtomicU64,
    pub cancelled: AtomicU64,
}

/// One job kairos waits for.
#[derive(Debug)]
struct Job {
    dir: PathBuf,
    /// The attempt it runs, and when and where (for `--trace`). Its `started` (when the
    /// poller first saw it running) is also when the call's timeout starts counting.
    record: JobRecord,
    phase: Phase,
    /// When it was first seen over (or gone from the controller) without an exit file.
    over_since: Option<Instant>,
    /// Its last state as the scheduler reported it.
    state: Option<String>,
    /// How it ended, once it has.
    end: Option<End>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// Its exit file is there.
    Status,
    /// It ended without one: why.
    Lost(String),
    /// Cancelled by an interrupt: the call is not committed and runs again on resume.
    Interrupted,
}

#[derive(Debug, Default)]
struct State {
    /// By job id.
    jobs: HashMap<String, Job>,
    /// Slots taken: jobs submitted (or about to be) and not yet handed back.
    in_flight: usize,
    /// The earliest time of the next submission.
    next_submit: Option<Instant>,
    /// The run is over: the poller stops.
    stop: bool,
    /// The jobs waited for to their end, in the order they ended.
    done: Vec<JobRecord>,
}

/// On a resumed run, the jobs the controller still has queued or running for it: job id and
/// state by the script's path.
type Adoptable = HashMap<String, (String, String)>;

#[derive(Debug)]
struct Shared {
    config: Config,
    cancel: Cancel,
    state: Mutex<State>,
    /// Notified when a job's phase changes, a slot frees or a job is added.
    changed: Condvar,
    stats: Stats,
    /// Read with one query, the first time a resumed run looks for a job to adopt.
    adoptable: std::sync::OnceLock<Adoptable>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The coordinator of one run's Slurm jobs (an engine [`ShellBackend`]).
#[derive(Debug)]
pub struct Slurm {
    shared: Arc<Shared>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

/// What a resumed run finds for an attempt.
enum Adopted {
    Nothing,
    /// It finished while no kairos was watching.
    Finished(Box<Outcome>),
    /// Its job is queued or running: waited for under this id.
    Job(String),
}

impl Slurm {
    /// The coordinator for a run; `cancel` is the run's.
    pub fn new(config: Config, cancel: Cancel) -> Self {
        Slurm {
            shared: Arc::new(Shared {
                config,
                cancel,
                state: Mutex::default(),
                changed: Condvar::new(),
                stats: Stats::default(),
                adoptable: std::sync::OnceLock::new(),
            }),
            poller: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The jobs of the run that were waited for to their end (or their timeout): their ids,
    /// nodes and times, for `--trace`.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.shared.lock().done.clone()
    }

    /// Starts the poller, once.
    fn ensure_poller(&self) {
        let mut poller = self.poller.lock().unwrap_or_else(PoisonError::into_inner);
        if poller.is_none() {
            let shared = Arc::clone(&self.shared);
            *poller = std::thread::Builder::new()
                .name("kairos-slurm-poll".into())
                .spawn(move || poll::run(&shared))
                .ok();
        }
    }

    /// Starts waiting for job `id`, which runs `attempt`.
    fn track(&self, id: &str, dir: &Path, phase: Phase, attempt: &AttemptId<'_>, adopted: bool) {
        let mut state = self.shared.lock();
        let now = Instant::now();
        state.jobs.insert(
            id.to_string(),
            Job {
                dir: dir.to_path_buf(),
                record: JobRecord {
                    instance: attempt.instance.to_string(),
                    attempt: attempt.attempt,
                    job: id.to_string(),
                    nodes: None,
                    submitted: now,
                    started: (phase == Phase::Running).then_some(now),
                    adopted,
                },
                phase,
                over_since: None,
                state: None,
                end: None,
            },
        );
        drop(state);
        self.shared.changed.notify_all();
        self.ensure_poller();
    }

    /// Frees a slot.
    fn release(&self, state: &mut State) {
        state.in_flight = state.in_flight.saturating_sub(1);
        self.shared.changed.notify_all();
    }

    /// Stops waiting for job `id` and frees its slot; its record is kept for `--trace`.
    fn forget(&self, state: &mut State, id: &str) {
        if let Some(job) = state.jobs.remove(id) {
            state.done.push(job.record);
        }
        self.release(state);
    }

    /// On a resumed run: what an earlier process left for this attempt, if its wrapper is
    /// the one this call would write (the same command, environment and directory).
    fn adopt(
        &self,
        dir: &Path,
        script: &str,
        request: &Request,
        prepared: &Prepared,
        attempt: &AttemptId<'_>,
    ) -> Adopted {
        if !self.shared.config.adopt
            || std::fs::read_to_string(dir.join(wrapper::SCRIPT))
                .ok()
                .as_deref()
                != Some(script)
        {
            return Adopted::Nothing;
        }
        if let Some(outcome) = wrapper::result(dir, request, prepared) {
            self.shared.stats.adopted.fetch_add(1, Ordering::Relaxed);
            return Adopted::Finished(Box::new(outcome));
        }
        let script_path = dir.join(wrapper::SCRIPT).to_string_lossy().into_owned();
        let recorded = std::fs::read_to_string(dir.join(wrapper::JOB)).ok();
        let config = &self.shared.config;
        let adoptable = self.shared.adoptable.get_or_init(|| {
            self.shared
                .stats
                .status_queries
                .fetch_add(1, Ordering::Relaxed);
            commands::squeue(config.bin.as_deref(), &config.name, config.uid)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, l)| commands::phase(&l.state) != Phase::Over)
                .map(|(id, l)| (l.command, (id, l.state)))
                .collect()
        });
        let found = adoptable
            .get(&script_path)
            .filter(|(id, _)| recorded.as_deref().is_none_or(|r| r.trim() == id))
            .cloned();
        let Some((id, job_state)) = found else {
            return Adopted::Nothing;
        };
        self.shared.lock().in_flight += 1;
        self.shared.stats.adopted.fetch_add(1, Ordering::Relaxed);
        self.track(&id, dir, commands::phase(&job_state), attempt, true);
        Adopted::Job(id)
    }

    /// Takes a slot and submits the attempt; the job id, or the outcome of a call that
    /// could not be submitted (or was interrupted first).
    fn submit(
        &self,
        dir: &Path,
        script: &str,
        request: &Request,
        attempt: &AttemptId<'_>,
        cancel: &Cancel,
    ) -> Result<String, Box<Outcome>> {
        let config = &self.shared.config;
        wrapper::write(dir, script, request).map_err(|e| {
            Box::new(Outcome::failed(format!(
                "cannot write the call's files in the Slurm work directory: {e}"
            )))
        })?;
        let at = {
            let mut state = self.shared.lock();
            while state.in_flight >= config.max_in_flight {
                if cancel.requested() {
                    return Err(Box::new(Outcome::interrupted()));
                }
                state = self
                    .shared
                    .changed
                    .wait_timeout(state, poll::TICK)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            state.in_flight += 1;
            let now = Instant::now();
            let at = state.next_submit.map_or(now, |t| t.max(now));
            state.next_submit = Some(at + config.submit_gap);
            at
        };
        let fail = |outcome: Outcome| {
            self.release(&mut self.shared.lock());
            Err(Box::new(outcome))
        };
        if !cancel.wait(at.saturating_duration_since(Instant::now())) {
            return fail(Outcome::interrupted());
        }
        let args = self.sbatch_args(dir, request);
        let mut tries = 0;
        let id = loop {
            tries += 1;
            match commands::sbatch(config.bin.as_deref(), args.clone()) {
                Ok(id) => break id,
                Err(failure) if failure.transient && tries < config.submit_tries => {
                    self.shared
                        .stats
                        .submit_retries
                        .fetch_add(1, Ordering::Relaxed);
                    if !cancel.wait(config.submit_backoff * (1 << (tries - 1).min(6))) {
                        return fail(Outcome::interrupted());
                    }
                }
                Err(failure) => {
                    return fail(Outcome::failed(format!(
                        "cannot submit the call to Slurm: {failure}"
                    )));
                }
            }
        };
        self.shared.stats.submitted.fetch_add(1, Ordering::Relaxed);
        // The journal: a resumed run finds the job by this file (or by its script's path).
        let _ = std::fs::write(dir.join(wrapper::JOB), &id);
        self.track(&id, dir, Phase::Queued, attempt, false);
        Ok(id)
    }

    /// The `sbatch` command line of an attempt.
    fn sbatch_args(&self, dir: &Path, request: &Request) -> Vec<String> {
        let config = &self.shared.config;
        let mut args = vec![
            "--parsable".to_string(),
            "--no-requeue".into(),
            format!("--job-name={}", config.name),
            "--export=NONE".into(),
            format!("--chdir={}", dir.display()),
            // `%` starts a pattern in `--output`; `%%` is a `%`.
            format!(
                "--output={}",
                dir.join("slurm.out")
                    .display()
                    .to_string()
                    .replace('%', "%%")
            ),
        ];
        // The call's timeout is kairos's to enforce; Slurm's limit, a minute later, is the
        // backstop for when kairos is gone.
        let time = match (request.timeout, config.time) {
            (Some(t), _) => Some(minutes(t) + 1),
            (None, Some(t)) => Some(minutes(t)),
            (None, None) => None,
        };
        if let Some(minutes) = time {
            args.push(format!("--time={minutes}"));
        }
        args.extend(config.options.iter().cloned());
        args.push(dir.join(wrapper::SCRIPT).display().to_string());
        args
    }

    /// Waits until job `id` is over (or the call's timeout passes) and gives the outcome.
    fn wait(&self, id: &str, dir: &Path, request: &Request, prepared: &Prepared) -> Outcome {
        let mut state = self.shared.lock();
        let end = loop {
            let Some(job) = state.jobs.get(id) else {
                break End::Lost(commands::lost(None));
            };
            if let Some(end) = &job.end {
                break end.clone();
            }
            let deadline = request
                .timeout
                .zip(job.record.started)
                .and_then(|(t, started)| started.checked_add(t));
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.forget(&mut state, id);
                        drop(state);
                        commands::scancel(self.shared.config.bin.as_deref(), &[id.to_string()]);
                        return wrapper::timed_out(dir, request);
                    }
                    left
                }
                None => Duration::from_secs(3600),
            };
            state = self
                .shared
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        self.forget(&mut state, id);
        drop(state);
        match end {
            End::Status => wrapper::result(dir, request, prepared).unwrap_or_else(|| {
                wrapper::failed(
                    dir,
                    "the exit status of the Slurm job cannot be read".into(),
                )
            }),
            End::Lost(why) => wrapper::failed(dir, why),
            End::Interrupted => Outcome::interrupted(),
        }
    }
}

/// A duration in whole minutes, rounded up: how `sbatch --time` is written here.
fn minutes(duration: Duration) -> u128 {
    duration.as_millis().div_ceil(60_000).max(1)
}

impl ShellBackend for Slurm {
    fn run(&self, request: &Request, attempt: &AttemptId<'_>, cancel: &Cancel) -> Outcome {
        let prepared = match shell::prepare(request) {
            Ok(prepared) => prepared,
            Err(outcome) => return *outcome,
        };
        let config = &self.shared.config;
        let dir = wrapper::attempt_dir(&config.run_dir, attempt.instance, attempt.attempt);
        let env = wrapper::environment(&config.env, request);
        let script = wrapper::script(&dir, &config.cwd, &env, request, &prepared);
        let id = match self.adopt(&dir, &script, request, &prepared, attempt) {
            Adopted::Finished(outcome) => return *outcome,
            Adopted::Job(id) => id,
            Adopted::Nothing => match self.submit(&dir, &script, request, attempt, cancel) {
                Ok(id) => id,
                Err(outcome) => return *outcome,
            },
        };
        self.wait(&id, &dir, request, &prepared)
    }
}

impl Drop for Slurm {
    /// The run is over: the poller stops, and a job still waited for (a run that ended on an
    /// error) is cancelled.
    fn drop(&mut self) {
        let left: Vec<String> = {
            let mut state = self.shared.lock();
            state.stop = true;
            state.jobs.keys().cloned().collect()
        };
        self.shared.changed.notify_all();
        if let Some(poller) = self
            .poller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = poller.join();
        }
        if !left.is_empty() {
            commands::scancel(self.shared.config.bin.as_deref(), &left);
        }
    }
}

#[cfg(test)]
mod tests;
