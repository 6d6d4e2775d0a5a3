//! Ledger reading speed: the chain check alone, and the chain check plus state rebuild, over
//! a 1,000,000-event ledger (500,000 nodes, each a `Start` and an `End`, the shape a no-op
//! run writes). Numbers go into the README.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kairos::ledger::reader;
use kairos::ledger::state;

mod ledgers;

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    ledgers::noop_run(&path);
    let mut group = c.benchmark_group("ledger-1M-events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * ledgers::NODES + 2));
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
