//! The ledger the reading benchmarks read: a finished 500,000-node no-op run (a `Start` and an
//! `End` per node, then `RunEnd`), written with the real writer.

use kairos::ledger::event::Event;
use kairos::ledger::writer::{ChainState, Writer};

pub const NODES: u64 = 500_000;

pub fn noop_run(path: &std::path::Path) {
    let mut writer = Writer::start(std::fs::File::create(path).unwrap(), ChainState::default());
    let mut batch = String::new();
    Event::new(&mut batch, "RunStart", 0)
        .str("format", kairos::ledger::FORMAT)
        .str("workflow", "bench")
        .str("workflow_sha256", &kairos::ledger::sha256_hex(b"bench"))
        .u64("seed", 0)
        .finish();
    for i in 0..NODES {
        let id = format!("t{i}");
        Event::new(&mut batch, "Start", 2 * i + 1)
            .node(&id)
            .str("tool", "noop")
            .finish();
        Event::new(&mut batch, "End", 2 * i + 2)
            .node(&id)
            .str("status", "succeeded")
            .u64("attempts", 1)
            .finish();
        if batch.len() > 1 << 20 {
            writer.send(std::mem::take(&mut batch)).unwrap();
        }
    }
    Event::new(&mut batch, "RunEnd", 2 * NODES + 1)
        .str("status", "succeeded")
        .finish();
    writer.send(batch).unwrap();
    writer.finish().unwrap();
}
