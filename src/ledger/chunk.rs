//! A ledger read in bounded chunks of lines, with the work on each line that needs no other
//! line done for a whole chunk at once, on rayon's threads.
//!
//! Most of the cost of reading a ledger is per line and independent of every other line: its
//! UTF-8 check, its head read with the duplicate-key check, and its SHA-256. Only linking a line
//! to the one before (`seq` counts on, `prev` is the hash of the line before) is sequential; the
//! reader (`reader.rs`) does that, walking a prepared chunk in order, so what it reports, and
//! for which line, does not depend on the number of threads or the size of a chunk. While the
//! threads prepare one chunk, the calling thread works on the lines of the chunk before it and
//! reads the one after it (for `verify`, hashing the file on the way): see [`Chunks`].
//!
//! Memory stays flat: at most three chunks are held (handed out, being prepared, being read),
//! each of at most [`Limits::default`] lines or bytes (or one line, if that line alone is
//! longer).

use super::reader::{Head, HeadError};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::{self, BufRead};
use std::ops::Range;
use std::sync::{Arc, Mutex, mpsc};

/// How much one chunk holds: lines are added until it has `lines` lines or `bytes` bytes.
/// A chunk of fewer than `parallel_from` lines is prepared on the calling thread.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub lines: usize,
    pub bytes: usize,
    pub parallel_from: usize,
}

impl Default for Limits {
    /// About 6,000 lines of a no-op run: enough per chunk that handing it to the threads costs
    /// little next to the work, little enough to stay in the cache while it is hashed. A small
    /// ledger (most of them) never wakes the thread pool.
    fn default() -> Self {
        Limits {
            lines: 8192,
            bytes: 1 << 20,
            parallel_from: 64,
        }
    }
}

/// At most this many lines go to a thread at once.
const MAX_PIECE: usize = 512;

/// How reading ended after the lines of a chunk.
#[derive(Debug)]
pub enum End {
    /// The end of the file.
    Eof,
    /// Reading failed.
    Io(io::Error),
    /// The line after the chunk's lines is not UTF-8 (reported as `read_line` does).
    NotUtf8,
}

/// Lines as read, before they are prepared.
#[derive(Default)]
pub struct Raw {
    bytes: Vec<u8>,
    /// Each line's bytes in `bytes`, its newline included if it has one.
    lines: Vec<Range<usize>>,
    end: Option<End>,
}

impl Raw {
    /// Reads lines from `source` until the chunk is full or reading ends. Reuses `self`'s
    /// buffers.
    pub fn fill<R: BufRead>(&mut self, source: &mut R, limits: Limits) {
        self.bytes.clear();
        self.lines.clear();
        self.end = None;
        while self.lines.len() < limits.lines && self.bytes.len() < limits.bytes {
            let start = self.bytes.len();
            match source.read_until(b'\n', &mut self.bytes) {
                Ok(0) => {
                    self.end = Some(End::Eof);
                    return;
                }
                Ok(_) => self.lines.push(start..self.bytes.len()),
                Err(e) => {
                    self.bytes.truncate(start);
                    self.end = Some(End::Io(e));
                    return;
                }
            }
        }
    }

    /// Whether reading ended with this chunk.
    pub fn is_last(&self) -> bool {
        self.end.is_some()
    }
}

/// What was learnt of one line without looking at any other.
#[derive(Debug)]
pub enum Prepared {
    /// No newline at its end (only the last line of a file can be so).
    Torn,
    /// Its head cannot be read.
    Bad(Box<HeadError>),
    Good {
        head: Spans,
        /// Lowercase hex SHA-256 of the line, without its newline.
        sha256: [u8; 64],
    },
}

/// A [`Head`] as positions in its line, so that it can be kept beside the chunk's text.
#[derive(Debug)]
pub struct Spans {
    seq: u64,
    clock: u64,
    prev: Range<usize>,
    event: Range<usize>,
    node: Option<Range<usize>>,
}

impl Spans {
    /// The head again, over the line it was read from.
    pub fn head<'a>(&self, text: &'a str) -> Head<'a> {
        Head {
            seq: self.seq,
            prev: &text[self.prev.clone()],
            event: &text[self.event.clone()],
            node: self.node.clone().map(|r| &text[r]),
            clock: self.clock,
        }
    }
}

/// A chunk whose lines are UTF-8 and prepared.
#[derive(Default)]
pub struct Chunk {
    text: String,
    /// Each line's text in `text`, without its newline.
    lines: Vec<Range<usize>>,
    prepared: Vec<Prepared>,
    end: Option<End>,
    /// The raw chunk's line list, kept for reading the next chunk into.
    spare: Vec<Range<usize>>,
}

