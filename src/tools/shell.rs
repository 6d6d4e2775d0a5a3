//! The `shell` tool: runs a command line or an argument vector as a child process and captures
//! what it prints. The programs it would start are what the policy checks against `commands`.
//!
//! A `run:` line goes through `sh -c` only when it needs a shell: a line made of plain words is
//! split here and executed directly (as GNU make does), which halves the cost of a spawn and
//! behaves the same. `args:` never touches a shell. When a `commands` list applies, a program name
//! means the file kairos's own `PATH` finds (`crate::sh::resolve`), whatever `PATH` the call
//! sets; without one, the call's `PATH` finds it, as a shell's would. Every child is put in a
//! process group of its own, so that a timeout can kill the whole tree it started (`sleep 100 &
//! sleep 100` included) without touching the runner. Both output streams are read to the end
//! while the child runs so that it never blocks on a full pipe; only the first
//! [`CAPTURE_LIMIT`] bytes of each are kept, and past that the full size and SHA-256 are
//! recorded instead. The group is registered with the call's [`Cancel`] while it runs, so a
//! second interrupt kills it.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{self, Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::capped::Capped;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};

use super::{
    Args, CAPTURE_LIMIT, CallCx, Captured, KeyKind, Outcome, Resource, Tool, ToolSpec, key,
    str_arg, word,
};
use crate::cancel::Cancel;
use crate::policy::Capability;
use crate::sh::resolve::{self, Resolved};
use crate::syntax::duration;
use serde_json::Value;

/// Runs `run:` or `args:`.
pub struct Shell;

static SHELL_TOOL: ToolSpec = ToolSpec {
    name: "shell",
    summary: "runs a command",
    keys: &[
        key(
            "run",
            KeyKind::ShellLine,
            false,
            "command line for `sh -c` (interpolated values are shell-quoted)",
        ),
        key(
            "args",
            KeyKind::Value,
            false,
            "program and arguments, run without a shell",
        ),
        key("env", KeyKind::Value, false, "extra environment variables"),
        key("cwd", KeyKind::Template, false, "working directory"),
        key(
            "stdin",
            KeyKind::Template,
            false,
            "text written to standard input",
        ),
    ],
    one_of: &[&["run", "args"]],
    capabilities: &[Capability::Subprocess],
};

impl Tool for Shell {
    fn spec(&self) -> &'static ToolSpec {
        &SHELL_TOOL
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        let argv = argv(args);
        vec![Resource::Programs(crate::sh::programs(
            str_arg(args, "run"),
            argv.as_deref(),
        ))]
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let command = match (args.get("run"), argv(args)) {
            (Some(Value::String(line)), _) => Command::Line(line.clone()),
            (_, Some(argv)) => Command::Args(argv),
            _ => return Outcome::failed("`run` or `args` is required"),
        };
        let env = match args.get("env") {
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), word(v))).collect(),
            _ => Vec::new(),
        };
        let request = Request {
            command,
            env,
            cwd: str_arg(args, "cwd").map(PathBuf::from),
            stdin: args.get("stdin").map(word),
            timeout: cx.timeout,
            own_path: cx.own_path,
        };
        // The policy has passed the call; the executor only decides where it runs.
        match cx.shell {
            Some(backend) => backend.run(&request, &cx.attempt, cx.cancel),
            None => run(&request, cx.cancel),
        }
    }
}

/// `args:` as words, when it is a list.
fn argv(args: &Args) -> Option<Vec<String>> {
    args.get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(word).collect())
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A command line for `sh -c` (executed directly when it is only plain words).
    Line(String),
    /// A program and its arguments, executed without a shell.
    Args(Vec<String>),
}

/// One call of the `shell` tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    /// Variables set on top of the runner's own environment.
    pub env: Vec<(String, String)>,
    /// Working directory; the runner's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Text written to standard input; `/dev/null` when `None`.
    pub stdin: Option<String>,
    /// The child's process group is killed when it runs longer than this.
    pub timeout: Option<Duration>,
    /// Whether program names are looked up on kairos's own `PATH` (a `commands` list applies:
    /// a name must mean the program the policy allowed, whatever `PATH` the call sets) or, as
    /// a shell would, on the call's.
    pub own_path: bool,
}

/// The shell `Command::Line` falls back to. An absolute path, so that a `PATH` in `env` cannot
/// take it away.
pub const SHELL: &str = "/bin/sh";

