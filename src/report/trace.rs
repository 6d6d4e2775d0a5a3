//! `kairos run --trace FILE`: where the time of a run went, as a Chrome trace event file
//! (`{"traceEvents": [...]}`, read by Perfetto and `chrome://tracing`).
//!
//! A [`Recorder`] is an engine observer: it keeps, per call attempt, when it started and
//! finished and on which thread, and when each approval was requested and decided. After the
//! run, [`Recorder::write`] turns that into events: a complete slice (`ph: "X"`, times in
//! microseconds since the run started) per attempt on the thread that ran it (the scheduler
//! for inline tools, a worker otherwise), a `backoff` slice between the attempts of a call
//! that was retried, a slice for the whole run on the scheduler's track, an async slice
//! (`ph: "b"`/`"e"`) per approval from request to decision, and thread names. Under the Slurm
//! executor an attempt's slice also names its job and node, and holds a `queued` slice from
//! submission until the job was seen running.
//!
//! These are the only wall-clock times kairos writes; the ledger has none
//! (`docs/determinism.md`). The trace holds ids, tool names and statuses, never a call's
//! input or output.

use crate::engine::{AttemptInfo, Lane, Observer};
use crate::exec::JobRecord;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One finished attempt.
struct Slice {
    instance: String,
    tool: String,
    attempt: u32,
    lane: Lane,
    start: Instant,
    end: Instant,
    failed: bool,
}

/// One approval: when it was requested, and when and how it was decided.
struct Approval {
    node: String,
    requested: Instant,
    decided: Option<(Instant, bool)>,
}

#[derive(Default)]
struct Recorded {
    /// The attempt each lane is running: a lane runs one call at a time.
    open: HashMap<Lane, Instant>,
    slices: Vec<Slice>,
    approvals: Vec<Approval>,
    /// Batch jobs that ran attempts, by instance and attempt.
    jobs: HashMap<(String, u32), JobRecord>,
}

