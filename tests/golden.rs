//! Golden ledgers: the bytes of the ledger format, pinned by committed fixtures.
//!
//! Each scenario under `tests/fixtures/golden/` is a workflow and the ledgers the current
//! release writes for it: full runs, a sibling run to diff against, paused, torn, partly
//! committed and interrupted ledgers, with the state `kairos replay` rebuilds from each, the
//! `kairos diff` reports between them, and a signature made with a committed test key. The tests
//! prove that after any change to the engine, the events or the tools:
//!
//! - new runs of each workflow write the committed ledgers byte for byte, at `--jobs 1` and
//!   `--jobs 8`, in directories of different names;
//! - every committed ledger still replays (`--check`, the rebuilt state), verifies (chain,
//!   envelope and SSH signature under the committed key) and diffs as committed;
//! - paused, torn, partly committed and interrupted ledgers resume to the committed full ones;
//! - together the ledgers hold every event kind of `kairos.ledger/1`.
//!
//! Nothing is regenerated unless `KAIROS_UPDATE_GOLDEN=1` is set: then the fixtures are
//! rewritten from the current binary (see `tests/fixtures/golden/README.md`).
//!
//! `tests/fixtures/release-0.1/` holds the same scenarios as the first release (0.1.0) wrote
//! them. They are never rewritten: the tests in [`previous_release`] prove that ledgers of
//! that release still replay, resume, verify and diff as they did, although new runs now write
//! some bytes differently (templates write values JSON-style, and `RunStart` says so).

use crate::common::{Output, Test, root, spawn};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every event kind of `kairos.ledger/1`, as the library defines them: a kind added there
/// without a golden ledger that holds it fails `fixtures_cover_every_event_kind`.
const EVENT_KINDS: [&str; 20] = kairos::ledger::event::KINDS;

/// How a committed ledger is made. A ledger's first recipe writes it under
/// `KAIROS_UPDATE_GOLDEN=1`; every recipe must reproduce it.
enum Recipe {
    /// `kairos run workflow.yaml --ledger NAME ARGS`, exiting with `code`.
    Run {
        args: &'static [&'static str],
        code: i32,
    },
    /// The committed ledger `from`, continued with `kairos run workflow.yaml --resume NAME ARGS`.
    Resume {
        from: &'static str,
        args: &'static [&'static str],
        code: i32,
    },
    /// A prefix of the committed `ledger.jsonl`, as a crash leaves it.
    Cut(Cut),
    /// A run interrupted (SIGINT) while its node `wait` runs.
    Interrupt,
}

#[derive(Clone, Copy)]
enum Cut {
    /// The last `ToolOutput` line cut in its middle: a crash during a write.
    Torn,
    /// Everything up to the first `Retry` line: a node whose events were only partly written.
    Partial,
}

struct Ledger {
    name: &'static str,
    recipes: &'static [Recipe],
}

struct Scenario {
    name: &'static str,
    /// Environment of every `kairos` run of the scenario.
    env: &'static [(&'static str, &'static str)],
    /// Files created in the run directory before every run (not before an interrupted one).
    setup: &'static [&'static str],
    ledgers: &'static [Ledger],
    /// Pairs of ledgers compared with `kairos diff --format json`.
    diffs: &'static [(&'static str, &'static str)],
}

const CORE_ARGS: &[&str] = &["--input", "who=golden", "--input", "threshold=2"];
const APPROVE_ALL: &[&str] = &[
    "--approve",
    "release",
    "--approve",
    "publish",
    "--approver",
    "alice",
];
const APPROVE_RELEASE: &[&str] = &["--approve", "release", "--approver", "alice"];
const APPROVE_PUBLISH: &[&str] = &["--approve", "publish", "--approver", "alice"];
const REJECT: &[&str] = &[
    "--reject",
    "release",
    "--approver",
    "bob",
    "--reason",
    "not today",
];

const fn run(args: &'static [&'static str], code: i32) -> Recipe {
    Recipe::Run { args, code }
}