/// How long to wait for the output pipes once the process group has been killed. The group's
/// members die at once and the pipes then close; they stay open only when a process escaped the
/// group (e.g. through `setsid`), and the call must return anyway.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// Stack size of the thread that writes `stdin`: it only moves bytes.
const STDIN_STACK: usize = 64 * 1024;

/// The most one `read` takes from a pipe: a whole default pipe buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Runs the request to completion (or to its timeout, or until `cancel` kills it) and reports
/// what happened. Never panics on account of the command: every failure becomes
/// `Outcome::error`.
///
/// The calling thread does all the waiting: it `poll`s the output pipes, reading whatever is
/// ready, until both are closed or the deadline passes, and only then reaps the child. No thread
/// is started for a command, except one to write `stdin` when there is any.
pub fn run(request: &Request, cancel: &Cancel) -> Outcome {
    let prepared = match prepare(request) {
        Ok(prepared) => prepared,
        Err(outcome) => return *outcome,
    };
    let Prepared {
        argv,
        through_shell,
        lookup,
    } = prepared;
    let program = &argv[0];
    let mut command = match lookup {
        Resolved::Found(path) => {
            let mut command = process::Command::new(path);
            command.arg0(program);
            command
        }
        Resolved::Path | Resolved::Missing => process::Command::new(program),
    };
    command
        .args(&argv[1..])
        .envs(request.env.iter().map(|(k, v)| (k, v)))
        .stdin(if request.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, whose id is the child's pid, so a timeout can kill everything the
        // child started and nothing else.
        .process_group(0);
    if through_shell {
        for name in bash_functions(&request.env) {
            command.env_remove(name);
        }
    }
    if let Some(cwd) = &request.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return cannot_run(program, spawn_error(request, err)),
    };
    let _running = cancel.register(child.id());

    if let Err(err) = feed_stdin(&mut child, request) {
        abort(&mut child);
        return cannot_run(program, format!("cannot start a thread: {err}"));
    }
    let deadline = request
        .timeout
        .and_then(|timeout| Instant::now().checked_add(timeout));

    // The output is complete only once both pipes are closed: a background process may still
    // be writing after the child itself exited. The child is not reaped before that, so its pid
    // (which is also the group's id) cannot be reused by the time it is signalled.
    let mut pipes = Pipes::new(&mut child);
    let timed_out = match deadline {
        None => {
            pipes.drain(None);
            false
        }
        // A child may also close its outputs and keep running.
        Some(deadline) => !(pipes.drain(Some(deadline)) && exits_by(&mut child, deadline)),
    };
    if timed_out {
        kill_group(&mut child);
        // The group's members die at once and the pipes then close. They stay open only when a
        // process escaped the group (e.g. through `setsid`), and the call must return anyway:
        // what was read by then is all there is.
        pipes.drain(Some(
            Instant::now()
                .checked_add(KILL_GRACE)
                .unwrap_or_else(Instant::now),
        ));
    }
    let [stdout, stderr] = pipes.finish();
    let status = child.wait();

    let (exit_code, error) = match status {
        _ if timed_out => (
            None,
            Some(format!(
                "timed out after {}",
                duration::format(request.timeout.unwrap_or_default())
            )),
        ),
        Ok(status) => describe(status),
        Err(err) => (None, Some(format!("cannot wait for `{program}`: {err}"))),
    };
    Outcome {
        output: serde_json::Value::String(stdout.text.trim().to_owned()),
        stdout: Some(stdout),
        stderr: Some(stderr),
        exit_code,
        error,
        listing: None,
        retry: None,
    }
}

/// A request made ready to start: what `argv` is, whether it goes through [`SHELL`], and which
/// file `argv[0]` means. What runs is decided here, for every executor (`docs/executors.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub argv: Vec<String>,
    pub through_shell: bool,
    /// The file kairos's own `PATH` found for `argv[0]` (under `commands`), or
    /// [`Resolved::Path`]: the call's `PATH` finds it.
    pub lookup: Resolved,
}

