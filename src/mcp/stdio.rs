//! A server started as a process, speaking newline-delimited JSON-RPC on its stdin and
//! stdout (docs/tools.md, "mcp").
//!
//! One connection carries every call to the server at once: requests get their own ids, and a
//! reader thread routes each response to the call waiting for it, answers the server's own
//! requests (`ping`; anything else is "method not found") and accepts notifications. A line
//! on stdout that is not JSON-RPC breaks the connection with a protocol error that quotes it;
//! stderr is kept (its last [`STDERR_TAIL`] bytes) for the errors, which the engine redacts.
//!
//! The server runs in a process group of its own with an explicit environment: `PATH` and
//! `HOME` from kairos's, and what the server's `env` gives, nothing else. Stopping it closes
//! its stdin, waits, sends SIGTERM to the whole group, waits, then SIGKILL: `npx` and other
//! wrappers leave grandchildren that only a signal to the group reaches.

use super::protocol::{self, Incoming, McpError};
use super::{Connection, STOP_GRACE};
use crate::cancel::Cancel;
use crate::sh::resolve::{self, Resolved};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, kill_process_group, pidfd_open};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio as Piped};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bytes of the server's stderr kept for error messages: the last ones.
pub const STDERR_TAIL: usize = 4 * 1024;

/// The longest line read from a server's stdout.
const MAX_LINE: u64 = 64 << 20;

/// How often a waiting call looks at the run's interrupts.
const TICK: Duration = Duration::from_millis(50);

/// What starts a stdio server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

type Reply = Result<Value, McpError>;

/// What the reader thread and the callers share.
#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    stderr: Mutex<Stderr>,
    /// Notified when stderr reaches its end.
    stderr_closed: Condvar,
    stdin: Mutex<Option<ChildStdin>>,
}

/// The end of the server's stderr, and whether the stream is over.
#[derive(Default)]
struct Stderr {
    tail: Vec<u8>,
    closed: bool,
}

/// How long an error waits for the last of a server's stderr (a crashing server's last words
/// may still be in the pipe when its stdout closes).
const STDERR_WAIT: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, Sender<Reply>>,
    /// Why the connection is over, once it is.
    closed: Option<McpError>,
}

pub struct StdioConnection {
    shared: Arc<Shared>,
    child: Mutex<Option<Child>>,
    next_id: AtomicU64,
    program: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StdioConnection {
    /// Starts the server. Its program is the file kairos's own `PATH` finds (what the policy's
    /// `commands` checked), whatever `PATH` its `env` sets.
    pub fn spawn(launch: &Launch) -> Result<Self, McpError> {
        let Some(program) = launch.argv.first() else {
            return Err(McpError::Transport("the server's command is empty".into()));
        };
        let cannot = |why: String| McpError::Transport(format!("cannot start `{program}`: {why}"));
        if let Some((name, _)) = launch
            .env
            .iter()
            .find(|(n, _)| n.is_empty() || n.contains('='))
        {
            return Err(cannot(format!(
                "invalid environment variable name {name:?}"
            )));
        }
        let mut command = match resolve::program(program) {
            Resolved::Found(path) => {
                let mut c = Command::new(path);
                c.arg0(program);
                c
            }
            Resolved::Path => Command::new(program),
            Resolved::Missing => return Err(cannot("not found in PATH".into())),
        };
        command.args(&launch.argv[1..]).env_clear();
        for name in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Piped::piped())
            .stdout(Piped::piped())
            .stderr(Piped::piped())
            .process_group(0);
        if let Some(cwd) = &launch.cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().map_err(|e| cannot(e.to_string()))?;
        let shared = Arc::new(Shared::default());
        *lock(&shared.stdin) = child.stdin.take();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = kill_process_group(Pid::from_child(&child), Signal::KILL);
            let _ = child.wait();
            return Err(cannot("no pipes".into()));
        };
        let connection = StdioConnection {
            shared: Arc::clone(&shared),
            child: Mutex::new(Some(child)),
            next_id: AtomicU64::new(1),
            program: program.clone(),
        };
        let started = spawn_thread("mcp-stderr", {
            let shared = Arc::clone(&shared);
            move || keep_tail(stderr, &shared)
        })
        .and_then(|()| spawn_thread("mcp-stdout", move || read_stdout(stdout, &shared)));
        if let Err(e) = started {
            connection.stop();
            return Err(cannot(e.to_string()));
        }
        Ok(connection)
    }

    fn write(&self, message: &Value) -> Result<(), McpError> {
        let mut line = serde_json::to_vec(message).unwrap_or_default();
        line.push(b'\n');
        let mut stdin = lock(&self.shared.stdin);
        let written = match stdin.as_mut() {
            Some(s) => s.write_all(&line).and_then(|()| s.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        written.map_err(|e| self.closed(format!("cannot write to the server: {e}")))
    }

    /// The error of a connection that ended, with the end of the server's stderr.
    fn closed(&self, why: String) -> McpError {
        McpError::Closed(with_stderr(
            &format!("`{}`: {why}", self.program),
            &self.shared,
        ))
    }

    fn cancel_request(&self, id: u64, reason: &str) {
        lock(&self.shared.pending).waiting.remove(&id);
        let _ = self.write(&protocol::cancelled(id, reason));
    }
}

impl Connection for StdioConnection {
    fn request(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Value, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if let Some(e) = &pending.closed {
                return Err(add_stderr(e.clone(), &self.shared));
            }
            pending.waiting.insert(id, tx);
        }
        if let Err(e) = self.write(&protocol::request(id, method, params)) {
            lock(&self.shared.pending).waiting.remove(&id);
            return Err(e);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(TICK)) {
                Ok(reply) => return reply.map_err(|e| add_stderr(e, &self.shared)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.closed("the connection ended".into()));
                }
                Err(RecvTimeoutError::Timeout) if cancel.killed() => {
                    self.cancel_request(id, "interrupted");
                    return Err(McpError::Interrupted);
                }
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    self.cancel_request(id, "timed out");
                    return Err(McpError::Timeout(timeout));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn notify(&self, method: &str, params: Value) -> Result<(), McpError> {
        self.write(&protocol::notification(method, params))
    }

    fn alive(&self) -> bool {
        lock(&self.shared.pending).closed.is_none()
    }

    fn stop(&self) {
        // Requests still waiting are cancelled first: after a second interrupt the calls that
        // sent them may not get to it before the run ends.
        let mut waiting: Vec<u64> = lock(&self.shared.pending).waiting.keys().copied().collect();
        waiting.sort_unstable();
        for id in waiting {
            let _ = self.write(&protocol::cancelled(id, "the run ended"));
        }
        // Closing stdin is the stop the protocol asks for; a server that ignores it is
        // signalled, its whole group, and what remains of the group is killed.
        drop(lock(&self.shared.stdin).take());
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        let group = Pid::from_child(&child);
        if !exits_within(&child, STOP_GRACE) {
            let _ = kill_process_group(group, Signal::TERM);
            exits_within(&child, STOP_GRACE);
        }
        // Whatever the leader left behind in its group (npx's node): the leader is not reaped
        // yet, so the group's id is still its own.
        let _ = kill_process_group(group, Signal::TERM);
        let _ = kill_process_group(group, Signal::KILL);
        let _ = child.kill();
        let _ = child.wait();
        let mut pending = lock(&self.shared.pending);
        if pending.closed.is_none() {
            pending.closed = Some(McpError::Closed(format!("`{}` was stopped", self.program)));
        }
        pending.waiting.clear();
    }
}

impl Drop for StdioConnection {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
}

/// Whether the child exits within `grace`, without reaping it (its pid stays the group's id).
fn exits_within(child: &Child, grace: Duration) -> bool {
    let Ok(fd) = pidfd_open(Pid::from_child(child), PidfdFlags::empty()) else {
        std::thread::sleep(grace);
        return false;
    };
    let deadline = Instant::now() + grace;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut set = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut set, Timespec::try_from(left).ok().as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => {}
            Ok(_) => return true,
            Err(_) => {
                std::thread::sleep(left);
                return false;
            }
        }
    }
}