const fn resume(from: &'static str, args: &'static [&'static str], code: i32) -> Recipe {
    Recipe::Resume { from, args, code }
}

const fn ledger(name: &'static str, recipes: &'static [Recipe]) -> Ledger {
    Ledger { name, recipes }
}

/// The scenarios; `tests/fixtures/golden/README.md` says what each covers.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "core",
        env: &[],
        setup: &[],
        ledgers: &[
            ledger(
                "ledger.jsonl",
                &[
                    run(CORE_ARGS, 0),
                    resume("torn.jsonl", CORE_ARGS, 0),
                    resume("partial.jsonl", CORE_ARGS, 0),
                ],
            ),
            ledger(
                "sibling.jsonl",
                &[run(
                    &[
                        "--input",
                        "who=sibling",
                        "--input",
                        "threshold=5",
                        "--seed",
                        "7",
                    ],
                    0,
                )],
            ),
            ledger("torn.jsonl", &[Recipe::Cut(Cut::Torn)]),
            ledger("partial.jsonl", &[Recipe::Cut(Cut::Partial)]),
        ],
        diffs: &[("ledger.jsonl", "sibling.jsonl")],
    },
    Scenario {
        name: "approval",
        env: &[],
        setup: &[],
        ledgers: &[
            ledger(
                "ledger.jsonl",
                &[
                    run(APPROVE_ALL, 0),
                    resume("paused.jsonl", APPROVE_ALL, 0),
                    resume("paused-gate.jsonl", APPROVE_PUBLISH, 0),
                ],
            ),
            ledger("paused.jsonl", &[run(&[], 4)]),
            ledger(
                "paused-gate.jsonl",
                &[
                    run(APPROVE_RELEASE, 4),
                    resume("paused.jsonl", APPROVE_RELEASE, 4),
                ],
            ),
            ledger(
                "sibling.jsonl",
                &[run(REJECT, 1), resume("paused.jsonl", REJECT, 1)],
            ),
        ],
        diffs: &[
            ("ledger.jsonl", "sibling.jsonl"),
            ("paused.jsonl", "ledger.jsonl"),
        ],
    },
    Scenario {
        name: "policy",
        env: &[("GOLDEN_TOKEN", "golden-token-value")],
        setup: &[],
        ledgers: &[
            ledger("ledger.jsonl", &[run(&["--policy", "policy.yaml"], 3)]),
            ledger("sibling.jsonl", &[run(&[], 3)]),
        ],
        diffs: &[("ledger.jsonl", "sibling.jsonl")],
    },
    Scenario {
        name: "audit",
        env: &[],
        setup: &[],
        ledgers: &[ledger("ledger.jsonl", &[run(&[], 0)])],
        diffs: &[],
    },
    Scenario {
        name: "interrupted",
        env: &[],
        setup: &["go"],
        ledgers: &[
            ledger(
                "ledger.jsonl",
                &[run(&[], 0), resume("interrupted.jsonl", &[], 0)],
            ),
            ledger("interrupted.jsonl", &[Recipe::Interrupt]),
        ],
        diffs: &[("interrupted.jsonl", "ledger.jsonl")],
    },
    Scenario {
        name: "loops",
        env: &[],
        setup: &[],
        ledgers: &[ledger("ledger.jsonl", &[run(&[], 0)])],
        diffs: &[],
    },
];

fn updating() -> bool {
    std::env::var_os("KAIROS_UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

thread_local! {
    /// The fixtures this test thread checks: the current golden files, or the previous
    /// release's (see [`previous_release`]).
    static FIXTURES: std::cell::Cell<&'static str> = const { std::cell::Cell::new("golden") };
}

fn golden_dir() -> PathBuf {
    root().join("tests/fixtures").join(FIXTURES.get())
}

impl Scenario {
    fn dir(&self) -> PathBuf {
        golden_dir().join(self.name)
    }

    /// A committed file of the scenario.
    #[track_caller]
    fn read(&self, name: &str) -> Vec<u8> {
        let path = self.dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (KAIROS_UPDATE_GOLDEN=1 writes the golden files)",
                path.display()
            )
        })
    }

    fn has_org_policy(&self) -> bool {
        self.dir().join("policy.yaml").exists()
    }

    /// Writes the workflow, the organisation policy and (with `setup`) the setup files into
    /// `dir`, as a run of the scenario needs them.
    fn prepare(&self, dir: &Path, setup: bool) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("workflow.yaml"), self.read("workflow.yaml")).unwrap();
        if self.has_org_policy() {
            std::fs::write(dir.join("policy.yaml"), self.read("policy.yaml")).unwrap();
        }
        // A workflow the scenario's workflow calls (`workflow:` nodes).
        if self.dir().join("called.yaml").exists() {
            std::fs::write(dir.join("called.yaml"), self.read("called.yaml")).unwrap();
        }
        if setup {
            for name in self.setup {
                std::fs::write(dir.join(name), "").unwrap();
            }
        }
    }

    /// Copies committed files into `dir`.
    fn copy(&self, dir: &Path, names: &[&str]) {
        for name in names {
            std::fs::write(dir.join(name), self.read(name)).unwrap();
        }
    }

    /// Runs `kairos ARGS` in `dir` with the scenario's environment.
    fn kairos(&self, dir: &Path, args: &[&str]) -> Output {
        let mut t = Test::new().args(args);
        for (k, v) in self.env {
            t = t.env(k, v);
        }
        t.run_in(dir)
    }

    /// The ledgers a complete run wrote (paused ones included): those `replay --check` takes.
    fn complete(&self) -> impl Iterator<Item = &Ledger> {
        self.ledgers
            .iter()
            .filter(|l| matches!(l.recipes[0], Recipe::Run { .. }))
    }

    /// Every committed ledger that is read whole (all but the torn one).
    fn readable(&self) -> impl Iterator<Item = &Ledger> {
        self.ledgers
            .iter()
            .filter(|l| !matches!(l.recipes[0], Recipe::Cut(Cut::Torn)))
    }

    fn line_count(&self, ledger: &str) -> usize {
        self.read(ledger).iter().filter(|&&b| b == b'\n').count()
    }
}

