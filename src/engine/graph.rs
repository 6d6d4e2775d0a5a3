//! The graph as the scheduler reads it: dense arrays built in one pass over the node table,
//! and the dynamic state of which nodes are ready to begin and which may commit.
//!
//! [`Graph`] never changes during a run: what each node waits for (`deps`, then `after`),
//! who waits for it, which nodes an expression reads, and each node's rank in the canonical
//! commit order. [`Schedule`] counts, per node, the nodes it still waits for (for its result
//! and for its commit) and holds the ready and committable sets in rank order.

use super::order::{Order, RankSet};
use crate::workflow::{Node, NodeIdx, Workflow};

pub(super) struct Graph {
    succ_start: Vec<u32>,
    succ: Vec<NodeIdx>,
    /// What each node waits for: `pred[pred_start[i]..deps_end[i]]` are its `deps`, the rest
    /// up to `pred_start[i + 1]` its `after`.
    pred_start: Vec<u32>,
    deps_end: Vec<u32>,
    pred: Vec<NodeIdx>,
    /// Whether some expression reads the node (only then is its value kept).
    read: Vec<bool>,
    /// Each node's rank in the canonical order.
    order: Order,
}

impl Graph {
    /// `last(node)`: whether the node waits for a person, and so commits after everything
    /// that does not.
    pub fn new(wf: &Workflow, last: impl Fn(&Node) -> bool) -> Self {
        let n = wf.nodes.len();
        // One pass over the nodes (large, and their lists scattered over the heap) gathers
        // what the run reads per node into dense arrays: what each node waits for (`deps`
        // then `after`), which nodes are read, and the keys of the canonical order.
        let mut pred_start = Vec::with_capacity(n + 1);
        let mut deps_end = Vec::with_capacity(n);
        let mut pred = Vec::with_capacity(wf.edge_count());
        let mut read = vec![false; n];
        let mut keys = Vec::with_capacity(n);
        pred_start.push(0);
        for node in &wf.nodes {
            pred.extend_from_slice(&node.deps);
            deps_end.push(pred.len() as u32);
            pred.extend_from_slice(&node.after);
            pred_start.push(pred.len() as u32);
            for &r in &node.reads {
                read[r as usize] = true;
            }
            keys.push((last(node), node.priority));
        }
        for &r in &wf.output_reads {
            read[r as usize] = true;
        }
        let mut succ_start = vec![0u32; n + 1];
        for &p in &pred {
            succ_start[p as usize + 1] += 1;
        }
        for i in 0..n {
            succ_start[i + 1] += succ_start[i];
        }
        let mut fill = succ_start.clone();
        let mut succ = vec![0; succ_start[n] as usize];
        for i in 0..n {
            for &p in &pred[pred_start[i] as usize..pred_start[i + 1] as usize] {
                succ[fill[p as usize] as usize] = i as NodeIdx;
                fill[p as usize] += 1;
            }
        }
        Self {
            succ_start,
            succ,
            pred_start,
            deps_end,
            pred,
            read,
            order: Order::new(n, |i| keys[i]),
        }
    }

    pub fn len(&self) -> usize {
        self.read.len()
    }

    /// Everything `i` waits for.
    pub fn preds(&self, i: NodeIdx) -> &[NodeIdx] {
        let i = i as usize;
        &self.pred[self.pred_start[i] as usize..self.pred_start[i + 1] as usize]
    }

    /// What `i` needs (its `deps`; not the nodes it only reads).
    pub fn deps(&self, i: NodeIdx) -> &[NodeIdx] {
        let i = i as usize;
        &self.pred[self.pred_start[i] as usize..self.deps_end[i] as usize]
    }

    /// The nodes that wait for `i`.
    pub fn succs(&self, i: NodeIdx) -> &[NodeIdx] {
        let i = i as usize;
        &self.succ[self.succ_start[i] as usize..self.succ_start[i + 1] as usize]
    }

    /// Whether an expression reads `i`.
    pub fn is_read(&self, i: NodeIdx) -> bool {
        self.read[i as usize]
    }

