//! The progress line `kairos run` keeps on a terminal's standard error while a run runs:
//! nodes committed out of the total, failures, the time since the start and what is running.
//!
//! It is one line, redrawn in place (`\r`, then erase to the end of the line) at most ten
//! times a second by a thread of its own, cut to the terminal's width so that it never wraps,
//! and erased when the run ends or while a person is asked for a decision (the prompt has the
//! terminal to itself). It is fed by the engine's observer (see `engine::observe`), so it
//! never changes what the run does or writes. The caller decides whether to show it at all
//! (only on a terminal) and whether in colour (not with `NO_COLOR`).
//!
//! A hand-written line instead of a progress-bar crate: this is all kairos draws, and it needs
//! no more than `\r` and one erase sequence.

use crate::engine::{AttemptInfo, Lane, Observer, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the line is redrawn (the elapsed time moves on even when nothing else does).
const TICK: Duration = Duration::from_millis(100);

/// Erases from the cursor to the end of the line.
const ERASE: &str = "\x1b[K";

/// What the line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub denied: usize,
    /// Node instances with a call running, by the thread that runs it.
    pub running: Vec<String>,
    pub elapsed: Duration,
}

/// A piece of the line and how it is shown in colour.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Bold,
    Red,
    Yellow,
    Dim,
}

impl Style {
    fn sgr(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "\x1b[1m",
            Style::Red => "\x1b[31m",
            Style::Yellow => "\x1b[33m",
            Style::Dim => "\x1b[2m",
        }
    }
}

impl Snapshot {
    /// The line, at most `width - 1` columns wide (the last column would make some terminals
    /// wrap), with colours when `colour`.
    pub fn line(&self, width: usize, colour: bool) -> String {
        let secs = self.elapsed.as_secs();
        let elapsed = match secs {
            0..3600 => format!("{}:{:02}", secs / 60, secs % 60),
            _ => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        };
        let mut parts: Vec<(String, Style)> = vec![
            ("kairos: ".into(), Style::Plain),
            (format!("{}/{}", self.done, self.total), Style::Bold),
            (" nodes".into(), Style::Plain),
        ];
        if self.failed > 0 {
            parts.push((", ".into(), Style::Plain));
            parts.push((format!("{} failed", self.failed), Style::Red));
        }
        if self.denied > 0 {
            parts.push((", ".into(), Style::Plain));
            parts.push((format!("{} denied", self.denied), Style::Yellow));
        }
        parts.push((format!("  {elapsed}"), Style::Dim));
        if !self.running.is_empty() {
            const SHOWN: usize = 4;
            let mut names = self
                .running
                .iter()
                .take(SHOWN)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if self.running.len() > SHOWN {
                names.push_str(&format!(" +{} more", self.running.len() - SHOWN));
            }
            parts.push(("  running: ".into(), Style::Plain));
            parts.push((names, Style::Plain));
        }
        let mut budget = width.saturating_sub(1);
        let mut out = String::new();
        for (text, style) in parts {
            if budget == 0 {
                break;
            }
            let piece: String = text.chars().take(budget).collect();
            budget -= piece.chars().count();
            if colour && style != Style::Plain {
                out.push_str(style.sgr());
                out.push_str(&piece);
                out.push_str("\x1b[0m");
            } else {
                out.push_str(&piece);
            }
        }
        out
    }
}

/// The display's state, shared by the observer (called from the engine's threads) and the
/// thread that redraws.
struct State {
    out: Box<dyn Write + Send>,
    colour: bool,
    /// The terminal's width, asked again at each draw (windows are resized).
    width: Box<dyn Fn() -> usize + Send>,
    start: Instant,
    total: usize,
    done: usize,
    failed: usize,
    denied: usize,
    running: BTreeMap<Lane, String>,
    /// Approvals requested and not decided: the line stays off while a person may be asked.
    waiting: BTreeSet<String>,
    /// Whether a line is on the screen, and what it says.
    shown: Option<String>,
    /// Whether anything happened yet (before that, another note may still be printed).
    started: bool,
    stopped: bool,
}

impl State {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            total: self.total,
            done: self.done,
            failed: self.failed,
            denied: self.denied,
            running: self.running.values().cloned().collect(),
            elapsed: self.start.elapsed(),
        }
    }

    fn draw(&mut self) {
        if !self.started || self.stopped || !self.waiting.is_empty() {
            return;
        }
        let line = self.snapshot().line((self.width)(), self.colour);
        if self.shown.as_ref() == Some(&line) {
            return;
        }
        // A terminal that went away is not worth an error: the line is only for show.
        let _ = write!(self.out, "\r{line}{ERASE}").and_then(|()| self.out.flush());
        self.shown = Some(line);
    }

    fn clear(&mut self) {
        if self.shown.take().is_some() {
            let _ = write!(self.out, "\r{ERASE}").and_then(|()| self.out.flush());
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the drawing thread to stop.
    wake: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes in an observation; the first one draws at once.
    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state();
        change(&mut state);
        if !state.started {
            state.started = true;
            state.draw();
        }
    }
}

impl Observer for Shared {
    fn attempt_started(&self, info: &AttemptInfo<'_>, _: Instant) {
        self.update(|s| {
            s.running.insert(info.lane, info.instance.to_string());
        });
    }