/// The scenarios, after rewriting their golden files when `KAIROS_UPDATE_GOLDEN=1` (once per
/// test process, before any test reads them).
/// How many of [`SCENARIOS`] the release-0.1 fixtures hold: the ones after them (loops and
/// calls) came later.
const RELEASE_0_1_SCENARIOS: usize = 5;

/// Event kinds added after release 0.1, which its ledgers cannot hold.
const ADDED_AFTER_RELEASE_0_1: &[&str] = &["LoopIteration", "WorkflowCall"];

fn scenarios() -> &'static [Scenario] {
    if FIXTURES.get() == "release-0.1" {
        return &SCENARIOS[..RELEASE_0_1_SCENARIOS];
    }
    static UPDATED: OnceLock<()> = OnceLock::new();
    // A previous release's fixtures are never rewritten.
    if updating() && FIXTURES.get() == "golden" {
        UPDATED.get_or_init(|| {
            update_keys();
            for s in SCENARIOS {
                for l in s.ledgers {
                    let bytes = reproducible(s, l.name, &l.recipes[0])
                        .unwrap_or_else(|e| panic!("{}/{}: {e}", s.name, l.name));
                    std::fs::write(s.dir().join(l.name), bytes).unwrap();
                }
                let t = Test::new();
                let signed = sign(s, t.path());
                for (name, bytes) in signed {
                    std::fs::write(s.dir().join(name), bytes).unwrap();
                }
            }
        });
    }
    SCENARIOS
}

/// Makes the test key pair once; it is kept from then on (every envelope depends on it).
fn update_keys() {
    let keys = golden_dir().join("keys");
    if keys.join("golden.key").exists() {
        return;
    }
    std::fs::create_dir_all(&keys).unwrap();
    let t = Test::new();
    Test::new()
        .args(["keygen", "--out", "golden"])
        .run_in(t.path())
        .code(0);
    for name in ["golden.key", "golden.pub", "golden.pub.ssh"] {
        std::fs::copy(t.path().join(name), keys.join(name)).unwrap();
    }
    let ssh = std::fs::read_to_string(keys.join("golden.pub.ssh")).unwrap();
    std::fs::write(
        keys.join("allowed_signers"),
        format!("golden@kairos.test namespaces=\"ledger@kairos\" {ssh}"),
    )
    .unwrap();
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(golden_dir().join("keys").join(name))
        .unwrap_or_else(|e| panic!("keys/{name}: {e} (KAIROS_UPDATE_GOLDEN=1 makes the test key)"))
}

