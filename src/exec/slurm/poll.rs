//! The poller: the one thread of a run that asks Slurm about its jobs. Each round is one
//! `squeue --name RUN` for every job of the run; the interval starts at the configured
//! `poll` and grows by half (to [`super::MAX_POLL`]) while nothing finishes, so a run of long
//! jobs asks rarely and a run of short ones is not kept waiting. Between rounds it looks for
//! exit files (a file system look, not a query to the controller): a job whose wrapper wrote
//! its exit status is over, and the next call's job can be submitted at once. `sacct` is asked only about
//! jobs the controller has forgotten without their exit file having appeared.

use super::commands::{self, Phase};
use super::{End, Shared, State, wrapper};
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the poller looks at the run's interrupts between queries (no query is made).
pub const TICK: Duration = Duration::from_millis(200);

/// How often the exit files of the jobs waited for are looked for, between status queries:
/// a job whose exit file is there is over, whatever the controller has said so far.
const FILES: Duration = Duration::from_millis(500);

pub fn run(shared: &Shared) {
    let config = &shared.config;
    let mut interval = config.poll;
    let mut next: Option<Instant> = None;
    let mut next_files = Instant::now();
    // Whether a job ended (by its exit file) since the last status query.
    let mut ended = false;
    let mut state = shared.lock();
    loop {
        if state.stop {
            return;
        }
        // Also after the interrupt itself: a job submitted just after it is cancelled too.
        let count = shared.cancel.count();
        let ids = if count > 0 {
            interrupt(&mut state, count >= 2)
        } else {
            Vec::new()
        };
        if !ids.is_empty() {
            shared.changed.notify_all();
            drop(state);
            shared
                .stats
                .cancelled
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            commands::scancel(config.bin.as_deref(), &ids);
            state = shared.lock();
            continue;
        }
        let now = Instant::now();
        if !state.jobs.values().any(|j| j.end.is_none()) {
            next = None;
            state = wait(shared, state, TICK);
            continue;
        }
        if now >= next_files {
            let (after, found) = exit_files(shared, state);
            state = after;
            ended |= found;
            next_files = Instant::now() + config.poll.min(FILES);
        }
        // The first job of a while is asked about once it has had a moment to start.
        let at = *next.get_or_insert(now + interval);
        if now < at {
            let sleep = at.min(next_files).saturating_duration_since(now).min(TICK);
            state = wait(shared, state, sleep);
            continue;
        }
        drop(state);
        let listed = commands::squeue(config.bin.as_deref(), &config.name, config.uid);
        shared.stats.status_queries.fetch_add(1, Ordering::Relaxed);
        state = shared.lock();
        let finished = match listed {
            Ok(listed) => apply(&mut state, &listed, config.grace),
            // Nothing learnt: ask again later, as if nothing had finished.
            Err(_) => false,
        };
        let forgotten = forgotten(&state, config.grace);
        if !forgotten.is_empty() {
            drop(state);
            let states = commands::sacct(config.bin.as_deref(), &forgotten).unwrap_or_default();
            shared
                .stats
                .accounting_queries
                .fetch_add(1, Ordering::Relaxed);
            state = shared.lock();
            for id in &forgotten {
                if let Some(job) = state.jobs.get_mut(id)
                    && job.end.is_none()
                {
                    // The last state the controller listed, when it was final.
                    let last = job
                        .state
                        .as_ref()
                        .filter(|s| commands::phase(s) == Phase::Over);
                    let known = states.get(id).or(last);
                    job.end = Some(End::Lost(commands::lost(known.map(String::as_str))));
                }
            }
        }
        let finished = finished || !forgotten.is_empty() || std::mem::take(&mut ended);
        interval = if finished {
            config.poll
        } else {
            interval.mul_f64(1.5).min(config.max_poll)
        };
        next = Some(Instant::now() + interval);
        shared.changed.notify_all();
    }
}

/// Waits up to `sleep` for a change (a job added, an interrupt seen at the next tick).
fn wait<'a>(
    shared: &'a Shared,
    state: std::sync::MutexGuard<'a, State>,
    sleep: Duration,
) -> std::sync::MutexGuard<'a, State> {
    shared
        .changed
        .wait_timeout(state, sleep)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

/// Looks for the exit files of the jobs waited for (without the lock: on a network file
/// system a look may take a while); a job whose file is there has ended. Returns whether one
/// had.
fn exit_files<'a>(
    shared: &'a Shared,
    state: std::sync::MutexGuard<'a, State>,
) -> (std::sync::MutexGuard<'a, State>, bool) {
    let dirs: Vec<(String, std::path::PathBuf)> = state
        .jobs
        .iter()
        .filter(|(_, j)| j.end.is_none())
        .map(|(id, j)| (id.clone(), j.dir.clone()))
        .collect();
    drop(state);
    let done: Vec<String> = dirs
        .into_iter()
        .filter(|(_, dir)| wrapper::finished(dir))
        .map(|(id, _)| id)
        .collect();
    let mut state = shared.lock();
    let mut ended = false;
    for id in done {
        if let Some(job) = state.jobs.get_mut(&id)
            && job.end.is_none()
        {
            job.end = Some(End::Status);
            ended = true;
        }
    }
    if ended {
        shared.changed.notify_all();
    }
    (state, ended)
}

/// Marks the jobs an interrupt ends (the first: those not started yet; the second: all) and
/// returns their ids, for `scancel`.
fn interrupt(state: &mut State, all: bool) -> Vec<String> {
    let mut ids: Vec<String> = state
        .jobs
        .iter_mut()
        .filter(|(_, job)| job.end.is_none() && (all || job.phase == Phase::Queued))
        .map(|(id, job)| {
            job.end = Some(End::Interrupted);
            id.clone()
        })
        .collect();
    ids.sort();
    ids
}

/// Updates every waited-for job from one listing; returns whether any ended.
fn apply(
    state: &mut State,
    listed: &std::collections::HashMap<String, commands::Listed>,
    grace: Duration,
) -> bool {
    let now = Instant::now();
    let mut ended = false;
    for (id, job) in state.jobs.iter_mut().filter(|(_, j)| j.end.is_none()) {
        let phase = match listed.get(id) {
            Some(l) => {
                job.state = Some(l.state.clone());
                if !l.nodes.is_empty() {
                    job.record.nodes = Some(l.nodes.clone());
                }
                commands::phase(&l.state)
            }
            // Gone from the controller's memory: over.
            None => Phase::Over,
        };
        if phase == Phase::Running && job.record.started.is_none() {
            job.record.started = Some(now);
        }
        job.phase = phase;
        if phase != Phase::Over {
            continue;
        }
        // Over: its command ran to the end when its exit file is there. Without one, wait for
        // the file system a while before `forgotten` asks why.
        if wrapper::finished(&job.dir) {
            job.end = Some(End::Status);
            ended = true;
        } else {
            let since = *job.over_since.get_or_insert(now);
            let known = job.state.as_deref().filter(|_| listed.contains_key(id));
            if now.duration_since(since) >= grace
                && let Some(state) = known
            {
                job.end = Some(End::Lost(commands::lost(Some(state))));
                ended = true;
            }
        }
    }
    ended
}

/// The jobs over for longer than the grace period without an exit file whose final state the
/// controller no longer lists: accounting is asked about them.
fn forgotten(state: &State, grace: Duration) -> Vec<String> {
    let now = Instant::now();
    let mut ids: Vec<String> = state
        .jobs
        .iter()
        .filter(|(_, j)| {
            j.end.is_none()
                && j.phase == Phase::Over
                && j.over_since.is_some_and(|s| now.duration_since(s) >= grace)
        })
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids
}
