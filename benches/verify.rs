//! Verification speed: `kairos verify`'s checks (format, seq, whole chain, file hash, envelope
//! signature and statement) over a signed 1,000,002-event ledger (500,000 no-op nodes, a
//! `Start` and an `End` each), next to the reader's chain check alone; each on one thread and
//! on all cores (rayon's default pool, which prepares the lines: `src/ledger/chunk.rs`).
//! Numbers go into the README.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kairos::ledger::reader;
use kairos::sign::{self, envelope, keys, verify};

mod ledgers;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    ledgers::noop_run(&path);
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let facts = sign::scan(&path, None).unwrap();
    let payload = envelope::Statement::about(&facts).to_payload();
    let mut env = envelope::Envelope::new(&payload);
    env.sign(&key, &payload);
    std::fs::write(sign::envelope_path(&path), env.to_json()).unwrap();
    let trusted = keys::parse_public_keys(&keys::public_pem(&key.verifying_key()), "k").unwrap();
    let options = verify::Options {
        ledger: path.clone(),
        keys: trusted,
        require_signature: true,
        now: verify::now(),
        ..verify::Options::default()
    };
    assert!(verify::verify(&options).unwrap().verified);

    let mut group = c.benchmark_group("verify-1M-events");
    group.sample_size(10);
    group.throughput(Throughput::Elements(facts.records));
    let chain_check = || {
        let mut r = reader::open(&path).unwrap();
        while r.next_line().unwrap().is_some() {}
        r.lines()
    };
    let verify_signed = || verify::verify(&options).unwrap().verified;
    // Inside a one-thread pool, the reader prepares chunks on that thread alone.
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    group.bench_function("chain-check/1-thread", |b| {
        b.iter(|| one.install(chain_check))
    });
    group.bench_function("chain-check/all-cores", |b| b.iter(chain_check));
    group.bench_function("verify-signed/1-thread", |b| {
        b.iter(|| one.install(verify_signed))
    });
    group.bench_function("verify-signed/all-cores", |b| b.iter(verify_signed));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