/// Signs the committed `ledger.jsonl` in `dir` with the test key (`--ssh` too); returns the
/// envelope and the SSH signature.
fn sign(s: &Scenario, dir: &Path) -> [(&'static str, Vec<u8>); 2] {
    s.copy(dir, &["ledger.jsonl"]);
    std::fs::write(dir.join("golden.key"), key_file("golden.key")).unwrap();
    s.kairos(
        dir,
        &["sign", "ledger.jsonl", "--key", "golden.key", "--ssh"],
    )
    .code(0);
    ["ledger.jsonl.intoto.json", "ledger.jsonl.sig"]
        .map(|name| (name, std::fs::read(dir.join(name)).unwrap()))
}

/// Makes `name` with `recipe` twice, at `--jobs 1` in a fresh directory and at `--jobs 8` in
/// a directory with another path (nested, with a space), and requires the same bytes.
fn reproducible(s: &Scenario, name: &str, recipe: &Recipe) -> Result<Vec<u8>, String> {
    let (a, b) = (Test::new(), Test::new());
    let one = make(s, name, recipe, a.path(), 1)?;
    let other = b.path().join("another dir").join(s.name);
    let eight = make(s, name, recipe, &other, 8)?;
    same("--jobs 1", &one, "--jobs 8, another directory", &eight)?;
    Ok(one)
}

/// Makes the ledger `name` in `dir` with `recipe` at `--jobs jobs`.
fn make(
    s: &Scenario,
    name: &str,
    recipe: &Recipe,
    dir: &Path,
    jobs: u32,
) -> Result<Vec<u8>, String> {
    let jobs = jobs.to_string();
    let (args, code) = match recipe {
        Recipe::Cut(cut) => return Ok(cut_ledger(&s.read("ledger.jsonl"), *cut)),
        Recipe::Interrupt => {
            s.prepare(dir, false);
            return Ok(interrupt(dir, name, &jobs));
        }
        Recipe::Run { args, code } => {
            s.prepare(dir, true);
            let mut all = vec!["run", "workflow.yaml", "-q", "--ledger", name];
            all.extend_from_slice(args);
            (all, *code)
        }
        Recipe::Resume { from, args, code } => {
            s.prepare(dir, true);
            std::fs::write(dir.join(name), s.read(from)).unwrap();
            let mut all = vec!["run", "workflow.yaml", "-q", "--resume", name];
            all.extend_from_slice(args);
            (all, *code)
        }
    };
    let mut all = args;
    all.extend_from_slice(&["--jobs", &jobs]);
    let out = s.kairos(dir, &all);
    if out.code != code {
        return Err(format!(
            "`kairos {}` exited {} (expected {code})\nstderr:\n{}",
            all.join(" "),
            out.code,
            out.stderr
        ));
    }
    std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))
}

/// The crash prefixes of a full ledger.
fn cut_ledger(full: &[u8], cut: Cut) -> Vec<u8> {
    let lines: Vec<&[u8]> = full.split_inclusive(|&b| b == b'\n').collect();
    let has =
        |line: &[u8], needle: &str| line.windows(needle.len()).any(|w| w == needle.as_bytes());
    match cut {
        Cut::Torn => {
            let i = lines
                .iter()
                .rposition(|l| has(l, "\"event\":\"ToolOutput\""))
                .expect("a ToolOutput line");
            let mut out = lines[..i].concat();
            out.extend_from_slice(&lines[i][..lines[i].len() / 2]);
            out
        }
        Cut::Partial => {
            let i = lines
                .iter()
                .position(|l| has(l, "\"event\":\"Retry\""))
                .expect("a Retry line");
            lines[..=i].concat()
        }
    }
}

/// Runs the `interrupted` workflow in `dir` and interrupts it while `wait` runs: `wait` waits
/// for the file `go`, which is created only once kairos has acknowledged the interrupt, so the
/// ledger does not depend on timing.
fn interrupt(dir: &Path, name: &str, jobs: &str) -> Vec<u8> {
    /// Lets `wait` finish and stops kairos whatever happens, so no process outlives the test.
    struct Release<'a>(&'a Path, std::process::Child);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0.join("go"), "");
            let _ = self.1.kill();
            let _ = self.1.wait();
        }
    }
    let mut child = Release(
        dir,
        spawn(
            dir,
            &[
                "run",
                "workflow.yaml",
                "-q",
                "--ledger",
                name,
                "--jobs",
                jobs,
            ],
        ),
    );
    let stderr = child.1.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("started").exists() {
        assert!(Instant::now() < deadline, "node `wait` did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.1.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let mut said = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("interrupted:") => break,
            Ok(line) => said.push(line),
            Err(e) => panic!("kairos did not acknowledge the interrupt ({e}): {said:?}"),
        }
    }
    std::fs::write(dir.join("go"), "").unwrap();
    let code = child.1.wait().unwrap().code();
    assert_eq!(code, Some(130), "an interrupted run exits 130");
    std::fs::read(dir.join(name)).unwrap()
}

/// Compares two byte strings; on a difference, names the first differing line of each.
fn same(what_a: &str, a: &[u8], what_b: &str, b: &[u8]) -> Result<(), String> {
    if a == b {
        return Ok(());
    }
    let la: Vec<&[u8]> = a.split_inclusive(|&c| c == b'\n').collect();
    let lb: Vec<&[u8]> = b.split_inclusive(|&c| c == b'\n').collect();
    let i = (0..)
        .find(|&i| la.get(i) != lb.get(i))
        .expect("the inputs differ");
    let show = |lines: &[&[u8]]| match lines.get(i) {
        Some(l) => format!("{:?}", String::from_utf8_lossy(l)),
        None => "(end of file)".to_string(),
    };
    Err(format!(
        "{what_a} ({} bytes, {} lines) and {what_b} ({} bytes, {} lines) differ first at line {}:\n  {what_a}: {}\n  {what_b}: {}",
        a.len(),
        la.len(),
        b.len(),
        lb.len(),
        i + 1,
        show(&la),
        show(&lb),
    ))
}