/// Decides what a request runs, or the outcome of a request that cannot run (an empty
/// `args`, an invalid variable name, a program kairos's own `PATH` does not have).
pub fn prepare(request: &Request) -> Result<Prepared, Box<Outcome>> {
    let (argv, through_shell) = match &request.command {
        Command::Args(argv) if argv.is_empty() => {
            return Err(Box::new(Outcome {
                error: Some("empty `args`".into()),
                ..Outcome::default()
            }));
        }
        Command::Args(argv) => (argv.clone(), false),
        Command::Line(line) => match crate::sh::direct_argv(line) {
            Some(argv) => (argv, false),
            None if request.own_path => (vec![SHELL.into(), "-c".into(), resolve_line(line)], true),
            None => (vec![SHELL.into(), "-c".into(), line.clone()], true),
        },
    };
    let program = &argv[0];

    // `std` would pass `A=B=C` as `A` = `B=C`; say so instead of guessing.
    if let Some((name, _)) = request
        .env
        .iter()
        .find(|(name, _)| name.is_empty() || name.contains('='))
    {
        return Err(Box::new(cannot_run(
            program,
            format!("invalid environment variable name {name:?}"),
        )));
    }

    // Under `commands`, the program is the file kairos's own `PATH` finds, whatever `PATH` the
    // call sets; its `argv[0]` stays the name as written (multi-call programs read it).
    let lookup = if request.own_path {
        resolve::program(program)
    } else {
        Resolved::Path
    };
    if lookup == Resolved::Missing {
        return Err(Box::new(cannot_run(program, "not found in PATH")));
    }
    Ok(Prepared {
        argv,
        through_shell,
        lookup,
    })
}

/// The exit code and error for a child that exited on its own.
fn describe(status: ExitStatus) -> (Option<i32>, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (Some(0), None),
        (Some(code), _) => (Some(code), Some(format!("exit code {code}"))),
        (None, Some(signal)) => (None, Some(format!("killed by signal {signal}"))),
        (None, None) => (None, Some(format!("ended abnormally ({status})"))),
    }
}

/// The variables, from kairos's environment or the call's, that bash as `sh` would import as
/// functions (`BASH_FUNC_NAME%%`): a function runs ahead of any builtin or program of that name,
/// so they are kept from the shell.
fn bash_functions(env: &[(String, String)]) -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .chain(env.iter().map(|(name, _)| name.into()))
        .filter(|name| name.as_encoded_bytes().starts_with(b"BASH_FUNC_"))
        .collect()
}

/// `line` with every program it starts replaced by the file kairos's own `PATH` finds (quoted),
/// so the shell starts that file whatever `PATH` the call or the line sets. Builtins in command
/// position are left to the shell, which runs them itself; a name `PATH` does not have becomes
/// `/dev/null/NAME`, which fails as a missing command does (127) without a `PATH` search. A line
/// outside what [`crate::sh::line`] reads runs as written: no `commands` list applies to it, or
/// it would have been denied.
fn resolve_line(line: &str) -> String {
    let Ok(programs) = crate::sh::line::analyse(line) else {
        return line.to_owned();
    };
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    for p in programs {
        if p.builtin_position && crate::sh::line::SHELL_BUILTINS.contains(&p.name.as_str()) {
            continue;
        }
        let replacement = match resolve::program(&p.name) {
            Resolved::Path => continue,
            Resolved::Found(path) => match path.to_str() {
                Some(path) => crate::sh::quote(path),
                None => crate::sh::quote(&format!("/dev/null/{}", p.name)),
            },
            Resolved::Missing => crate::sh::quote(&format!("/dev/null/{}", p.name)),
        };
        out.push_str(&line[copied..p.span.start]);
        out.push_str(&replacement);
        copied = p.span.end;
    }
    out.push_str(&line[copied..]);
    out
}

/// The outcome of a command that could not be started: 127, as `sh` reports a command it
/// cannot find.
pub(crate) fn cannot_run(program: &str, reason: impl std::fmt::Display) -> Outcome {
    Outcome {
        output: serde_json::Value::String(String::new()),
        stdout: Some(Captured::default()),
        stderr: Some(Captured::default()),
        exit_code: Some(127),
        error: Some(format!("cannot run `{program}`: {reason}")),
        listing: None,
        retry: None,
    }
}

/// Explains a failed spawn. A missing working directory fails the spawn with the same "No such
/// file or directory" as a missing program, so name the directory when it is the culprit.
fn spawn_error(request: &Request, err: io::Error) -> String {
    if let Some(cwd) = &request.cwd {
        match std::fs::metadata(cwd) {
            Err(dir_err) => return format!("working directory `{}`: {dir_err}", cwd.display()),
            Ok(meta) if !meta.is_dir() => {
                return format!("working directory `{}` is not a directory", cwd.display());
            }
            Ok(_) => {}
        }
    }
    err.to_string()
}

