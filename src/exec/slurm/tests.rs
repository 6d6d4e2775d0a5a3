//! The coordinator against fake Slurm programs (`tests/fixtures/slurm-fake`), which start each
//! job's wrapper in the background, so exit files are real.

use super::*;
use crate::exec::AttemptId;
use crate::tools::shell::Command;
use std::path::Path;
use std::sync::Arc;

/// A fake cluster in a directory of its own: the programs in `bin/`, their logs in
/// `bin/state/`, the work directory in `work/`.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fakes = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slurm-fake");
        for name in ["sbatch", "squeue", "sacct", "scancel"] {
            std::fs::copy(fakes.join(name), bin.join(name)).unwrap();
        }
        Fake { dir }
    }

    fn config(&self, adopt: bool) -> Config {
        let mut config = Config::new(
            &ExecutorSpec::default(),
            &self.dir.path().join("run.jsonl"),
            &[],
            adopt,
        )
        .unwrap();
        config.run_dir = self.dir.path().join("work");
        config.cwd = self.dir.path().to_path_buf();
        config.bin = Some(self.dir.path().join("bin"));
        config.poll = Duration::from_millis(100);
        config.max_poll = Duration::from_millis(400);
        config.grace = Duration::from_millis(300);
        config.submit_backoff = Duration::from_millis(10);
        config.submit_gap = Duration::ZERO;
        config
    }

    fn slurm(&self, adopt: bool, cancel: &Cancel) -> Arc<Slurm> {
        Arc::new(Slurm::new(self.config(adopt), cancel.clone()))
    }

    /// The lines a fake program logged: one per call.
    fn log(&self, program: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(format!("bin/state/{program}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn line(text: &str) -> Request {
    Request {
        command: Command::Line(text.into()),
        env: vec![("WHO".into(), "world".into())],
        cwd: None,
        stdin: None,
        timeout: None,
        own_path: false,
    }
}

fn run(slurm: &Slurm, request: &Request, instance: &str) -> Outcome {
    slurm.run(
        request,
        &AttemptId {
            instance,
            attempt: 1,
        },
        &Cancel::default(),
    )
}

#[test]
fn a_finished_job_gives_the_outcome_the_local_runner_gives() {
    let fake = Fake::new();
    let slurm = fake.slurm(false, &Cancel::default());
    let mut request = line("printf 'hello %s\\n' \"$WHO\"; cat; echo oops >&2; exit 2");
    request.stdin = Some("typed\n".into());
    request.cwd = Some(fake.dir.path().to_path_buf());
    let remote = run(&slurm, &request, "say");
    let local = shell::run(&request, &Cancel::default());
    assert_eq!(remote, local);
    assert_eq!(remote.stdout.unwrap().text, "hello world\ntyped\n");
    assert_eq!(remote.exit_code, Some(2));
    let submitted = fake.log("sbatch");
    assert_eq!(submitted.len(), 1);
    for option in [
        "--parsable",
        "--no-requeue",
        "--export=NONE",
        "--job-name=kairos-",
    ] {
        assert!(submitted[0].contains(option), "{option}: {submitted:?}");
    }
}

#[test]
fn a_socket_time_out_on_submit_is_tried_again() {
    let fake = Fake::new();
    let slurm = fake.slurm(false, &Cancel::default());
    let outcome = run(&slurm, &line("echo fake-socket-timeout"), "flaky");
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.output, "fake-socket-timeout");
    assert_eq!(fake.log("sbatch").len(), 2);
    assert_eq!(slurm.stats().submit_retries.load(Ordering::Relaxed), 1);
}

#[test]
fn jobs_that_end_without_an_exit_file_are_clear_errors() {
    let fake = Fake::new();
    let slurm = fake.slurm(false, &Cancel::default());
    let cases = [
        ("echo fake-timeout", "time limit"),
        ("echo fake-node-fail", "node failed"),
        ("echo fake-forget", "out of memory"),
    ];
    let errors: Vec<Outcome> = std::thread::scope(|s| {
        let slurm = &slurm;
        let threads: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, (cmd, _))| s.spawn(move || run(slurm, &line(cmd), &format!("n{i}"))))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for ((_, why), outcome) in cases.iter().zip(&errors) {
        let error = outcome.error.as_deref().unwrap();
        assert!(error.contains(why), "{error}");
        assert_eq!(outcome.exit_code, None);
    }
    // Accounting is asked only about the job the controller forgot, and once.
    assert_eq!(fake.log("sacct").len(), 1);
}

#[test]
fn status_is_one_query_per_interval_for_all_the_jobs() {
    let fake = Fake::new();
    let slurm = fake.slurm(false, &Cancel::default());
    let started = Instant::now();
    let jobs = 12;
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let slurm = &slurm;
        let threads: Vec<_> = (0..jobs)
            .map(|i| {
                s.spawn(move || {
                    run(
                        slurm,
                        &line(&format!("sleep 1; echo {i}")),
                        &format!("n{i}"),
                    )
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome.output, serde_json::json!(i.to_string()));
    }
    let queries = fake.log("squeue");
    // Every query is for the run's name, none for a job.
    assert!(
        queries
            .iter()
            .all(|q| q.contains("--name=kairos-") && !q.contains("--jobs"))
    );
    // At most one query per (shortest) interval, however many jobs there are.
    let intervals = elapsed.as_millis() / 100 + 1;
    assert!(
        (queries.len() as u128) <= intervals,
        "{} queries in {elapsed:?}",
        queries.len()
    );
    assert_eq!(
        slurm.stats().status_queries.load(Ordering::Relaxed),
        queries.len() as u64
    );
}

#[test]
fn at_most_max_in_flight_jobs_are_submitted_at_once() {
    let fake = Fake::new();
    let mut config = fake.config(false);
    config.max_in_flight = 2;
    let slurm = Arc::new(Slurm::new(config, Cancel::default()));
    std::thread::scope(|s| {
        for i in 0..5 {
            let slurm = &slurm;
            s.spawn(move || {
                let outcome = run(slurm, &line("sleep 0.2"), &format!("n{i}"));
                assert_eq!(outcome.error, None);
                let in_flight = slurm.shared.lock().in_flight;
                assert!(in_flight <= 2, "{in_flight}");
            });
        }
    });
    assert_eq!(fake.log("sbatch").len(), 5);
    assert_eq!(slurm.shared.lock().in_flight, 0);
}

#[test]
fn a_first_interrupt_cancels_the_queued_jobs_in_one_scancel() {
    let fake = Fake::new();
    let cancel = Cancel::default();
    let slurm = fake.slurm(false, &cancel);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let (slurm, cancel) = (&slurm, &cancel);
                s.spawn(move || {
                    slurm.run(
                        &line("echo fake-pending"),
                        &AttemptId {
                            instance: &format!("n{i}"),
                            attempt: 1,
                        },
                        cancel,
                    )
                })
            })
            .collect();
        // Once all three are submitted and seen queued, Ctrl-C.
        while fake.log("squeue").is_empty() || slurm.shared.lock().jobs.len() < 3 {
            std::thread::sleep(Duration::from_millis(20));
        }
        cancel.interrupt();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(outcomes.iter().all(Outcome::is_interrupted), "{outcomes:?}");
    // The run's end waits for the poller's `scancel`.
    drop(slurm);
    let cancelled = fake.log("scancel");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].split(' ').count(), 3);
}