/// Compares `actual` with the committed file `name` of `s`, or writes it there under
/// `KAIROS_UPDATE_GOLDEN=1` (for files derived from the committed ledgers).
fn pin(s: &Scenario, name: &str, actual: &[u8]) -> Result<(), String> {
    if updating() {
        std::fs::write(s.dir().join(name), actual).unwrap();
        return Ok(());
    }
    let committed = std::fs::read(s.dir().join(name))
        .map_err(|e| format!("{}/{name}: {e} (KAIROS_UPDATE_GOLDEN=1 writes it)", s.name))?;
    same(
        &format!("committed {}/{name}", s.name),
        &committed,
        "now",
        actual,
    )
}

/// Runs `check` for every item and fails with every failure at once.
fn each<T>(items: impl IntoIterator<Item = T>, mut check: impl FnMut(T) -> Result<(), String>) {
    let failures: Vec<String> = items
        .into_iter()
        .filter_map(|item| check(item).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn scenario(name: &str) -> &'static Scenario {
    scenarios().iter().find(|s| s.name == name).unwrap()
}

fn all_ledgers() -> impl Iterator<Item = (&'static Scenario, &'static Ledger)> {
    scenarios()
        .iter()
        .flat_map(|s| s.ledgers.iter().map(move |l| (s, l)))
}

fn expect_code(what: &str, out: &Output, code: i32) -> Result<(), String> {
    if out.code == code {
        return Ok(());
    }
    Err(format!(
        "{what}: exit {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
        out.code, out.stdout, out.stderr
    ))
}

/// New runs of the fixture workflows write the golden ledgers byte for byte, at `--jobs 1` and
/// `--jobs 8`, whatever the directory.
#[test]
fn runs_write_the_golden_ledgers() {
    let runs = all_ledgers().flat_map(|(s, l)| {
        l.recipes
            .iter()
            .filter(|r| matches!(r, Recipe::Run { .. }))
            .map(move |r| (s, l, r))
    });
    each(runs, |(s, l, r)| {
        let what = format!("{}/{}", s.name, l.name);
        let new = reproducible(s, l.name, r).map_err(|e| format!("{what}: {e}"))?;
        same(
            &format!("committed {what}"),
            &s.read(l.name),
            "a new run",
            &new,
        )
    });
}

/// Paused (approval), torn, partly committed and interrupted ledgers resume to the committed
/// ledgers, byte for byte, at `--jobs 1` and `--jobs 8`.
#[test]
fn resumes_write_the_golden_ledgers() {
    let resumes = all_ledgers().flat_map(|(s, l)| {
        l.recipes
            .iter()
            .filter(|r| matches!(r, Recipe::Resume { .. }))
            .map(move |r| (s, l, r))
    });
    each(resumes, |(s, l, r)| {
        let Recipe::Resume { from, .. } = r else {
            unreachable!()
        };
        let what = format!("{}/{from} resumed", s.name);
        let new = reproducible(s, l.name, r).map_err(|e| format!("{what}: {e}"))?;
        same(
            &format!("committed {}/{}", s.name, l.name),
            &s.read(l.name),
            &what,
            &new,
        )
    });
}

/// A torn ledger is reported and repaired on resume, not silently cut.
#[test]
fn resuming_a_torn_ledger_says_so() {
    let s = scenario("core");
    let t = Test::new();
    s.prepare(t.path(), true);
    s.copy(t.path(), &["torn.jsonl"]);
    let mut args = vec!["run", "workflow.yaml", "-q", "--resume", "torn.jsonl"];
    args.extend_from_slice(CORE_ARGS);
    s.kairos(t.path(), &args)
        .code(0)
        .stderr_contains("was torn (cut off in the middle of a write) and is cut");
}

/// The crash prefixes are what their names say: cut from the committed full ledger.
#[test]
fn crash_prefixes_are_cut_from_the_golden_ledger() {
    let cuts = all_ledgers().filter_map(|(s, l)| match l.recipes[0] {
        Recipe::Cut(cut) => Some((s, l, cut)),
        _ => None,
    });
    each(cuts, |(s, l, cut)| {
        let prefix = cut_ledger(&s.read("ledger.jsonl"), cut);
        let committed = s.read(l.name);
        let torn = !committed.ends_with(b"\n");
        if torn != matches!(cut, Cut::Torn) {
            return Err(format!("{}/{}: torn is {torn}", s.name, l.name));
        }
        same(
            &format!("committed {}/{}", s.name, l.name),
            &committed,
            "the cut of ledger.jsonl",
            &prefix,
        )
    });
}

/// An interrupt while a node runs writes the committed interrupted ledger.
#[test]
fn an_interrupt_writes_the_golden_interrupted_ledger() {
    let interrupts = all_ledgers().filter(|(_, l)| matches!(l.recipes[0], Recipe::Interrupt));
    each(interrupts, |(s, l)| {
        let new = reproducible(s, l.name, &Recipe::Interrupt)?;
        same(
            &format!("committed {}/{}", s.name, l.name),
            &s.read(l.name),
            "a new interrupted run",
            &new,
        )
    });
}

/// Every committed ledger of a complete (or paused) run replays byte for byte on its recorded
/// results, and behaves as recorded against the committed workflow.
#[test]
fn committed_ledgers_pass_replay_check() {
    let ledgers = scenarios()
        .iter()
        .flat_map(|s| s.complete().map(move |l| (s, l)));
    each(ledgers, |(s, l)| {
        let t = Test::new();
        s.prepare(t.path(), false);
        s.copy(t.path(), &[l.name]);
        let what = format!("{}/{}", s.name, l.name);
        let check = s.kairos(t.path(), &["replay", l.name, "--check"]);
        expect_code(&format!("replay {what} --check"), &check, 0)?;
        let expected = format!("replay matches ({} events)\n", s.line_count(l.name));
        same(
            "expected",
            expected.as_bytes(),
            "replay --check",
            check.stdout.as_bytes(),
        )?;
        let against = s.kairos(t.path(), &["replay", l.name, "--against", "workflow.yaml"]);
        expect_code(&format!("replay {what} --against"), &against, 0)
    });
}

/// `kairos replay --format json` rebuilds the committed state from every readable ledger
/// (`NAME.replay.json` beside `NAME.jsonl`); a torn ledger is refused as such.
#[test]
fn committed_ledgers_rebuild_the_committed_state() {
    let ledgers = all_ledgers();
    each(ledgers, |(s, l)| {
        let t = Test::new();
        s.copy(t.path(), &[l.name]);
        let out = s.kairos(t.path(), &["replay", l.name, "--format", "json"]);
        let what = format!("replay {}/{} --format json", s.name, l.name);
        if matches!(l.recipes[0], Recipe::Cut(Cut::Torn)) {
            expect_code(&what, &out, 2)?;
            return match out.stderr.contains("ledger_torn") {
                true => Ok(()),
                false => Err(format!("{what}: not reported torn:\n{}", out.stderr)),
            };
        }
        expect_code(&what, &out, 0)?;
        let expected = l.name.replace(".jsonl", ".replay.json");
        pin(s, &expected, out.stdout.as_bytes())
    });
}

/// Every full ledger verifies with the committed public key (and the `allowed_signers` file),
/// its committed envelope and SSH signature, and the committed workflow; the other readable
/// ledgers pass the chain check unsigned.
#[test]
fn committed_ledgers_verify_with_the_committed_key() {
    each(scenarios(), |s| {
        let t = Test::new();
        let dir = t.path();
        s.prepare(dir, false);
        s.copy(
            dir,
            &[
                "ledger.jsonl",
                "ledger.jsonl.intoto.json",
                "ledger.jsonl.sig",
            ],
        );
        for name in ["golden.pub", "allowed_signers"] {
            std::fs::write(dir.join(name), key_file(name)).unwrap();
        }
        let full = s.read("ledger.jsonl");
        let last = full[..full.len() - 1]
            .rsplit(|&b| b == b'\n')
            .next()
            .unwrap();
        for trust in [
            ["--key", "golden.pub"],
            ["--allowed-signers", "allowed_signers"],
        ] {
            let mut args = vec![
                "verify",
                "ledger.jsonl",
                "--require-signature",
                "--workflow",
                "workflow.yaml",
                "--format",
                "json",
            ];
            args.extend_from_slice(&trust);
            let out = s.kairos(dir, &args);
            let what = format!("{}: kairos {}", s.name, args.join(" "));
            expect_code(&what, &out, 0)?;
            let doc = out.json();
            let signers: BTreeSet<&str> = doc["signers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["signature"].as_str())
                .collect();
            let fine = doc["verified"] == true
                && doc["signed"] == true
                && doc["first_failure"].is_null()
                && doc["records"] == s.line_count("ledger.jsonl") as u64
                && doc["chain_head"] == hex::encode(Sha256::digest(last))
                && signers == BTreeSet::from(["dsse", "sshsig"]);
            if !fine {
                return Err(format!("{what}:\n{}", out.stdout));
            }
        }
        for l in s.readable().filter(|l| l.name != "ledger.jsonl") {
            s.copy(dir, &[l.name]);
            let out = s.kairos(dir, &["verify", l.name]);
            expect_code(&format!("{}: kairos verify {}", s.name, l.name), &out, 0)?;
        }
        Ok(())
    });
}

/// Signing is deterministic (Ed25519): signing a committed ledger again with the committed key
/// gives the committed envelope and SSH signature, byte for byte.
#[test]
fn signing_again_gives_the_committed_signatures() {
    each(scenarios(), |s| {
        let t = Test::new();
        for (name, bytes) in sign(s, t.path()) {
            same(
                &format!("committed {}/{name}", s.name),
                &s.read(name),
                "signed again",
                &bytes,
            )?;
        }
        Ok(())
    });
}

/// `kairos diff` finds a ledger identical to itself, and reports the committed differences
/// from its sibling (`A-vs-B.diff.json`).
#[test]
fn diffs_give_the_committed_results() {
    let selves = all_ledgers().map(|(s, l)| (s, l.name, l.name));
    let pairs = scenarios()
        .iter()
        .flat_map(|s| s.diffs.iter().map(move |&(a, b)| (s, a, b)));
    each(selves.chain(pairs), |(s, a, b)| {
        let t = Test::new();
        s.copy(t.path(), &[a, b]);
        let what = format!("{}: kairos diff {a} {b}", s.name);
        if a == b {
            let out = s.kairos(t.path(), &["diff", a, b]);
            if matches!(
                s.ledgers.iter().find(|l| l.name == a).unwrap().recipes[0],
                Recipe::Cut(Cut::Torn)
            ) {
                return expect_code(&what, &out, 2);
            }
            expect_code(&what, &out, 0)?;
            let expected = format!("ledgers are identical ({} events)\n", s.line_count(a));
            return same(
                "expected",
                expected.as_bytes(),
                &what,
                out.stdout.as_bytes(),
            );
        }
        let out = s.kairos(t.path(), &["diff", a, b, "--format", "json"]);
        expect_code(&what, &out, 1)?;
        let name = format!(
            "{}-vs-{}.diff.json",
            a.trim_end_matches(".jsonl"),
            b.trim_end_matches(".jsonl")
        );
        pin(s, &name, out.stdout.as_bytes())
    });
}

/// The lines of a committed ledger that end with a newline, parsed.
fn events(s: &Scenario, name: &str) -> Vec<serde_json::Value> {
    let bytes = s.read(name);
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{}/{name}: not JSON ({e})", s.name))
        })
        .collect()
}

