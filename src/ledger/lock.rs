//! One writer per ledger file: the process that writes a ledger (a run, or a resume that
//! continues it) holds an advisory lock on it (`flock`) until it ends, and a resume that finds
//! it held refuses to start. Two processes appending to one file would interleave their lines
//! and leave a ledger that is neither run's.

use std::fs::File;

/// Whether the lock was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Locked {
    Yes,
    /// Another process holds it.
    Busy,
    /// The file system has no locks (some network file systems): the file is written without.
    Unsupported,
}

/// Takes the exclusive lock of `file` without waiting; it is released when the file (every
/// handle of this open) is closed, or the process ends.
pub fn exclusive(file: &File) -> Locked {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Locked::Yes,
        Err(rustix::io::Errno::WOULDBLOCK) => Locked::Busy,
        Err(_) => Locked::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_a_locked_file_is_busy_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let first = File::create(&path).unwrap();
        assert_eq!(exclusive(&first), Locked::Yes);
        let second = File::options().write(true).open(&path).unwrap();
        assert_eq!(exclusive(&second), Locked::Busy);
        drop(first);
        assert_eq!(exclusive(&second), Locked::Yes);
    }
}
