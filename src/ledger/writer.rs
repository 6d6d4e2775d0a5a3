//! The ledger writer: one thread that owns the file.
//!
//! The engine sends event bodies in batches: one string, each body ended by a newline.
//! The writer numbers the lines, prepends the hash of the previous line, hashes the new one,
//! and hands full buffers (or what it has, whenever it has caught up with the engine) to a
//! second thread that owns the file. That thread writes them and syncs the file to disk every
//! 100 ms while there is new data, and at the end, so a crash leaves a valid chain prefix (at
//! most the last line torn) without paying for an fsync per event.

use super::GENESIS;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes of lines gathered before they are written to the file.
const OUT_BUFFER: usize = 256 * 1024;

/// Buffers the hashing thread may queue ahead of the file thread.
const FILE_QUEUE: usize = 4;

/// Batches the engine may queue ahead of the writer (a batch is at most a few hundred KiB).
const QUEUE_BATCHES: usize = 8;

/// Where a ledger goes: a file (synced to disk), or memory (a replay's regenerated ledger).
pub trait Sink: Write + Send + 'static {
    fn sync(&mut self) -> io::Result<()>;
}

impl Sink for File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// An in-memory ledger, readable once the writer has finished.
#[derive(Clone, Default)]
pub struct Memory(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("memory sink poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Memory {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Memory {
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// What the writer wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// Number of lines.
    pub lines: u64,
    /// SHA-256 of the last line (the chain head).
    pub head: String,
}

/// Where the chain continues from (a fresh file, or the end of an existing prefix).
#[derive(Clone, Debug)]
pub struct ChainState {
    pub next_seq: u64,
    pub prev: String,
}

impl Default for ChainState {
    fn default() -> Self {
        Self {
            next_seq: 0,
            prev: GENESIS.to_string(),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the ledger writer had already stopped")
}

/// The default writer writes nothing: it stands in while a run's writer is lent to the
/// committer of a loop's or a call's sub-graph (`engine/scope.rs`).
#[derive(Default)]
pub struct Writer {
    tx: Option<SyncSender<String>>,
    handle: Option<JoinHandle<io::Result<Written>>>,
}

impl Writer {
    /// Starts the writer thread on an open file positioned where lines are to be appended.
    pub fn start(file: impl Sink, chain: ChainState) -> Self {
        // A short queue: when the engine commits faster than the file takes lines, it waits
        // rather than holding the whole ledger in memory.
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_BATCHES);
        let handle = std::thread::Builder::new()
            .name("kairos-ledger".into())
            .spawn(move || write_loop(file, chain, &rx))
            .expect("spawn the ledger writer thread");
        Self {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Queues the events of one commit. If the writer has stopped (a write or sync failed),
    /// returns the error that stopped it.
    pub fn send(&mut self, bodies: String) -> io::Result<()> {
        if bodies.is_empty() {
            return Ok(());
        }
        match self.tx.as_ref().map(|tx| tx.send(bodies)) {
            Some(Ok(())) => Ok(()),
            _ => Err(self.stop().err().unwrap_or_else(stopped)),
        }
    }

    /// Writes what is queued, syncs, and returns the totals.
    pub fn finish(mut self) -> io::Result<Written> {
        self.stop()
    }

    /// Hangs up and waits for the writer threads: their totals, or the error that stopped them.
    fn stop(&mut self) -> io::Result<Written> {
        drop(self.tx.take());
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the ledger writer thread panicked")),
            None => Err(stopped()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Writes lines until the engine hangs up.
///
/// This thread numbers, chains and hashes the lines; a second one, which owns the file,
/// writes them out in large buffers and syncs every `SYNC_INTERVAL` (and at the end). Hashing
/// is the one part that cannot be split up, so nothing else waits on it: neither the write
/// system calls nor the syncs.
fn write_loop(file: impl Sink, chain: ChainState, rx: &Receiver<String>) -> io::Result<Written> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(FILE_QUEUE);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let file_thread = std::thread::Builder::new()
            .name("kairos-ledger-file".into())
            .spawn_scoped(scope, move || file_loop(file, &full_rx, &empty_tx))
            .expect("spawn the ledger file thread");
        let hashed = hash_lines(chain, rx, &full_tx, &empty_rx);
        drop(full_tx);
        let filed = file_thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the ledger file thread panicked")));
        // A file error is why hashing stopped, if it did: it is the one to report.
        filed?;
        hashed
    })
}

/// Writes the buffers it receives, syncing at least every `SYNC_INTERVAL` while there is new
/// data and once at the end; hands the emptied buffers back for reuse.
fn file_loop(
    mut file: impl Sink,
    full: &Receiver<Vec<u8>>,
    empty: &mpsc::Sender<Vec<u8>>,
) -> io::Result<()> {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        let wait = SYNC_INTERVAL.saturating_sub(last_sync.elapsed());
        match full.recv_timeout(if dirty { wait } else { SYNC_INTERVAL }) {
            Ok(mut buffer) => {
                file.write_all(&buffer)?;
                dirty = true;
                buffer.clear();
                let _ = empty.send(buffer);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if dirty && last_sync.elapsed() >= SYNC_INTERVAL {
            file.flush()?;
            file.sync()?;
            last_sync = Instant::now();
            dirty = false;
        }
    }
    file.flush()?;
    file.sync()
}

fn hash_lines(
    chain: ChainState,
    rx: &Receiver<String>,
    full: &SyncSender<Vec<u8>>,
    empty: &Receiver<Vec<u8>>,
) -> io::Result<Written> {
    let fresh = || Vec::with_capacity(OUT_BUFFER + 4096);
    // Hands the buffer to the file thread, taking back an emptied one when there is one.
    let hand_over = |out: &mut Vec<u8>| {
        let next = empty.try_recv().unwrap_or_else(|_| fresh());
        full.send(std::mem::replace(out, next))
            .map_err(|_| io::Error::other("the ledger file thread stopped"))
    };
    // Lines are built in place in the output buffer and hashed there: one copy of each body,
    // no formatting machinery.
    let mut out: Vec<u8> = fresh();
    let mut seq = chain.next_seq;
    let mut prev = [0u8; 64];
    prev.copy_from_slice(chain.prev.as_bytes());
    let mut digits = [0u8; 20];
    let mut batch = rx.recv().ok();
    while let Some(bodies) = batch {
        for body in bodies.split_terminator('\n') {
            let start = out.len();
            out.extend_from_slice(b"{\"seq\":");
            out.extend_from_slice(super::decimal(seq, &mut digits).as_bytes());
            out.extend_from_slice(b",\"prev\":\"");
            out.extend_from_slice(&prev);
            out.extend_from_slice(b"\",");
            out.extend_from_slice(body.as_bytes());
            out.push(b'}');
            let digest = Sha256::digest(&out[start..]);
            hex::encode_to_slice(digest, &mut prev).expect("64 hex digits fit");
            out.push(b'\n');
            seq += 1;
            if out.len() >= OUT_BUFFER {
                hand_over(&mut out)?;
            }
        }
        batch = match rx.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Empty) => {
                // Caught up with the engine: what is hashed goes to the file now.
                if !out.is_empty() {
                    hand_over(&mut out)?;
                }
                rx.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
    if !out.is_empty() {
        hand_over(&mut out)?;
    }
    Ok(Written {
        lines: seq,
        head: String::from_utf8_lossy(&prev).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::sha256_hex;

    #[test]
    fn lines_are_numbered_and_chained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let mut w = Writer::start(File::create(&path).unwrap(), ChainState::default());
        w.send("\"event\":\"A\",\"clock\":0\n\"event\":\"B\",\"clock\":1\n".into())
            .unwrap();
        w.send("\"event\":\"C\",\"clock\":2\n".into()).unwrap();
        let written = w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(written.lines, 3);
        assert_eq!(
            lines[0],
            format!("{{\"seq\":0,\"prev\":\"{GENESIS}\",\"event\":\"A\",\"clock\":0}}")
        );
        assert!(lines[1].contains(&format!("\"prev\":\"{}\"", sha256_hex(lines[0].as_bytes()))));
        assert!(lines[2].starts_with("{\"seq\":2,"));
        assert_eq!(written.head, sha256_hex(lines[2].as_bytes()));
    }

    /// A sink that takes `room` bytes, then fails like a full disk.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.len() > self.room {
                return Err(io::Error::other("disk full"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink for Full {
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_reported_as_itself() {
        let mut w = Writer::start(Full { room: 1 << 20 }, ChainState::default());
        let body = format!(
            "\"event\":\"A\",\"clock\":0,\"pad\":\"{}\"\n",
            "x".repeat(1000)
        );
        let error = (0..100_000)
            .find_map(|_| w.send(body.repeat(16)).err())
            .expect("the sink fills up");
        assert_eq!(error.to_string(), "disk full");
        assert_eq!(
            w.finish().unwrap_err().to_string(),
            "the ledger writer had already stopped"
        );
    }
}