/// Together the fixtures hold every event kind of the format, and the features the scenarios
/// exist for: coverage cannot shrink without this test saying so.
#[test]
fn fixtures_cover_every_event_kind() {
    let mut kinds = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (s, l) in all_ledgers() {
        for e in events(s, l.name) {
            let kind = e["event"].as_str().unwrap().to_string();
            let detail = match kind.as_str() {
                "RunEnd" => format!("RunEnd {}", e["status"]),
                "RunPaused" => format!("RunPaused {}", e["reason"]),
                "PolicyDeny" => format!("PolicyDeny {} {}", e["reason"], e["enforced"]),
                "CallLimitExceeded" => format!("CallLimitExceeded {}", e["enforced"]),
                "ContentRedacted" => format!("ContentRedacted {}", e["field"]),
                "ApprovalResolved" => format!("ApprovalResolved {}", e["decision"]),
                "Start" if e["node"].as_str().is_some_and(|n| n.ends_with("[1]")) => {
                    "for_each instance".into()
                }
                "ToolOutput" if e["exit_code"].as_i64().is_some_and(|c| c != 0) => {
                    "failing command".into()
                }
                _ => String::new(),
            };
            seen.insert(detail);
            kinds.insert(kind);
        }
    }
    let all: BTreeSet<String> = EVENT_KINDS
        .iter()
        .filter(|k| FIXTURES.get() == "golden" || !ADDED_AFTER_RELEASE_0_1.contains(k))
        .map(|k| k.to_string())
        .collect();
    assert_eq!(kinds, all, "the event kinds the golden ledgers hold");
    for feature in [
        "RunEnd \"succeeded\"",
        "RunEnd \"failed\"",
        "RunEnd \"denied\"",
        "RunPaused \"approval\"",
        "RunPaused \"interrupted\"",
        "PolicyDeny \"COMMAND_NOT_PERMITTED\" true",
        "PolicyDeny \"COMMAND_NOT_PERMITTED\" false",
        "PolicyDeny \"CAPABILITY_NOT_GRANTED\" false",
        "PolicyDeny \"PATH_NOT_PERMITTED\" false",
        "CallLimitExceeded true",
        "CallLimitExceeded false",
        "ContentRedacted \"input\"",
        "ContentRedacted \"output\"",
        "ContentRedacted \"stdout\"",
        "ContentRedacted \"stderr\"",
        "ApprovalResolved \"approved\"",
        "ApprovalResolved \"rejected\"",
        "for_each instance",
        "failing command",
    ] {
        assert!(seen.contains(feature), "no golden ledger has {feature}");
    }
}

