//! A small builder around the real binary: write files into a temporary directory, run
//! `kairos` there, and assert on the exit code and output.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The test's directory lives as long as its output, so files can be read afterwards.
    pub dir: tempfile::TempDir,
}

/// Rewrites every line's `prev` so an edited ledger chains again: tests of the checks that
/// come after the chain (signatures, replay) need forgeries that pass it.
pub fn rechain(text: &str) -> String {
    use sha2::Digest;
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let old = format!("\"prev\":\"{}\",", v["prev"].as_str().unwrap());
        let body = line.split_once(&old).unwrap().1;
        let new = format!("{{\"seq\":{},\"prev\":\"{prev}\",{body}", v["seq"]);
        prev = hex::encode(sha2::Sha256::digest(new.as_bytes()));
        out.push_str(&new);
        out.push('\n');
    }
    out
}

/// Starts `kairos ARGS` in `dir` without waiting for it (tests that signal or kill it);
/// stderr is captured.
pub fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin!("kairos"))
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kairos")
}

/// Copies a directory tree (test fixtures such as `workflows/`).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Outside programs some tests drive, and where they come from.
const PROGRAMS: &[(&str, &str)] = &[
    ("dot", "install graphviz"),
    ("openssl", "install openssl"),
    ("ssh-keygen", "install openssh-client"),
    ("python3", "install python3"),
    ("script", "install bsdutils or util-linux"),
    ("grep", "install grep"),
    (
        "mcp-server-everything",
        "npm install --prefix .ci/npm @modelcontextprotocol/server-everything, then add .ci/npm/node_modules/.bin to PATH (.ci/run does)",
    ),
];

/// Whether `program` is on `PATH`. When it is not, the calling test should return at once:
/// a notice goes to stderr (past the test harness's capture, so it shows in a normal `cargo
/// test`). Under CI (`CI=true`, as `.ci/run` sets after installing the programs) a missing
/// program fails the test instead, so a CI job never passes by skipping.
#[track_caller]
pub fn require_program(program: &str) -> bool {
    require(program, None)
}

/// [`require_program`] for one part of a test (`part` says which), which the test skips.
#[track_caller]
pub fn require_program_for(program: &str, part: &str) -> bool {
    require(program, Some(part))
}

#[track_caller]
fn require(program: &str, part: Option<&str>) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if found {
        return true;
    }
    let hint = PROGRAMS
        .iter()
        .find(|(name, _)| *name == program)
        .map_or("install it", |(_, hint)| hint);
    missing(&format!("`{program}`"), hint, part)
}

/// Whether `python3` is on `PATH` and can import `module`; otherwise the notice of
/// [`require_program`] (`hint` says how to install it), or a failure under CI.
#[track_caller]
pub fn require_python_module(module: &str, hint: &str) -> bool {
    if !require_program("python3") {
        return false;
    }
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found || missing(&format!("the Python module `{module}`"), hint, None)
}

/// Reports that the calling test lacks `what`: a notice, or a failure under CI. Gives false.
#[track_caller]
fn missing(what: &str, hint: &str, part: Option<&str>) -> bool {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    let test = match part {
        Some(part) => format!("{part} in {test}"),
        None => test.to_string(),
    };
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(
        !ci,
        "{test} needs {what} ({hint}); under CI a missing program is an error"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {test} needs {what} ({hint})");
    false
}

/// The project root (where `workflows/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Writes `wf.yaml`.
    pub fn workflow(self, yaml: &str) -> Self {
        self.file("wf.yaml", yaml)
    }

    pub fn file(self, name: &str, contents: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, contents).expect("write test file");
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(self) -> Output {
        let dir = self.dir.path().to_path_buf();
        self.run_in(&dir)
    }

    /// Runs in `dir` instead of the test's own directory.
    pub fn run_in(self, dir: &Path) -> Output {
        let out = Command::cargo_bin("kairos")
            .expect("kairos binary")
            .args(&self.args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run kairos");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
            dir: self.dir,
        }
    }
}

impl Output {
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code, expected,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_contains(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn stderr_contains(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// One diagnostic as `kairos validate --format json` reports it.
#[derive(Debug)]
pub struct Diag {
    pub code: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub help: Option<String>,
    /// Every label: (line, column, message, primary), the primary one first.
    pub labels: Vec<(u64, u64, String, bool)>,
}

/// Validates `yaml` and returns its diagnostics (asserting exit code 2).
#[track_caller]
pub fn diagnostics(yaml: &str) -> Vec<Diag> {
    let out = Test::new()
        .workflow(yaml)
        .args(["validate", "--format", "json", "wf.yaml"])
        .run()
        .code(2);
    let doc = out.json();
    doc["files"][0]["diagnostics"]
        .as_array()
        .expect("diagnostics array")
        .iter()
        .map(|d| {
            assert_eq!(d["file"], "wf.yaml");
            Diag {
                code: d["code"].as_str().unwrap().to_string(),
                line: d["line"].as_u64().unwrap(),
                column: d["column"].as_u64().unwrap(),
                message: d["message"].as_str().unwrap().to_string(),
                help: d["help"].as_str().map(str::to_string),
                labels: d["labels"]
                    .as_array()
                    .expect("labels array")
                    .iter()
                    .map(|l| {
                        (
                            l["line"].as_u64().unwrap(),
                            l["column"].as_u64().unwrap(),
                            l["message"].as_str().unwrap_or_default().to_string(),
                            l["primary"].as_bool().unwrap(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Asserts that `yaml` gives exactly one diagnostic, with this code, at this line and column,
/// whose message contains `message`; returns it for further checks.
#[track_caller]
pub fn single(yaml: &str, code: &str, line: u64, column: u64, message: &str) -> Diag {
    let diags = diagnostics(yaml);
    assert_eq!(diags.len(), 1, "expected one diagnostic, got {diags:#?}");
    let d = diags.into_iter().next().unwrap();
    assert_eq!(d.code, format!("kairos::{code}"), "{d:#?}");
    assert_eq!((d.line, d.column), (line, column), "{d:#?}");
    assert!(
        d.message.contains(message),
        "message {:?} lacks {message:?}",
        d.message
    );
    d
}