/// Collects a run's timings (an engine [`Observer`]).
pub struct Recorder {
    origin: Instant,
    recorded: Mutex<Recorded>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose time zero is now: make it just before the run starts.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            recorded: Mutex::default(),
        }
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // An observer that panicked mid-update left nothing worse than a missing slice.
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the batch jobs that ran the run's attempts (an executor's, after the run).
    pub fn add_jobs(&self, jobs: impl IntoIterator<Item = JobRecord>) {
        let mut recorded = self.recorded();
        for job in jobs {
            recorded
                .jobs
                .insert((job.instance.clone(), job.attempt), job);
        }
    }

    /// Per node instance that ran a call, the time from its first attempt's start to its last
    /// attempt's end (retry waits included).
    pub fn durations(&self) -> HashMap<String, Duration> {
        let recorded = self.recorded();
        let mut spans: HashMap<&str, (Instant, Instant)> = HashMap::new();
        for s in &recorded.slices {
            spans
                .entry(s.instance.as_str())
                .and_modify(|(start, end)| {
                    *start = (*start).min(s.start);
                    *end = (*end).max(s.end);
                })
                .or_insert((s.start, s.end));
        }
        spans
            .into_iter()
            .map(|(id, (start, end))| (id.to_string(), end - start))
            .collect()
    }

    /// The trace as a JSON document; `title` names the process (`kairos run NAME`). Events
    /// are in time order; the run's slice ends now (an approval never decided ends with it).
    pub fn to_json(&self, title: &str) -> Value {
        let recorded = self.recorded();
        // Now, or the last observation if it is later (a clock read just before this one).
        let end = recorded
            .slices
            .iter()
            .map(|s| s.end)
            .chain(
                recorded
                    .approvals
                    .iter()
                    .filter_map(|a| a.decided.map(|d| d.0)),
            )
            .fold(Instant::now(), Instant::max);
        let pid = std::process::id();
        let us = |t: Instant| micros(t.saturating_duration_since(self.origin));
        let tid = |lane: Lane| match lane {
            Lane::Scheduler => 0,
            Lane::Worker(n) => n + 1,
            // After every worker's: a run has at most `--jobs` workers.
            Lane::Network(n) => 1_000_000 + n,
        };
        let mut timed: Vec<(f64, Value)> = Vec::new();
        timed.push((
            0.0,
            json!({"name": title, "cat": "run", "ph": "X", "ts": 0.0, "dur": us(end),
                   "pid": pid, "tid": 0}),
        ));
        // Slices in start order; per instance, the end of the previous attempt (for the
        // backoff slice before a retry).
        let mut slices: Vec<&Slice> = recorded.slices.iter().collect();
        slices.sort_by_key(|s| (s.start, s.lane));
        let mut previous: HashMap<&str, (Instant, Lane)> = HashMap::new();
        let mut lanes: BTreeSet<Lane> = BTreeSet::from([Lane::Scheduler]);
        for s in slices {
            lanes.insert(s.lane);
            if let Some(&(prev_end, lane)) = previous.get(s.instance.as_str())
                && lane == s.lane
                && s.attempt > 1
            {
                timed.push((
                    us(prev_end),
                    json!({"name": format!("{} backoff", s.instance), "cat": "retry",
                           "ph": "X", "ts": us(prev_end),
                           "dur": micros(s.start.saturating_duration_since(prev_end)),
                           "pid": pid, "tid": tid(s.lane),
                           "args": {"node": s.instance, "before_attempt": s.attempt}}),
                ));
            }
            previous.insert(s.instance.as_str(), (s.end, s.lane));
            let mut args = json!({"node": s.instance, "tool": s.tool, "attempt": s.attempt,
                                  "result": if s.failed { "failed" } else { "ok" }});
            let mut queued = None;
            if let Some(job) = recorded.jobs.get(&(s.instance.clone(), s.attempt)) {
                args["job"] = json!(job.job);
                args["job_nodes"] = json!(job.nodes);
                if job.adopted {
                    args["adopted"] = json!(true);
                }
                // Inside the attempt's slice: from submission until it was seen running (or
                // the attempt's end, for a job never seen running).
                let submitted = job.submitted.clamp(s.start, s.end);
                let running = job.started.unwrap_or(s.end).clamp(submitted, s.end);
                queued = Some((
                    us(submitted),
                    json!({"name": format!("{} queued", s.instance), "cat": "queue",
                           "ph": "X", "ts": us(submitted),
                           "dur": micros(running.saturating_duration_since(submitted)),
                           "pid": pid, "tid": tid(s.lane),
                           "args": {"node": s.instance, "job": job.job}}),
                ));
            }
            // The attempt before its queue time: a viewer nests a slice in the one before it.
            timed.push((
                us(s.start),
                json!({"name": s.instance, "cat": "attempt", "ph": "X", "ts": us(s.start),
                       "dur": micros(s.end.saturating_duration_since(s.start)),
                       "pid": pid, "tid": tid(s.lane), "args": args}),
            ));
            timed.extend(queued);
        }
        for (k, a) in recorded.approvals.iter().enumerate() {
            let name = format!("approval {}", a.node);
            let (decided, decision) = match a.decided {
                Some((at, approved)) => (at, if approved { "approved" } else { "rejected" }),
                None => (end, "pending"),
            };
            timed.push((
                us(a.requested),
                json!({"name": name, "cat": "approval", "ph": "b", "id": k + 1,
                       "ts": us(a.requested), "pid": pid, "tid": 0,
                       "args": {"node": a.node}}),
            ));
            timed.push((
                us(decided),
                json!({"name": name, "cat": "approval", "ph": "e", "id": k + 1,
                       "ts": us(decided), "pid": pid, "tid": 0,
                       "args": {"decision": decision}}),
            ));
            if a.decided.is_some() {
                timed.push((
                    us(decided),
                    json!({"name": format!("{} {decision}", a.node), "cat": "approval",
                           "ph": "i", "s": "t", "ts": us(decided), "pid": pid, "tid": 0}),
                ));
            }
        }
        timed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut events = vec![
            json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                                     "args": {"name": title}}),
        ];
        for lane in lanes {
            let name = match lane {
                Lane::Scheduler => "scheduler".to_string(),
                Lane::Worker(n) => format!("worker {n}"),
                Lane::Network(n) => format!("network {n}"),
            };
            events.push(
                json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid(lane),
                               "args": {"name": name}}),
            );
            events.push(json!({"name": "thread_sort_index", "ph": "M", "pid": pid,
                               "tid": tid(lane), "args": {"sort_index": tid(lane)}}));
        }
        events.extend(timed.into_iter().map(|(_, e)| e));
        json!({
            "traceEvents": events,
            "displayTimeUnit": "ms",
            "otherData": {"producer": format!("kairos {}", env!("CARGO_PKG_VERSION"))},
        })
    }

    /// Writes the trace to `out` (see [`Recorder::to_json`]).
    pub fn write(&self, title: &str, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer(&mut out, &self.to_json(title))?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// A duration in microseconds (the unit of trace events), to the nanosecond.
fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

impl Observer for Recorder {
    fn attempt_started(&self, info: &AttemptInfo<'_>, at: Instant) {
        self.recorded().open.insert(info.lane, at);
    }

    fn attempt_finished(&self, info: &AttemptInfo<'_>, failed: bool, at: Instant) {
        let mut recorded = self.recorded();
        let start = recorded.open.remove(&info.lane).unwrap_or(at);
        recorded.slices.push(Slice {
            instance: info.instance.to_string(),
            tool: info.tool.to_string(),
            attempt: info.attempt,
            lane: info.lane,
            start,
            end: at,
            failed,
        });
    }

    fn approval_requested(&self, node: &str, at: Instant) {
        self.recorded().approvals.push(Approval {
            node: node.to_string(),
            requested: at,
            decided: None,
        });
    }

    fn approval_decided(&self, node: &str, approved: bool, at: Instant) {
        let mut recorded = self.recorded();
        if let Some(a) = recorded
            .approvals
            .iter_mut()
            .rev()
            .find(|a| a.node == node && a.decided.is_none())
        {
            a.decided = Some((at, approved));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(instance: &str, attempt: u32, lane: Lane) -> AttemptInfo<'_> {
        AttemptInfo {
            instance,
            tool: "shell",
            attempt,
            lane,
        }
    }

    #[test]
    fn a_retried_call_shows_two_attempts_and_the_wait_between() {
        let r = Recorder::new();
        let t0 = r.origin;
        let ms = |n| t0 + Duration::from_millis(n);
        let lane = Lane::Worker(1);
        r.attempt_started(&info("flaky", 1, lane), ms(1));
        r.attempt_finished(&info("flaky", 1, lane), true, ms(3));
        r.attempt_started(&info("flaky", 2, lane), ms(8));
        r.attempt_finished(&info("flaky", 2, lane), false, ms(9));
        r.attempt_started(&info("echo", 1, Lane::Scheduler), ms(2));
        r.attempt_finished(&info("echo", 1, Lane::Scheduler), false, ms(2));
        let doc = r.to_json("kairos run t");
        let events = doc["traceEvents"].as_array().unwrap();
        let slices: Vec<(&str, &str, f64, f64, u64)> = events
            .iter()
            .filter(|e| e["ph"] == "X" && e["cat"] != "run")
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["cat"].as_str().unwrap(),
                    e["ts"].as_f64().unwrap(),
                    e["dur"].as_f64().unwrap(),
                    e["tid"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            slices,
            [
                ("flaky", "attempt", 1000.0, 2000.0, 2),
                ("echo", "attempt", 2000.0, 0.0, 0),
                ("flaky backoff", "retry", 3000.0, 5000.0, 2),
                ("flaky", "attempt", 8000.0, 1000.0, 2),
            ]
        );
        let threads: Vec<&str> = events
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(threads, ["scheduler", "worker 1"]);
        assert_eq!(r.durations()["flaky"], Duration::from_millis(8));
    }

    #[test]
    fn a_batch_jobs_id_node_and_queue_time_are_in_its_attempts_slice() {
        let r = Recorder::new();
        let t0 = r.origin;
        let ms = |n| t0 + Duration::from_millis(n);
        let lane = Lane::Worker(3);
        r.attempt_started(&info("big", 1, lane), ms(1));
        r.attempt_finished(&info("big", 1, lane), false, ms(40));
        r.attempt_started(&info("small", 1, lane), ms(41));
        r.attempt_finished(&info("small", 1, lane), false, ms(42));
        r.add_jobs([JobRecord {
            instance: "big".into(),
            attempt: 1,
            job: "4242".into(),
            nodes: Some("node07".into()),
            submitted: ms(2),
            started: Some(ms(12)),
            adopted: false,
        }]);
        let doc = r.to_json("kairos run t");
        let events = doc["traceEvents"].as_array().unwrap();
        let big = events
            .iter()
            .find(|e| e["name"] == "big" && e["cat"] == "attempt")
            .unwrap();
        assert_eq!(big["args"]["job"], "4242");
        assert_eq!(big["args"]["job_nodes"], "node07");
        let queued = events.iter().find(|e| e["name"] == "big queued").unwrap();
        assert_eq!(queued["cat"], "queue");
        assert_eq!(queued["ts"].as_f64(), Some(2000.0));
        assert_eq!(queued["dur"].as_f64(), Some(10000.0));
        assert_eq!(queued["tid"], big["tid"]);
        // A local attempt has no job.
        let small = events.iter().find(|e| e["name"] == "small").unwrap();
        assert!(small["args"].get("job").is_none());
        assert_eq!(events.iter().filter(|e| e["cat"] == "queue").count(), 1);
    }

    #[test]
    fn an_approval_is_an_async_slice_from_request_to_decision() {
        let r = Recorder::new();
        let t0 = r.origin;
        r.approval_requested("ship", t0 + Duration::from_millis(5));
        r.approval_requested("later", t0 + Duration::from_millis(5));
        r.approval_decided("ship", true, t0 + Duration::from_millis(50));
        let doc = r.to_json("kairos run t");
        let approvals: Vec<(&str, &str, f64)> = doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cat"] == "approval" && e["ph"] != "i")
            .map(|e| {
                (
                    e["name"].as_str().unwrap(),
                    e["ph"].as_str().unwrap(),
                    e["ts"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            &approvals[..3],
            [
                ("approval ship", "b", 5000.0),
                ("approval later", "b", 5000.0),
                ("approval ship", "e", 50000.0),
            ]
        );
        // Never decided: it waits until the end of the trace.
        assert_eq!(approvals[3].0, "approval later");
        assert_eq!(approvals[3].1, "e");
        let pending = doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["ph"] == "e" && e["name"] == "approval later")
            .unwrap();
        assert_eq!(pending["args"]["decision"], "pending");
    }
}