/// Starts the thread that writes `request.stdin`, if there is one.
///
/// A thread of its own, so that a child that writes before it reads cannot deadlock with us. It
/// is not joined: a child that never reads would hold it up, and the write fails (EPIPE) once
/// the child is gone anyway. Dropping `input` closes the pipe, i.e. EOF.
fn feed_stdin(child: &mut Child, request: &Request) -> io::Result<()> {
    if let (Some(mut input), Some(text)) = (child.stdin.take(), request.stdin.clone()) {
        thread::Builder::new()
            .stack_size(STDIN_STACK)
            .name("kairos-shell-stdin".into())
            .spawn(move || {
                let _ = input.write_all(text.as_bytes());
            })?;
    }
    Ok(())
}

/// The read ends of the child's stdout and stderr, and what was read from them.
struct Pipes {
    /// stdout and stderr; `None` once read to the end (or unreadable).
    fds: [Option<OwnedFd>; 2],
    streams: [Stream; 2],
}

impl Pipes {
    fn new(child: &mut Child) -> Self {
        Self {
            fds: [
                child.stdout.take().map(OwnedFd::from),
                child.stderr.take().map(OwnedFd::from),
            ],
            streams: Default::default(),
        }
    }

    /// Reads both pipes until both are closed (`true`) or `deadline` passes (`false`).
    fn drain(&mut self, deadline: Option<Instant>) -> bool {
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        loop {
            if self.fds.iter().all(Option::is_none) {
                return true;
            }
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    // Only a timeout of billions of years does not fit; that is no timeout.
                    Timespec::try_from(left).ok()
                }
            };
            let ready = match self.poll(timeout.as_ref()) {
                Ok(ready) => ready,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    // Cannot wait for the pipes (out of memory): stop reading them, which is
                    // what a read error does too. What was read stands.
                    self.fds = [None, None];
                    return true;
                }
            };
            for (index, ready) in ready.into_iter().enumerate() {
                let Some(fd) = self.fds[index].as_ref().filter(|_| ready) else {
                    continue;
                };
                // The pipe is ready (data, end of file or an error), so this does not block:
                // nobody else reads it.
                match rustix::io::read(fd, &mut buf) {
                    Ok(([], _)) => self.fds[index] = None,
                    Ok((chunk, _)) => self.streams[index].push(chunk),
                    Err(Errno::INTR | Errno::AGAIN) => {}
                    // Nothing more can be read; what was read stands.
                    Err(_) => self.fds[index] = None,
                }
            }
        }
    }

    /// Waits (at most `timeout`, or for ever) until one of the open pipes is ready, and tells
    /// which are.
    fn poll(&self, timeout: Option<&Timespec>) -> rustix::io::Result<[bool; 2]> {
        let ready = |fd: &PollFd<'_>| !fd.revents().is_empty();
        match &self.fds {
            [Some(out), Some(err)] => {
                let mut set = [
                    PollFd::new(out, PollFlags::IN),
                    PollFd::new(err, PollFlags::IN),
                ];
                poll(&mut set, timeout)?;
                Ok([ready(&set[0]), ready(&set[1])])
            }
            [Some(fd), None] | [None, Some(fd)] => {
                let mut set = [PollFd::new(fd, PollFlags::IN)];
                poll(&mut set, timeout)?;
                let ready = ready(&set[0]);
                Ok([
                    ready && self.fds[0].is_some(),
                    ready && self.fds[1].is_some(),
                ])
            }
            [None, None] => Ok([false, false]),
        }
    }

    /// What was read from stdout and stderr. Closes the pipes that are still open.
    fn finish(self) -> [Captured; 2] {
        self.streams.map(Stream::finish)
    }
}

