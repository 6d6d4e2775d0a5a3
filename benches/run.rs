//! Engine throughput: no-op nodes committed to the ledger per second, YAML parsing excluded
//! (the workflow is loaded once, outside the measured loop). Numbers go into the README.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

mod shapes;

fn run(c: &mut Criterion) {
    let mut group = c.benchmark_group("run-noop");
    group.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    for shape in ["chain", "fanout", "random-dag"] {
        for n in [10_000, 100_000] {
            let yaml = shapes::workflow(shape, n, "    tool: noop\n");
            let workflow = kairos::workflow::load_str("bench.yaml", &yaml).expect("valid");
            let policy =
                kairos::policy::effective::Effective::new(kairos::plan::layers(&workflow, None));
            group.throughput(Throughput::Elements(workflow.nodes.len() as u64));
            group.bench_with_input(BenchmarkId::new(shape, n), &workflow, |b, wf| {
                b.iter(|| {
                    let path = dir.path().join("ledger.jsonl");
                    let _ = std::fs::remove_file(&path);
                    let file = std::fs::File::create(&path).unwrap();
                    kairos::engine::run(wf, &kairos::engine::RunOptions::default(), &policy, file)
                        .unwrap()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, run);
criterion_main!(benches);
