//! Ledger reading speed: the chain check alone, and the chain check plus state rebuild, over
//! a 1,000,000-event ledger (500,000 nodes, each a `Start` and an `End`, the shape a no-op
//! run writes). Numbers go into the README.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kairos::ledger::event::Event;
use kairos::ledger::reader;
use kairos::ledger::state;
use kairos::ledger::writer::{ChainState, Writer};

const NODES: u64 = 500_000;

fn ledger(path: &std::path::Path) {
    let writer = Writer::start(std::fs::File::create(path).unwrap(), ChainState::default());
    let mut batch = String::new();
    Event::new(&mut batch, "RunStart", 0)
        .str("format", kairos::ledger::FORMAT)
        .str("workflow", "bench")
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
    writer.send(batch).unwrap();
    writer.finish().unwrap();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    ledger(&path);
    let mut group = c.benchmark_group("ledger-1M-events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * NODES + 1));
    group.bench_function("chain-check", |b| {
        b.iter(|| {
            let mut r = reader::open(&path).unwrap();
            while r.next_line().unwrap().is_some() {}
            r.lines()
        });
    });
    group.bench_function("chain-check+state", |b| {
        b.iter(|| {
            let mut r = reader::open(&path).unwrap();
            state::rebuild(&mut r, None).unwrap().events
        });
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