#[test]
fn a_timeout_cancels_the_job_and_reads_as_a_local_timeout() {
    let fake = Fake::new();
    let slurm = fake.slurm(false, &Cancel::default());
    let mut request = line("echo started; sleep 30");
    request.timeout = Some(Duration::from_millis(300));
    let outcome = run(&slurm, &request, "slow");
    assert_eq!(outcome.error.as_deref(), Some("timed out after 300ms"));
    assert_eq!(outcome.exit_code, None);
    assert_eq!(fake.log("scancel").len(), 1);
    // Slurm's own limit is the backstop, a minute past kairos's.
    let submitted = fake.log("sbatch");
    assert!(submitted[0].contains("--time=2 "), "{submitted:?}");
}

#[test]
fn a_resumed_run_adopts_the_job_an_earlier_process_left_running() {
    let fake = Fake::new();
    let request = line("sleep 0.5; echo adopted");
    // An earlier kairos wrote the attempt, submitted it and died.
    let earlier = fake.config(false);
    let dir = wrapper::attempt_dir(&earlier.run_dir, "step", 1);
    let prepared = shell::prepare(&request).unwrap();
    let env = wrapper::environment(&earlier.env, &request);
    let script = wrapper::script(&dir, &earlier.cwd, &env, &request, &prepared);
    wrapper::write(&dir, &script, &request).unwrap();
    let args = vec![dir.join(wrapper::SCRIPT).display().to_string()];
    let id = commands::sbatch(earlier.bin.as_deref(), args).unwrap();
    std::fs::write(dir.join(wrapper::JOB), &id).unwrap();

    let slurm = fake.slurm(true, &Cancel::default());
    let outcome = run(&slurm, &request, "step");
    assert_eq!(outcome.output, "adopted");
    assert_eq!(fake.log("sbatch").len(), 1, "submitted again");
    assert_eq!(slurm.stats().adopted.load(Ordering::Relaxed), 1);

    // A finished attempt is taken as it is; another command is not adopted.
    let again = fake.slurm(true, &Cancel::default());
    assert_eq!(run(&again, &request, "step").output, "adopted");
    assert_eq!(fake.log("sbatch").len(), 1);
    let other = run(&again, &line("echo other"), "step");
    assert_eq!(other.output, "other");
    assert_eq!(fake.log("sbatch").len(), 2);
}

#[test]
fn a_fresh_run_never_adopts() {
    let fake = Fake::new();
    let slurm = fake.slurm(false, &Cancel::default());
    assert_eq!(run(&slurm, &line("echo one"), "step").output, "one");
    let next = fake.slurm(false, &Cancel::default());
    assert_eq!(run(&next, &line("echo one"), "step").output, "one");
    assert_eq!(fake.log("sbatch").len(), 2);
}

#[test]
fn a_running_job_finishes_after_one_interrupt_and_is_cancelled_by_a_second() {
    let fake = Fake::new();
    let cancel = Cancel::default();
    let slurm = fake.slurm(false, &cancel);
    let running = || {
        let state = slurm.shared.lock();
        state.jobs.len() == 1 && state.jobs.values().all(|j| j.phase == Phase::Running)
    };
    std::thread::scope(|s| {
        let (slurm, cancel) = (&slurm, &cancel);
        let call = s.spawn(move || {
            slurm.run(
                &line("sleep 30"),
                &AttemptId {
                    instance: "long",
                    attempt: 1,
                },
                cancel,
            )
        });
        while !running() {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The first lets it run, as it lets a local command run.
        cancel.interrupt();
        std::thread::sleep(Duration::from_millis(500));
        assert!(fake.log("scancel").is_empty());
        assert!(!call.is_finished());
        cancel.interrupt();
        assert!(call.join().unwrap().is_interrupted());
    });
    drop(slurm);
    assert_eq!(fake.log("scancel").len(), 1);
}