impl Chunk {
    /// Prepares the lines of `raw` (on the thread pool if there are many). Lines after one
    /// that is not UTF-8 are dropped: reading stops there.
    pub fn prepare(raw: Raw, into: Chunk, parallel_from: usize) -> Chunk {
        let Raw {
            bytes,
            mut lines,
            mut end,
        } = raw;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let bad = e.utf8_error().valid_up_to();
                let mut bytes = e.into_bytes();
                // Lines end with `\n`, which no UTF-8 sequence contains: the line holding the
                // first bad byte is the first line that is not UTF-8 on its own.
                let keep = lines.partition_point(|r| r.end <= bad);
                let cut = lines.get(keep).map_or(bytes.len(), |r| r.start);
                lines.truncate(keep);
                bytes.truncate(cut);
                end = Some(End::NotUtf8);
                String::from_utf8(bytes).unwrap_or_default()
            }
        };
        let Chunk {
            lines: mut spans,
            mut prepared,
            ..
        } = into;
        spans.clear();
        spans.extend(lines.iter().map(|r| match text.as_bytes()[r.clone()] {
            [.., b'\n'] => r.start..r.end - 1,
            _ => r.clone(),
        }));
        let one = |(r, raw): (&Range<usize>, &Range<usize>)| {
            prepare_line(&text[r.clone()], raw.len() > r.len())
        };
        if spans.len() < parallel_from {
            prepared.clear();
            prepared.extend(spans.iter().zip(&lines).map(one));
        } else {
            spans
                .par_iter()
                .zip(&lines)
                // Pieces small enough that a thread the system has paused holds back little:
                // the others take the rest of its half (machines are shared).
                .with_max_len(MAX_PIECE)
                .map(one)
                .collect_into_vec(&mut prepared);
        }
        Chunk {
            text,
            lines: spans,
            prepared,
            end,
            spare: lines,
        }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Line `i`'s text (without its newline) and what was prepared of it.
    pub fn line(&self, i: usize) -> (&str, &Prepared) {
        (&self.text[self.lines[i].clone()], &self.prepared[i])
    }

    /// How reading ended after this chunk, taken once.
    pub fn take_end(&mut self) -> Option<End> {
        self.end.take()
    }

    /// The buffers, emptied, for reading the next chunk into.
    pub fn recycle(&mut self) -> Raw {
        let mut bytes = std::mem::take(&mut self.text).into_bytes();
        bytes.clear();
        let mut lines = std::mem::take(&mut self.spare);
        lines.clear();
        Raw {
            bytes,
            lines,
            end: None,
        }
    }
}

/// The chunks of a source, in order, each prepared while the one before is handed out.
///
/// On an ordinary thread, a chunk is handed to rayon's pool to prepare and the caller goes on
/// with the chunk before it: reading, preparing and the caller's own work on the lines overlap.
/// On a thread of a rayon pool (a caller that is itself parallel), waiting for the pool could
/// wait for this very thread, so the chunk is prepared in a scope that this thread helps with,
/// while it reads the next.
pub struct Chunks<R> {
    source: R,
    limits: Limits,
    /// The next chunk: being prepared on the pool, or read and waiting to be.
    ahead: Option<Ahead>,
    /// Whether the source has ended (the last chunk read says how).
    read_all: bool,
}

enum Ahead {
    Preparing(Job),
    Read(Raw),
}

impl<R: BufRead> Chunks<R> {
    pub fn new(source: R, limits: Limits) -> Self {
        Chunks {
            source,
            limits,
            ahead: None,
            read_all: false,
        }
    }

    /// The chunk after `used` (the first one the first time), prepared; `used`'s buffers are
    /// reused. Once a chunk ends the source, it is the last one asked for.
    pub fn next(&mut self, mut used: Chunk) -> Chunk {
        let ahead = match self.ahead.take() {
            Some(ahead) => ahead,
            None => {
                let raw = self.read(used.recycle());
                if raw.is_last() {
                    // All of a small ledger: no thread to hand it to.
                    return Chunk::prepare(raw, used, self.limits.parallel_from);
                }
                Ahead::Read(raw)
            }
        };
        if rayon::current_thread_index().is_some() {
            self.next_in_pool(ahead, used)
        } else {
            self.next_beside_pool(ahead, used)
        }
    }

