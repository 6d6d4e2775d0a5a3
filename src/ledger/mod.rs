//! The run ledger (SPEC section 6): JSON Lines, one event per line, each line carrying the
//! SHA-256 of the line before it.
//!
//! [`event::Event`] builds the body of a line (everything but `seq` and `prev`) without going
//! through a JSON tree; [`writer::Writer`] is the single writer thread that numbers the lines,
//! chains them, writes them and syncs them to disk in groups.

pub mod diff;
pub mod event;
pub mod reader;
pub mod state;
pub mod writer;

/// The ledger format this kairos writes and reads.
pub const FORMAT: &str = "kairos.ledger/1";

/// `prev` of line 0.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
