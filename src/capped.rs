//! A byte stream kept up to a cap: its first bytes, its full size, and, once it outgrows the
//! cap, the SHA-256 of the whole of it. A process's output and an HTTP response body are both
//! recorded this way (docs/tools.md), so both read through this.

use sha2::{Digest, Sha256};

/// A stream as read so far.
pub struct Capped {
    limit: usize,
    /// The first `limit` bytes.
    kept: Vec<u8>,
    /// All bytes read.
    bytes: u64,
    /// Hash of everything read, started only once the stream outgrows `kept`: most streams
    /// never do, and then the hash is not needed.
    hasher: Option<Sha256>,
}

/// What a [`Capped`] stream gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kept {
    /// The first bytes, up to the cap.
    pub kept: Vec<u8>,
    /// The full size.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the whole stream, when it outgrew the cap.
    pub sha256: Option<String>,
}

impl Kept {
    /// Whether the stream outgrew the cap (only its first bytes are kept).
    pub fn truncated(&self) -> bool {
        self.sha256.is_some()
    }
}

impl Capped {
    pub fn new(limit: usize) -> Self {
        Capped {
            limit,
            kept: Vec::new(),
            bytes: 0,
            hasher: None,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        let (keep, rest) = chunk.split_at(room.min(chunk.len()));
        self.kept.extend_from_slice(keep);
        if !rest.is_empty() {
            // The first overflow finds `kept` full, i.e. holding exactly the stream's prefix.
            let hasher = self
                .hasher
                .get_or_insert_with(|| Sha256::new_with_prefix(&self.kept));
            hasher.update(rest);
        }
        self.bytes += chunk.len() as u64;
    }

    /// Reads `from` to its end (an interrupted read is tried again); an error ends the
    /// reading, what was read before it is kept.
    pub fn read_from(&mut self, from: &mut impl std::io::Read) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn finish(self) -> Kept {
        Kept {
            kept: self.kept,
            bytes: self.bytes,
            sha256: self.hasher.map(|h| hex::encode(h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_size_and_digest_of_the_whole_are_kept() {
        let mut c = Capped::new(4);
        c.push(b"ab");
        c.push(b"cdef");
        c.push(b"g");
        let k = c.finish();
        assert_eq!(k.kept, b"abcd");
        assert_eq!(k.bytes, 7);
        assert_eq!(
            k.sha256.as_deref(),
            Some(hex::encode(Sha256::digest(b"abcdefg")).as_str())
        );
        let mut c = Capped::new(4);
        c.push(b"abcd");
        assert_eq!(
            c.finish().sha256,
            None,
            "a stream at the cap needs no digest"
        );
    }
}
