//! Policy costs: a capability and command check per call, and redaction, whose cost should
//! follow the size of the text, not the number of patterns. Numbers go into the README.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kairos::policy::effective::{Effective, Layer};
use kairos::policy::redact::Redactor;
use kairos::policy::{Capability, PolicySpec, Resource};
use kairos::sh::programs;

fn spec(yaml: &str) -> PolicySpec {
    let node = kairos::syntax::yaml::parse(yaml).unwrap();
    PolicySpec::read(&node, &mut Vec::new())
}

fn checks(c: &mut Criterion) {
    let yaml =
        "preset: no_network\ncommands: [git, wc, grep, sort, echo]\nmax_calls: { shell: 100 }\n";
    let policy = Effective::new(vec![Layer {
        name: "the workflow policy".into(),
        spec: spec(yaml),
        file: "wf.yaml".into(),
        source: yaml.into(),
        narrows: false,
    }]);
    let node = spec("deny: [fs_write]\n");
    let mut group = c.benchmark_group("policy-check");
    group.bench_function("capability", |b| {
        b.iter(|| {
            policy
                .granted_for(Some(&node))
                .contains(Capability::Subprocess)
        });
    });
    group.bench_function("capability+command", |b| {
        b.iter(|| {
            let granted = policy
                .granted_for(Some(&node))
                .contains(Capability::Subprocess);
            let p = programs(Some("git log --oneline"), None);
            granted && policy.check(&Resource::Programs(p)).1.is_ok()
        });
    });
    group.finish();
}

fn redaction(c: &mut Criterion) {
    let text: String = (0..20_000)
        .map(|i| format!("line {i}: user=ci token=abc{i} status ok\n"))
        .collect();
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::Bytes(text.len() as u64));
    for n in [1usize, 10, 50] {
        let patterns: Vec<String> = (0..n)
            .map(|k| format!("(?i)secret{k}\\s*[:=]\\s*\\S+"))
            .collect();
        let r = Redactor::with_values(&patterns, &[("TOKEN".into(), "abc12345".into())]).unwrap();
        group.bench_with_input(BenchmarkId::new("patterns", n), &text, |b, t| {
            b.iter(|| r.redact(t).1)
        });
    }
    group.finish();
}

criterion_group!(benches, checks, redaction);
criterion_main!(benches);
