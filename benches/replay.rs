//! Ledger reading speed over a 1,000,002-event ledger (500,000 nodes, each a `Start` and an
//! `End`, the shape a no-op run writes): the chain check alone, the chain check plus state
//! rebuild (`kairos replay`), and `kairos diff` against the same run with one node retried.
//! Each on one thread and on all cores (rayon's default pool: `RAYON_NUM_THREADS`, or one
//! thread per core), which prepare the lines (`src/ledger/chunk.rs`). Numbers go into the
//! README.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kairos::ledger::{diff, reader, state};

mod ledgers;

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let other = dir.path().join("other.jsonl");
    ledgers::noop_run(&path);
    ledgers::noop_run_with(&other, ledgers::NODES / 2);
    // Inside a one-thread pool, the reader prepares chunks on that thread alone.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("ledger-1M-events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * ledgers::NODES + 2));
    let chain_check = || {
        let mut r = reader::open(&path).unwrap();
        while r.next_line().unwrap().is_some() {}
        r.lines()
    };
    let rebuild = || {
        let mut r = reader::open(&path).unwrap();
        state::rebuild(&mut r, None).unwrap().events
    };
    let compare = || diff::compare(&path, &other).unwrap().nodes_differing;
    group.bench_function("chain-check/1-thread", |b| {
        b.iter(|| one.install(chain_check))
    });
    group.bench_function("chain-check/all-cores", |b| b.iter(chain_check));
    group.bench_function("chain-check+state/1-thread", |b| {
        b.iter(|| one.install(rebuild))
    });
    group.bench_function("chain-check+state/all-cores", |b| b.iter(rebuild));
    group.bench_function("diff/1-thread", |b| b.iter(|| one.install(compare)));
    group.bench_function("diff/all-cores", |b| b.iter(compare));
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
