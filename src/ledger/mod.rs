//! The run ledger (`docs/ledger.md`): JSON Lines, one event per line, each line carrying the
//! SHA-256 of the line before it.
//!
//! [`event::Event`] is every event and its fields, written by the engine and read back by every
//! reader; [`id::InstanceId`] names what an event belongs to; [`writer::Writer`] numbers the lines, chains them, writes them and
//! syncs them to disk in groups, on threads of its own.

pub mod calls;
mod chunk;
pub mod diff;
mod encode;
pub use encode::{Mask, Sink as EventSink};
pub mod event;
pub mod id;
pub mod lock;
pub mod reader;
pub mod schema;
pub mod state;
mod unique;
pub mod writer;

/// The ledger format this kairos writes and reads.
pub const FORMAT: &str = "kairos.ledger/1";

/// `prev` of line 0.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `n` in decimal, written into `digits`: the number formatting of every ledger line, without
/// the formatting machinery.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &str {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only.
    std::str::from_utf8(&digits[i..]).unwrap_or_default()
}

/// The digest that identifies a tool invocation: SHA-256 of the compact JSON
/// `{"tool":NAME,"input":INPUT}` (in that key order), so a replay can tell a changed
/// invocation from the same one.
pub fn input_digest(tool: &str, input_json: &str) -> String {
    let mut text = String::with_capacity(input_json.len() + tool.len() + 20);
    text.push_str("{\"tool\":");
    encode::push_json_str(&mut text, tool);
    text.push_str(",\"input\":");
    text.push_str(input_json);
    text.push('}');
    sha256_hex(text.as_bytes())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 100, 12_345, u64::MAX] {
            assert_eq!(super::decimal(n, &mut [0; 20]), n.to_string());
        }
    }
}