/// Waits until the child exits (`true`) or `deadline` passes (`false`), without reaping it.
///
/// Called once its pipes are closed, which they usually are because it exited, but a child
/// that closed them itself may run on; and the pipes close a moment before an exiting child can
/// be reaped. A pidfd becomes readable when its process exits; without one (Linux before 5.3),
/// the child is checked on at growing intervals.
fn exits_by(child: &mut Child, deadline: Instant) -> bool {
    let exited = |child: &mut Child| !matches!(child.try_wait(), Ok(None));
    if exited(child) {
        // An error here is `wait`'s to report.
        return true;
    }
    let mut pidfd = pidfd_open(Pid::from_child(child), PidfdFlags::empty()).ok();
    let mut pause = Duration::from_millis(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Some(fd) = &pidfd {
            let mut set = [PollFd::new(fd, PollFlags::IN)];
            match poll(&mut set, Timespec::try_from(left).ok().as_ref()) {
                Ok(0) | Err(Errno::INTR) => {}
                Ok(_) => return true,
                Err(_) => pidfd = None,
            }
        } else {
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(50));
            if exited(child) {
                return true;
            }
        }
    }
}

/// Sends SIGKILL to the child's process group, and to the child itself in case it left the
/// group (`setsid`). The child must not have been reaped: its pid is the group's id.
fn kill_group(child: &mut Child) {
    // An error only means that nothing is left in the group.
    let _ = kill_process_group(Pid::from_child(child), Signal::KILL);
    let _ = child.kill();
}

/// Kills and reaps a child whose stdin thread could not be started.
fn abort(child: &mut Child) {
    kill_group(child);
    let _ = child.wait();
}

/// What a file holds, captured as a stream of the command's output is: the first
/// [`CAPTURE_LIMIT`] bytes, and the full size and hash past them. For executors whose command
/// wrote its output to files (`docs/executors.md`); a missing file is an empty stream.
pub fn capture_file(path: &std::path::Path) -> io::Result<Captured> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Captured::default()),
        Err(err) => return Err(err),
    };
    let mut stream = Stream::default();
    stream.0.read_from(&mut file)?;
    Ok(stream.finish())
}

/// One output stream as read so far: kept up to [`CAPTURE_LIMIT`].
struct Stream(Capped);

impl Default for Stream {
    fn default() -> Self {
        Stream(Capped::new(CAPTURE_LIMIT))
    }
}

impl Stream {
    fn push(&mut self, chunk: &[u8]) {
        self.0.push(chunk);
    }

    /// What was read.
    fn finish(self) -> Captured {
        let kept = self.0.finish();
        let truncated = kept.truncated();
        Captured {
            text: match String::from_utf8(kept.kept) {
                Ok(text) => text,
                Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
            },
            bytes: kept.bytes,
            truncated,
            sha256: kept.sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sh::{NASTY, quote};
    use crate::tools::testing::args as with;
    use serde_json::json;
    use sha2::{Digest, Sha256};
    use std::path::Path;

    /// Runs a request that nothing interrupts.
    fn run(request: &Request) -> Outcome {
        super::run(request, &Cancel::default())
    }

    fn line(text: &str) -> Request {
        Request {
            command: Command::Line(text.into()),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: None,
            own_path: true,
        }
    }

    fn args(list: &[&str]) -> Request {
        Request {
            command: Command::Args(list.iter().map(|s| s.to_string()).collect()),
            ..line("")
        }
    }

    /// Whether `pid` is a live process (a zombie waiting for its reaper counts as dead).
    fn alive(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => {
                !matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z'))
            }
            Err(_) => false,
        }
    }

    #[test]
    fn quote_round_trips_through_sh() {
        // One process for all: each value is printed between markers by `sh` itself.
        let script: String = NASTY
            .iter()
            .map(|s| format!("printf '<%s>' {}\n", quote(s)))
            .collect();
        let outcome = run(&Request {
            command: Command::Args(vec![SHELL.into(), "-c".into(), script]),
            ..line("")
        });
        assert_eq!(outcome.error, None);
        let expected: String = NASTY.iter().map(|s| format!("<{s}>")).collect();
        assert_eq!(outcome.stdout.unwrap().text, expected);
    }

    #[test]
    fn interpolated_values_are_not_executed() {
        let dir = tempfile::tempdir().unwrap();
        let payload = format!("$(touch {}/pwned)", dir.path().display());
        let outcome = run(&line(&format!("echo {}", quote(&payload))));
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.output, serde_json::Value::String(payload));
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn args_are_passed_verbatim() {
        let outcome = run(&args(&["printf", "%s|", "a b", "$HOME", "*"]));
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.stdout.unwrap().text, "a b|$HOME|*|");
    }

    #[test]
    fn empty_args_fail() {
        let outcome = run(&args(&[]));
        assert_eq!(outcome.error.as_deref(), Some("empty `args`"));
        assert_eq!(outcome.exit_code, None);
    }