/// The committed ledgers chain (checked here without kairos) and hold nothing of the machine
/// that wrote them: no absolute path, no home directory, no secret.
#[test]
fn committed_ledgers_chain_and_hold_nothing_of_the_machine() {
    let home = std::env::var("HOME").ok().filter(|h| h.len() > 1);
    each(all_ledgers(), |(s, l)| {
        let what = format!("{}/{}", s.name, l.name);
        let bytes = s.read(l.name);
        let mut prev = "0".repeat(64);
        for (i, line) in bytes
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| l.ends_with(b"\n"))
            .enumerate()
        {
            let line = &line[..line.len() - 1];
            let e: serde_json::Value = serde_json::from_slice(line).unwrap();
            if e["seq"] != i as u64 || e["prev"] != prev.as_str() {
                return Err(format!("{what}: line {}: broken chain", i + 1));
            }
            prev = hex::encode(Sha256::digest(line));
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut forbidden = vec!["/tmp/", "/home/", "/root/", "/Users/", "/private/", "/var/"];
        forbidden.extend(home.as_deref());
        forbidden.extend(s.env.iter().map(|(_, v)| *v));
        match forbidden.iter().find(|f| text.contains(*f)) {
            Some(f) => Err(format!("{what} holds {f:?}")),
            None => Ok(()),
        }
    });
}

