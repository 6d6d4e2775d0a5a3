//! Validation speed on generated workflows (random DAGs, as `shared/bench/gen.py random-dag`
//! builds them: each node needs 1-3 earlier nodes). Numbers go into the README.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write;

fn random_dag(n: usize) -> String {
    let mut state = 42u64;
    let mut next = move |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let mut y = String::with_capacity(n * 48);
    y.push_str("version: 1\nname: bench\nnodes:\n");
    for i in 0..n {
        let _ = writeln!(y, "  - id: t{i}");
        if i > 0 {
            let k = 1 + next(3);
            let mut deps: Vec<usize> = (0..k).map(|_| next(i)).collect();
            deps.sort_unstable();
            deps.dedup();
            let deps: Vec<String> = deps.iter().map(|d| format!("t{d}")).collect();
            let _ = writeln!(y, "    needs: [{}]", deps.join(", "));
        }
        y.push_str("    tool: noop\n");
    }
    y
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for n in [10_000, 100_000] {
        let yaml = random_dag(n);
        group.throughput(Throughput::Bytes(yaml.len() as u64));
        group.bench_with_input(BenchmarkId::new("random-dag", n), &yaml, |b, yaml| {
            b.iter(|| kairos::workflow::load_str("bench.yaml", yaml).expect("valid"));
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