    pub fn rank(&self, i: NodeIdx) -> u32 {
        self.order.rank(i)
    }

    pub fn node(&self, rank: u32) -> NodeIdx {
        self.order.node(rank)
    }
}

/// Which nodes may begin and which may commit, in canonical order.
pub(super) struct Schedule {
    /// Per node, the nodes it waits for that have no result yet.
    pending_results: Vec<u32>,
    /// Per node, the nodes it waits for that have not committed yet.
    pending_commits: Vec<u32>,
    /// Ranks of the nodes whose inputs have results, to begin (or to resolve) in commit order:
    /// what starts first is what commits first, so results are written and dropped at once.
    ready: RankSet,
    /// Ranks of the nodes that may commit once they have their result: everything they wait
    /// for has committed.
    commits: RankSet,
    /// Whether a node's result has been passed on to its dependents: only then may it be
    /// committed, which drops the result.
    passed_on: Vec<bool>,
    /// Whether each passed-on node lets its dependents run.
    ok: Vec<bool>,
    committed: usize,
}

impl Schedule {
    /// Everything that waits for nothing is ready and committable.
    pub fn new(graph: &Graph) -> Self {
        let n = graph.len();
        let pending: Vec<u32> = (0..n as NodeIdx)
            .map(|i| graph.preds(i).len() as u32)
            .collect();
        let mut s = Self {
            pending_results: pending.clone(),
            pending_commits: pending,
            ready: RankSet::new(n),
            commits: RankSet::new(n),
            passed_on: vec![false; n],
            ok: vec![false; n],
            committed: 0,
        };
        for i in 0..n as NodeIdx {
            if s.pending_commits[i as usize] == 0 {
                s.commits.insert(graph.rank(i));
                s.ready.insert(graph.rank(i));
            }
        }
        s
    }

    /// Marks `i` as ready to begin, or to pass its result on.
    pub fn push_ready(&mut self, graph: &Graph, i: NodeIdx) {
        self.ready.insert(graph.rank(i));
    }

    /// The ready node that comes first in commit order.
    pub fn pop_ready(&mut self, graph: &Graph) -> Option<NodeIdx> {
        self.ready.pop_first().map(|r| graph.node(r))
    }

    /// Whether a node is ready to begin (or to pass its result on).
    pub fn has_ready(&self) -> bool {
        self.ready.first().is_some()
    }

    /// The node that commits next, if it is known which.
    pub fn next_commit(&self, graph: &Graph) -> Option<NodeIdx> {
        self.commits.first().map(|r| graph.node(r))
    }

    /// The committable nodes, in commit order.
    pub fn committable<'g>(&'g self, graph: &'g Graph) -> impl Iterator<Item = NodeIdx> + 'g {
        self.commits.iter().map(|r| graph.node(r))
    }

    /// `i` has its result and it has been passed on (`ok`: whether its dependents run);
    /// dependents that now have all their inputs become ready.
    pub fn resolved(&mut self, graph: &Graph, i: NodeIdx, ok: bool) {
        self.passed_on[i as usize] = true;
        self.ok[i as usize] = ok;
        for &s in graph.succs(i) {
            self.pending_results[s as usize] -= 1;
            if self.pending_results[s as usize] == 0 {
                self.ready.insert(graph.rank(s));
            }
        }
    }

    pub fn passed_on(&self, i: NodeIdx) -> bool {
        self.passed_on[i as usize]
    }

    /// Whether a resolved node lets its dependents run.
    pub fn ok(&self, i: NodeIdx) -> bool {
        self.ok[i as usize]
    }

    /// `i` (the next in commit order) is committed; nodes whose waits are all committed
    /// become committable.
    pub fn committed(&mut self, graph: &Graph, i: NodeIdx) {
        self.commits.remove(graph.rank(i));
        self.committed += 1;
        for &s in graph.succs(i) {
            self.pending_commits[s as usize] -= 1;
            if self.pending_commits[s as usize] == 0 {
                self.commits.insert(graph.rank(s));
            }
        }
    }

    pub fn all_committed(&self) -> bool {
        self.committed == self.passed_on.len()
    }
}
