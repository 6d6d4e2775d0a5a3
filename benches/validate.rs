//! Validation speed on generated workflows (random DAGs, as `shared/bench/gen.py random-dag`
//! builds them: each node needs 1-3 earlier nodes). Numbers go into the README.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
mod shapes;

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for n in [10_000, 100_000] {
        let yaml = shapes::workflow("random-dag", n, "    tool: noop\n");
        group.throughput(Throughput::Bytes(yaml.len() as u64));
        group.bench_with_input(BenchmarkId::new("random-dag", n), &yaml, |b, yaml| {
            b.iter(|| kairos::workflow::load_str("bench.yaml", yaml).expect("valid"));
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