    fn attempt_finished(&self, info: &AttemptInfo<'_>, _: bool, _: Instant) {
        self.update(|s| {
            s.running.remove(&info.lane);
        });
    }

    fn node_committed(&self, _: &str, status: Status, _: Instant) {
        self.update(|s| {
            s.done += 1;
            match status {
                Status::Failed => s.failed += 1,
                Status::Denied => s.denied += 1,
                Status::Succeeded | Status::Skipped => {}
            }
        });
    }

    fn approval_requested(&self, node: &str, _: Instant) {
        self.update(|s| {
            s.waiting.insert(node.to_string());
            s.clear();
        });
    }

    fn approval_decided(&self, node: &str, _: bool, _: Instant) {
        self.update(|s| {
            s.waiting.remove(node);
        });
    }
}

/// The progress line, drawn until [`Progress::finish`].
pub struct Progress {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing to `out` (a terminal: standard error) a run of `total` nodes; `width`
    /// gives the terminal's width in columns.
    pub fn start(
        total: usize,
        colour: bool,
        out: Box<dyn Write + Send>,
        width: Box<dyn Fn() -> usize + Send>,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                out,
                colour,
                width,
                start: Instant::now(),
                total,
                done: 0,
                failed: 0,
                denied: 0,
                running: BTreeMap::new(),
                waiting: BTreeSet::new(),
                shown: None,
                started: false,
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        let ticker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("kairos-progress".into())
            .spawn(move || {
                let mut state = ticker.state();
                while !state.stopped {
                    state.draw();
                    state = ticker
                        .wake
                        .wait_timeout(state, TICK)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            })
            .ok();
        Self { shared, thread }
    }

    /// On standard error, when it is a terminal (not `TERM=dumb`): in colour unless
    /// `NO_COLOR` is set. `None` when it is not a terminal.
    pub fn on_stderr(total: usize) -> Option<Self> {
        let stderr = std::io::stderr();
        let terminal = std::io::IsTerminal::is_terminal(&stderr)
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        if !terminal {
            return None;
        }
        let colour = std::env::var_os("NO_COLOR").is_none();
        let width = || {
            rustix::termios::tcgetwinsize(std::io::stderr())
                .map(|w| usize::from(w.ws_col))
                .ok()
                .filter(|&w| w > 0)
                .unwrap_or(80)
        };
        Some(Self::start(
            total,
            colour,
            Box::new(stderr),
            Box::new(width),
        ))
    }

    /// The observer that feeds the line.
    pub fn observer(&self) -> Arc<dyn Observer> {
        Arc::clone(&self.shared) as Arc<dyn Observer>
    }

    /// Stops drawing and erases the line.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut state = self.shared.state();
            state.stopped = true;
            state.clear();
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            total: 12,
            done: 5,
            failed: 1,
            denied: 0,
            running: ["fetch[0]", "fetch[1]", "build", "lint", "docs", "pack"]
                .map(String::from)
                .to_vec(),
            elapsed: Duration::from_secs(75),
        }
    }

    #[test]
    fn the_line_says_done_total_failures_elapsed_and_what_runs() {
        assert_eq!(
            snapshot().line(200, false),
            "kairos: 5/12 nodes, 1 failed  1:15  running: fetch[0], fetch[1], build, lint +2 more"
        );
        let hours = Snapshot {
            elapsed: Duration::from_secs(3 * 3600 + 61),
            running: Vec::new(),
            failed: 0,
            ..snapshot()
        };
        assert_eq!(hours.line(200, false), "kairos: 5/12 nodes  3:01:01");
    }

    #[test]
    fn the_line_fits_the_terminal_and_has_colour_only_when_asked() {
        let plain = snapshot().line(30, false);
        assert_eq!(plain, "kairos: 5/12 nodes, 1 failed ");
        assert!(!plain.contains('\x1b'));
        let coloured = snapshot().line(30, true);
        assert!(coloured.contains("\x1b[1m5/12\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[31m1 failed\x1b[0m"), "{coloured:?}");
    }

    /// A shared buffer standing in for the terminal.
    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_line_is_off_while_a_person_is_asked_and_erased_at_the_end() {
        let screen = Screen::default();
        let progress = Progress::start(3, false, Box::new(screen.clone()), Box::new(|| 80));
        let o = progress.observer();
        let now = Instant::now();
        let info = AttemptInfo {
            instance: "build",
            tool: "shell",
            attempt: 1,
            lane: Lane::Worker(0),
        };
        o.attempt_started(&info, now);
        let text = || String::from_utf8(screen.0.lock().unwrap().clone()).unwrap();
        assert!(
            text().starts_with("\rkairos: 0/3 nodes  0:00  running: build\x1b[K"),
            "the first observation draws at once: {:?}",
            text()
        );
        o.attempt_finished(&info, false, now);
        o.node_committed("build", Status::Succeeded, now);
        o.approval_requested("ship", now);
        let asked = text().len();
        assert!(text().ends_with("\r\x1b[K"), "erased for the prompt");
        std::thread::sleep(TICK * 3);
        assert_eq!(text().len(), asked, "nothing drawn while waiting");
        o.approval_decided("ship", true, now);
        progress.finish();
        assert!(
            text().ends_with("\r\x1b[K"),
            "erased at the end: {:?}",
            text()
        );
    }
}