    #[test]
    fn output_is_trimmed_and_streams_are_separate() {
        let outcome = run(&line("printf '  hi\\n\\n'; echo oops >&2"));
        assert_eq!(outcome.output, serde_json::Value::String("hi".into()));
        assert_eq!(outcome.stdout.unwrap().text, "  hi\n\n");
        let stderr = outcome.stderr.unwrap();
        assert_eq!(stderr.text, "oops\n");
        assert_eq!(stderr.bytes, 5);
        assert!(!stderr.truncated);
        assert_eq!(stderr.sha256, None);
    }

    #[test]
    fn stdin_is_written() {
        let outcome = run(&Request {
            stdin: Some("one\ntwo\n".into()),
            ..line("cat")
        });
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.stdout.unwrap().text, "one\ntwo\n");
        // Without `stdin`, the child reads /dev/null instead of waiting on ours.
        assert_eq!(
            run(&line("cat")).output,
            serde_json::Value::String(String::new())
        );
    }

    #[test]
    fn env_is_added() {
        for text in ["sh -c 'echo $FOO'", "echo $FOO"] {
            let outcome = run(&Request {
                env: vec![("FOO".into(), "bar baz".into())],
                ..line(text)
            });
            assert_eq!(
                outcome.output,
                serde_json::Value::String("bar baz".into()),
                "{text}"
            );
        }
        let outcome = run(&Request {
            env: vec![("A=B".into(), "x".into())],
            ..line("true")
        });
        assert_eq!(outcome.exit_code, Some(127));
    }

    #[test]
    fn programs_of_a_sh_line_are_resolved_and_builtins_left_to_the_shell() {
        let cat = match resolve::program("cat") {
            Resolved::Found(path) => crate::sh::quote(path.to_str().unwrap()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            resolve_line("echo a | PATH=. cat; cd /; ./x"),
            format!("echo a | PATH=. {cat}; cd /; ./x")
        );
        assert_eq!(
            resolve_line("env A=1 'cat' x && command cat"),
            format!(
                "{} A=1 {cat} x && command {cat}",
                match resolve::program("env") {
                    Resolved::Found(p) => crate::sh::quote(p.to_str().unwrap()),
                    other => panic!("{other:?}"),
                }
            )
        );
        assert_eq!(
            resolve_line("kairos-no-such-program || echo x"),
            "/dev/null/kairos-no-such-program || echo x"
        );
        // A line the recogniser does not read is left to the shell as it is.
        assert_eq!(resolve_line("(cat)"), "(cat)");
    }

    #[test]
    fn a_path_in_env_does_not_choose_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("cat");
        std::fs::write(&fake, "#!/bin/sh\necho fake\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        for request in [
            line("cat"),
            line("cat | cat"),
            line(&format!("PATH={path} cat")),
            args(&["cat"]),
        ] {
            let outcome = run(&Request {
                env: vec![("PATH".into(), path.clone())],
                stdin: Some("real".into()),
                ..request.clone()
            });
            assert_eq!(outcome.output, json!("real"), "{request:?}");
        }
    }

    #[test]
    fn exported_bash_functions_do_not_reach_sh() {
        let env = [
            (
                "BASH_FUNC_echo%%".to_string(),
                "() { touch pwned; }".to_string(),
            ),
            ("BASH".to_string(), "x".to_string()),
        ];
        let removed = bash_functions(&env);
        assert!(
            removed.iter().any(|n| n == "BASH_FUNC_echo%%"),
            "{removed:?}"
        );
        assert!(!removed.iter().any(|n| n == "BASH"), "{removed:?}");
    }

    #[test]
    fn cwd_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = run(&Request {
            cwd: Some(dir.path().to_owned()),
            ..line("pwd")
        });
        assert_eq!(outcome.error, None);
        let printed = outcome.output.as_str().unwrap().to_owned();
        assert_eq!(
            Path::new(&printed).canonicalize().unwrap(),
            dir.path().canonicalize().unwrap()
        );

        let missing = dir.path().join("missing");
        let outcome = run(&Request {
            cwd: Some(missing.clone()),
            ..line("pwd")
        });
        assert_eq!(outcome.exit_code, Some(127));
        let error = outcome.error.unwrap();
        assert!(
            error.starts_with("cannot run `pwd`: working directory"),
            "{error}"
        );
    }

    #[test]
    fn exit_codes_and_signals() {
        let outcome = run(&line("sh -c 'exit 3'"));
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.error.as_deref(), Some("exit code 3"));

        let outcome = run(&line("kill -TERM $$"));
        assert_eq!(outcome.exit_code, None);
        assert_eq!(outcome.error.as_deref(), Some("killed by signal 15"));
    }

    #[test]
    fn missing_program_is_127() {
        for request in [
            line("kairos-no-such-program --flag"),
            args(&["kairos-no-such-program"]),
        ] {
            let outcome = run(&request);
            assert_eq!(outcome.exit_code, Some(127));
            let error = outcome.error.unwrap();
            assert!(
                error.starts_with("cannot run `kairos-no-such-program`: "),
                "{error}"
            );
            assert_eq!(outcome.stdout, Some(Captured::default()));
            assert_eq!(outcome.stderr, Some(Captured::default()));
        }
        // Through the shell, the shell reports it.
        let outcome = run(&line("kairos-no-such-program; exit $?"));
        assert_eq!(outcome.exit_code, Some(127));
    }

    #[test]
    fn large_output_is_truncated_and_hashed() {
        let size = 1_200_000;
        let outcome = run(&line(&format!("head -c {size} /dev/zero | tr '\\0' a")));
        assert_eq!(outcome.error, None);
        let stdout = outcome.stdout.unwrap();
        assert_eq!(stdout.bytes, size as u64);
        assert!(stdout.truncated);
        assert_eq!(stdout.text.len(), CAPTURE_LIMIT);
        assert!(stdout.text.bytes().all(|b| b == b'a'));
        let expected = hex::encode(Sha256::digest(vec![b'a'; size]));
        assert_eq!(stdout.sha256, Some(expected));
    }

    #[test]
    fn large_interleaved_stdout_and_stderr_are_both_captured() {
        // Far more than a pipe holds on each stream, written in alternation by one process: it
        // blocks on whichever pipe is full unless both are read as it goes.
        let rounds = 150;
        let pad = "x".repeat(1000);
        let script = format!(
            "s=$(printf '%01000d' 0 | tr 0 x); i=0; while [ $i -lt {rounds} ]; do \
             printf 'o%s%s\\n' $i \"$s\"; printf 'e%s%s\\n' $i \"$s\" >&2; i=$((i+1)); done"
        );
        let outcome = run(&Request {
            timeout: Some(Duration::from_secs(60)),
            ..line(&script)
        });
        assert_eq!(outcome.error, None);
        let expected =
            |tag: char| -> String { (0..rounds).map(|i| format!("{tag}{i}{pad}\n")).collect() };
        for (captured, tag) in [
            (outcome.stdout.unwrap(), 'o'),
            (outcome.stderr.unwrap(), 'e'),
        ] {
            let text = expected(tag);
            assert!(text.len() > 128 * 1024);
            assert_eq!(captured.bytes, text.len() as u64);
            assert!(!captured.truncated);
            assert!(
                captured.text == text,
                "{tag}: {} bytes differ",
                captured.text.len()
            );
        }
        // The same without a timeout.
        let outcome = run(&line(&script));
        assert_eq!(outcome.error, None);
        assert!(outcome.stdout.unwrap().text == expected('o'));
        assert!(outcome.stderr.unwrap().text == expected('e'));
    }

    #[test]
    fn timeout_covers_a_child_that_closed_its_outputs() {
        // The pipes close at once, but the child runs on: the deadline still applies.
        let start = Instant::now();
        let outcome = run(&Request {
            timeout: Some(Duration::from_millis(200)),
            ..line("exec >&- 2>&-; sleep 100")
        });
        assert_eq!(outcome.error.as_deref(), Some("timed out after 200ms"));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_of_exactly_the_limit_is_kept_whole() {
        let outcome = run(&line(&format!("head -c {CAPTURE_LIMIT} /dev/zero")));
        let stdout = outcome.stdout.unwrap();
        assert_eq!(stdout.bytes, CAPTURE_LIMIT as u64);
        assert!(!stdout.truncated);
        assert_eq!(stdout.sha256, None);
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pids");
        let script = format!(
            "echo $$ > {pf}; sleep 100 & echo $! >> {pf}; wait",
            pf = quote(&pidfile.display().to_string())
        );
        let outcome = run(&Request {
            timeout: Some(Duration::from_millis(300)),
            ..line(&script)
        });
        assert_eq!(outcome.error.as_deref(), Some("timed out after 300ms"));
        assert_eq!(outcome.exit_code, None);

        let pids: Vec<u32> = std::fs::read_to_string(&pidfile)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 2);
        for _ in 0..20 {
            if !pids.iter().any(|&pid| alive(pid)) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("still alive: {pids:?}");
    }

    #[test]
    fn timeout_with_background_job() {
        let outcome = run(&Request {
            timeout: Some(Duration::from_millis(300)),
            ..line("sleep 100 & sleep 100")
        });
        assert_eq!(outcome.error.as_deref(), Some("timed out after 300ms"));
        assert_eq!(outcome.exit_code, None);
        assert!(outcome.stdout.is_some());
    }

    #[test]
    fn timeout_covers_a_background_job_holding_the_pipe() {
        // `sh` exits at once, but the `sleep` it left behind keeps stdout open.
        let outcome = run(&Request {
            timeout: Some(Duration::from_millis(200)),
            ..line("echo started; sleep 100 &")
        });
        assert_eq!(outcome.error.as_deref(), Some("timed out after 200ms"));
        assert_eq!(outcome.output, serde_json::Value::String("started".into()));
    }

    #[test]
    fn timeout_returns_even_when_a_process_escapes_the_group() {
        // `setsid` forks (the child leads its group) and the grandchild starts a new session,
        // out of reach of the group kill, holding stdout open: `run` must return anyway.
        let outcome = run(&Request {
            timeout: Some(Duration::from_millis(200)),
            ..args(&["setsid", "sleep", "2"])
        });
        assert_eq!(outcome.error.as_deref(), Some("timed out after 200ms"));
    }

    #[test]
    fn fast_command_with_timeout_succeeds() {
        let outcome = run(&Request {
            timeout: Some(Duration::from_secs(60)),
            ..line("echo fast")
        });
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.output, serde_json::Value::String("fast".into()));
    }

    #[test]
    fn the_tool_runs_a_line_or_args() {
        let call = |a: Value| crate::tools::testing::call(&Shell, &with(a));
        let outcome = call(json!({ "run": "printf '%s' \"$X\"", "env": { "X": 1 } }));
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.output, json!("1"));
        let outcome = call(json!({ "args": ["printf", "%s|", "a b", 2], "stdin": "ignored" }));
        assert_eq!(outcome.output, json!("a b|2|"));
        let outcome = call(json!({ "run": "cat", "stdin": 42 }));
        assert_eq!(outcome.output, json!("42"));
        let outcome = call(json!({ "cwd": "/" }));
        assert_eq!(
            outcome.error.as_deref(),
            Some("`run` or `args` is required")
        );
    }

    #[test]
    fn the_programs_of_a_line_or_args_are_its_resources() {
        let programs = |a: Value| match Shell.resources(&with(a)).as_slice() {
            [Resource::Programs(p)] => p.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            programs(json!({ "run": "git log | wc -l" })),
            Ok(vec!["git".to_string(), "wc".to_string()])
        );
        assert_eq!(
            programs(json!({ "args": ["/usr/bin/git", "status"] })),
            Ok(vec!["/usr/bin/git".to_string()])
        );
        assert!(programs(json!({ "run": "echo $(id)" })).is_err());
        assert!(programs(json!({ "args": [] })).is_err());
    }

    #[test]
    fn a_second_interrupt_kills_a_running_command_and_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pids");
        let script = format!(
            "sleep 100 & echo $! > {pf}.tmp; echo $$ >> {pf}.tmp; mv {pf}.tmp {pf}; wait",
            pf = quote(&pidfile.display().to_string())
        );
        let cancel = Cancel::default();
        let runner = {
            let cancel = cancel.clone();
            thread::spawn(move || super::run(&line(&script), &cancel))
        };
        // The command is running once it has written its pids (and so has registered).
        let mut waited = 0;
        while !pidfile.exists() {
            assert!(waited < 1000, "the command did not start");
            thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        let pids: Vec<u32> = std::fs::read_to_string(&pidfile)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        cancel.interrupt();
        cancel.interrupt();
        let outcome = runner.join().unwrap();
        assert_eq!(outcome.error.as_deref(), Some("killed by signal 9"));
        for _ in 0..100 {
            if !pids.iter().any(|&pid| alive(pid)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("still alive: {pids:?}");
    }
}
