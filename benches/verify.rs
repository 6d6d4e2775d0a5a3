//! Verification speed: `kairos verify`'s checks (format, seq, whole chain, file hash, envelope
//! signature and statement) over a signed 1,000,001-event ledger (500,000 no-op nodes, a
//! `Start` and an `End` each), next to the reader's chain check alone. Numbers go into the
//! README.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kairos::ledger::event::Event;
use kairos::ledger::reader;
use kairos::ledger::writer::{ChainState, Writer};
use kairos::sign::{self, envelope, keys, verify};

const NODES: u64 = 500_000;

fn ledger(path: &std::path::Path) {
    let writer = Writer::start(std::fs::File::create(path).unwrap(), ChainState::default());
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

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    ledger(&path);
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
    group.bench_function("chain-check", |b| {
        b.iter(|| {
            let mut r = reader::open(&path).unwrap();
            while r.next_line().unwrap().is_some() {}
            r.lines()
        });
    });
    group.bench_function("verify-signed", |b| {
        b.iter(|| verify::verify(&options).unwrap().verified);
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