    /// On an ordinary thread: the next chunk is waited for, the one after it read meanwhile,
    /// then handed to the pool.
    fn next_beside_pool(&mut self, ahead: Ahead, mut used: Chunk) -> Chunk {
        let preparing = match ahead {
            Ahead::Preparing(preparing) => preparing,
            Ahead::Read(raw) => self.spawn(raw, Chunk::default()),
        };
        let raw = (!self.read_all).then(|| self.read(used.recycle()));
        let chunk = preparing.wait();
        self.ahead = raw.map(|raw| Ahead::Preparing(self.spawn(raw, used)));
        chunk
    }

    /// On a pool's own thread: the next chunk is prepared in a scope while this thread reads
    /// the one after it, then helps.
    fn next_in_pool(&mut self, ahead: Ahead, mut used: Chunk) -> Chunk {
        let raw = match ahead {
            Ahead::Read(raw) => raw,
            // Started on an ordinary thread, now asked for on a pool's.
            Ahead::Preparing(preparing) => return preparing.wait(),
        };
        if self.read_all {
            return Chunk::prepare(raw, used, self.limits.parallel_from);
        }
        let mut next = used.recycle();
        let parallel_from = self.limits.parallel_from;
        let mut chunk = None;
        let (source, limits) = (&mut self.source, self.limits);
        // The source stays on this thread (it need not be `Send`); the lines go to the pool.
        rayon::in_place_scope(|scope| {
            scope.spawn(|_| chunk = Some(Chunk::prepare(raw, used, parallel_from)));
            next.fill(source, limits);
        });
        self.read_all = next.is_last();
        self.ahead = Some(Ahead::Read(next));
        chunk.unwrap_or_default()
    }

    fn read(&mut self, mut raw: Raw) -> Raw {
        raw.fill(&mut self.source, self.limits);
        self.read_all = raw.is_last();
        raw
    }

    /// Prepares `raw` on the pool.
    fn spawn(&self, raw: Raw, into: Chunk) -> Job {
        let (send, done) = mpsc::sync_channel(1);
        let work = Arc::new(Mutex::new(Some((raw, into))));
        let parallel_from = self.limits.parallel_from;
        let job = Job {
            work: Arc::clone(&work),
            done,
        };
        rayon::spawn(move || {
            // Taken back by the reader if it came first (see `Job::wait`).
            let Some((raw, into)) = take(&work) else {
                return;
            };
            let chunk = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Chunk::prepare(raw, into, parallel_from)
            }));
            // A reader left early has dropped the receiver: the chunk is not needed.
            let _ = send.send(chunk);
        });
        job
    }
}

/// A chunk handed to the pool to prepare.
struct Job {
    /// The chunk's lines until a thread starts on them.
    work: Arc<Mutex<Option<(Raw, Chunk)>>>,
    /// The chunk, or the panic of the thread that prepared it.
    done: mpsc::Receiver<std::thread::Result<Chunk>>,
}

impl Job {
    /// The prepared chunk. If no thread of the pool has started on it (a busy machine has not
    /// given them a turn), the caller prepares it itself rather than wait for one.
    fn wait(self) -> Chunk {
        if let Some((raw, into)) = take(&self.work) {
            return Chunk::prepare(raw, into, usize::MAX);
        }
        match self.done.recv() {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            // The job sends before it ends, once it has taken the work.
            Err(mpsc::RecvError) => unreachable!("a chunk's job ended without its chunk"),
        }
    }
}

/// Takes the work of a job, once.
fn take(work: &Mutex<Option<(Raw, Chunk)>>) -> Option<(Raw, Chunk)> {
    // Nothing that can panic runs under the lock, but a poisoned one holds its value still.
    work.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The work on one line that needs no other line.
fn prepare_line(text: &str, newline: bool) -> Prepared {
    if !newline {
        return Prepared::Torn;
    }
    let head = match Head::read(text) {
        Ok(head) => head,
        Err(e) => return Prepared::Bad(Box::new(e)),
    };
    // The head's strings are borrowed from the line (`unique.rs` reads them as `&str`).
    let at = |s: &str| {
        let start = s.as_ptr().addr() - text.as_ptr().addr();
        start..start + s.len()
    };
    let spans = Spans {
        seq: head.seq,
        clock: head.clock,
        prev: at(head.prev),
        event: at(head.event),
        node: head.node.map(at),
    };
    let mut sha256 = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(text.as_bytes()), &mut sha256).expect("64 hex digits fit");
    Prepared::Good {
        head: spans,
        sha256,
    }
}

#[cfg(test)]
mod tests;
