//! The canonical commit order (`docs/determinism.md`) as ranks, and sets of nodes kept in that order.
//!
//! The order is static: approvals (and calls that need one) last, then the highest priority,
//! then the earliest declared. Each node gets its rank once, before the run; the scheduler's
//! "what is ready" and "what may commit" sets then only need the smallest rank they hold,
//! which a hierarchical bitset gives in a few word operations, without the cache misses of a
//! binary heap.

use crate::workflow::NodeIdx;

/// Node index to rank and back. Empty maps stand for the identity, the usual case (no
/// priorities, no approvals), where the rank is the declaration index.
pub struct Order {
    rank_of: Vec<u32>,
    node_of: Vec<NodeIdx>,
}

impl Order {
    /// `key(i)` is (is an approval, priority) of node `i`.
    pub fn new(n: usize, key: impl Fn(usize) -> (bool, i64)) -> Self {
        if (0..n).all(|i| key(i) == (false, 0)) {
            return Self {
                rank_of: Vec::new(),
                node_of: Vec::new(),
            };
        }
        let mut node_of: Vec<NodeIdx> = (0..n as NodeIdx).collect();
        node_of.sort_by_key(|&i| {
            let (approval, priority) = key(i as usize);
            (approval, std::cmp::Reverse(priority), i)
        });
        let mut rank_of = vec![0; n];
        for (rank, &node) in node_of.iter().enumerate() {
            rank_of[node as usize] = rank as u32;
        }
        Self { rank_of, node_of }
    }

    pub fn rank(&self, node: NodeIdx) -> u32 {
        self.rank_of.get(node as usize).copied().unwrap_or(node)
    }

    pub fn node(&self, rank: u32) -> NodeIdx {
        self.node_of.get(rank as usize).copied().unwrap_or(rank)
    }
}

/// A set of numbers below a bound fixed at creation, with its smallest member at hand.
///
/// Level 0 has a bit per number; each level above has a bit per non-empty word of the level
/// below, up to a single word. Finding the smallest member reads one word per level.
pub struct RankSet {
    levels: Vec<Vec<u64>>,
}

impl RankSet {
    pub fn new(bound: usize) -> Self {
        let mut levels = Vec::new();
        let mut size = bound.max(1);
        loop {
            let words = size.div_ceil(64);
            levels.push(vec![0; words]);
            if words == 1 {
                return Self { levels };
            }
            size = words;
        }
    }

    pub fn insert(&mut self, value: u32) {
        let mut i = value as usize;
        for level in &mut self.levels {
            let word = &mut level[i / 64];
            let was_empty = *word == 0;
            *word |= 1 << (i % 64);
            if !was_empty {
                return;
            }
            i /= 64;
        }
    }

    pub fn remove(&mut self, value: u32) {
        let mut i = value as usize;
        for level in &mut self.levels {
            let word = &mut level[i / 64];
            *word &= !(1 << (i % 64));
            if *word != 0 {
                return;
            }
            i /= 64;
        }
    }

    pub fn first(&self) -> Option<u32> {
        let mut i = 0;
        for level in self.levels.iter().rev() {
            let word = level[i];
            if word == 0 {
                return None;
            }
            i = i * 64 + word.trailing_zeros() as usize;
        }
        Some(i as u32)
    }

    pub fn pop_first(&mut self) -> Option<u32> {
        let first = self.first()?;
        self.remove(first);
        Some(first)
    }

    /// The members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.levels[0].iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| (w * 64 + b) as u32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn behaves_like_an_ordered_set(
            bound in 1usize..20_000,
            ops in proptest::collection::vec((any::<bool>(), any::<u32>()), 0..400),
        ) {
            let mut set = RankSet::new(bound);
            let mut model = BTreeSet::new();
            for (insert, v) in ops {
                let v = v % bound as u32;
                if insert {
                    set.insert(v);
                    model.insert(v);
                } else if v.is_multiple_of(3) {
                    prop_assert_eq!(set.pop_first(), model.pop_first());
                } else {
                    set.remove(v);
                    model.remove(&v);
                }
                prop_assert_eq!(set.first(), model.first().copied());
            }
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn ranks_put_approvals_last_then_priority_then_declaration() {
        let keys = [(false, 0), (true, 5), (false, 3), (false, 0), (true, 0)];
        let order = Order::new(keys.len(), |i| keys[i]);
        let ranked: Vec<NodeIdx> = (0..5).map(|r| order.node(r)).collect();
        assert_eq!(ranked, [2, 0, 3, 1, 4]);
        for r in 0..5 {
            assert_eq!(order.rank(order.node(r)), r);
        }
        let plain = Order::new(3, |_| (false, 0));
        assert_eq!((plain.rank(2), plain.node(1)), (2, 1));
    }
}