/// Reads the server's stdout to its end, routing every message.
fn read_stdout(stdout: impl Read, shared: &Shared) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let why = loop {
        line.clear();
        match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) => break McpError::Closed("the server exited".into()),
            Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 >= MAX_LINE => {
                break McpError::Protocol(format!("a line longer than {MAX_LINE} bytes"));
            }
            Ok(_) => {}
            Err(e) => break McpError::Closed(format!("reading the server's stdout: {e}")),
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match Incoming::parse(&text) {
            Ok(Incoming::Response { id, outcome }) => {
                let waiting = id
                    .as_u64()
                    .and_then(|id| lock(&shared.pending).waiting.remove(&id));
                if let Some(tx) = waiting {
                    let _ = tx.send(outcome);
                }
            }
            Ok(Incoming::Request { id, method }) => {
                let mut line =
                    serde_json::to_vec(&protocol::answer(id, &method)).unwrap_or_default();
                line.push(b'\n');
                if let Some(stdin) = lock(&shared.stdin).as_mut() {
                    let _ = stdin.write_all(&line).and_then(|()| stdin.flush());
                }
            }
            Ok(Incoming::Notification { .. }) => {}
            Err(e) => {
                break McpError::Protocol(format!(
                    "the server wrote to stdout a line that is {}",
                    match e {
                        McpError::Protocol(m) => m,
                        other => other.to_string(),
                    }
                ));
            }
        }
    };
    let mut pending = lock(&shared.pending);
    pending.closed.get_or_insert(why.clone());
    for (_, tx) in pending.waiting.drain() {
        let _ = tx.send(Err(why.clone()));
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of the server's stderr.
fn keep_tail(mut stream: impl Read, shared: &Shared) {
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut kept = lock(&shared.stderr);
                kept.tail.extend_from_slice(&buf[..n]);
                if kept.tail.len() > STDERR_TAIL {
                    let cut = kept.tail.len() - STDERR_TAIL;
                    kept.tail.drain(..cut);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    lock(&shared.stderr).closed = true;
    shared.stderr_closed.notify_all();
}

/// `message`, followed by the end of the server's stderr when it wrote any.
fn with_stderr(message: &str, shared: &Shared) -> String {
    let kept = lock(&shared.stderr);
    let (kept, _) = shared
        .stderr_closed
        .wait_timeout_while(kept, STDERR_WAIT, |s| !s.closed)
        .unwrap_or_else(PoisonError::into_inner);
    let text = String::from_utf8_lossy(&kept.tail);
    let text = text.trim();
    if text.is_empty() {
        message.to_string()
    } else {
        format!("{message}; its stderr ends with: {text}")
    }
}

fn add_stderr(e: McpError, shared: &Shared) -> McpError {
    match e {
        McpError::Closed(m) => McpError::Closed(with_stderr(&m, shared)),
        McpError::Protocol(m) => McpError::Protocol(with_stderr(&m, shared)),
        other => other,
    }
}