/// The secret's value never reaches the ledger: another value writes the same bytes.
#[test]
fn another_secret_value_writes_the_same_ledger() {
    let s = scenario("policy");
    let t = Test::new();
    s.prepare(t.path(), true);
    let out = Test::new()
        .args([
            "run",
            "workflow.yaml",
            "-q",
            "--ledger",
            "other.jsonl",
            "--policy",
            "policy.yaml",
        ])
        .env("GOLDEN_TOKEN", "quite-another-secret")
        .run_in(t.path());
    assert_eq!(out.code, 3, "{}", out.stderr);
    let new = std::fs::read(t.path().join("other.jsonl")).unwrap();
    if let Err(e) = same(
        "committed policy/ledger.jsonl",
        &s.read("ledger.jsonl"),
        "another secret",
        &new,
    ) {
        panic!("{e}");
    }
}

/// Ledgers written by the first release (0.1.0), committed as it wrote them: each still
/// replays byte for byte (`--check`), rebuilds the committed state, resumes to the committed
/// full ledger, verifies under the committed key and signatures, and diffs as committed.
mod previous_release {
    fn with_release(check: fn()) {
        super::FIXTURES.set("release-0.1");
        check();
    }

    #[test]
    fn release_ledgers_pass_replay_check() {
        with_release(super::committed_ledgers_pass_replay_check);
    }

    #[test]
    fn release_ledgers_rebuild_the_committed_state() {
        with_release(super::committed_ledgers_rebuild_the_committed_state);
    }

    #[test]
    fn release_ledgers_resume_to_the_release_ledgers() {
        with_release(super::resumes_write_the_golden_ledgers);
    }

    #[test]
    fn release_crash_prefixes_are_cut_from_the_release_ledger() {
        with_release(super::crash_prefixes_are_cut_from_the_golden_ledger);
    }

    #[test]
    fn release_ledgers_verify_with_the_committed_key() {
        with_release(super::committed_ledgers_verify_with_the_committed_key);
    }

    #[test]
    fn release_ledgers_diff_as_committed() {
        with_release(super::diffs_give_the_committed_results);
    }

    #[test]
    fn release_ledgers_cover_every_event_kind() {
        with_release(super::fixtures_cover_every_event_kind);
    }
}
