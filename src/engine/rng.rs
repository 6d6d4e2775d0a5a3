//! Per-node random streams: ChaCha20 seeded from the run seed and the node's id (`docs/determinism.md`), so
//! what a node draws never depends on which nodes ran before it or on which thread.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// The RNG of node (or `for_each` instance) `id` in a run with `seed`.
pub fn for_node(seed: u64, id: &str) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"kairos/rng/v1\0");
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    ChaCha20Rng::from_seed(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_depend_on_seed_and_id_only() {
        let draw = |seed, id| for_node(seed, id).random::<u64>();
        assert_eq!(draw(7, "a"), draw(7, "a"));
        assert_ne!(draw(7, "a"), draw(8, "a"));
        assert_ne!(draw(7, "a"), draw(7, "b"));
        assert_ne!(draw(7, "a[0]"), draw(7, "a[1]"));
    }
}
