//! The ledger the reading benchmarks read: a finished 500,000-node no-op run (a `Start` and an
//! `End` per node, then `RunEnd`), written with the real writer.
#![allow(dead_code)] // each bench uses some of it

use kairos::ledger::event::{self as ev, Event};
use kairos::ledger::writer::{ChainState, Writer};
use std::borrow::Cow;

pub const NODES: u64 = 500_000;

pub fn noop_run(path: &std::path::Path) {
    noop_run_with(path, u64::MAX);
}

/// [`noop_run`], with node `retried` taking two attempts (a ledger for `diff` to compare).
pub fn noop_run_with(path: &std::path::Path, retried: u64) {
    let mut writer = Writer::start(std::fs::File::create(path).unwrap(), ChainState::default());
    let mut batch = String::new();
    let empty = serde_json::json!({});
    Event::RunStart(ev::RunStart {
        format: kairos::ledger::FORMAT.into(),
        kairos_version: "bench".into(),
        workflow: "bench".into(),
        workflow_sha256: kairos::ledger::sha256_hex(b"bench").into(),
        workflow_source: "bench".into(),
        inputs: Cow::Borrowed(&empty),
        seed: 0,
        policy: Cow::Borrowed(&empty),
        policy_sha256: kairos::ledger::sha256_hex(b"{}").into(),
        rules: Some(2),
    })
    .write(0, &mut batch);
    for i in 0..NODES {
        let id = format!("t{i}");
        Event::Start(ev::Start {
            node: id.as_str().into(),
            tool: "noop".into(),
            input_sha256: None,
            input: None,
            for_each: None,
        })
        .write(2 * i + 1, &mut batch);
        Event::End(ev::End {
            attempts: Some(if i == retried { 2 } else { 1 }),
            ..ev::End::plain(id.as_str(), ev::Status::Succeeded)
        })
        .write(2 * i + 2, &mut batch);
        if batch.len() > 1 << 20 {
            writer.send(std::mem::take(&mut batch)).unwrap();
        }
    }
    Event::RunEnd(ev::RunEnd {
        status: ev::RunOutcome::Succeeded,
        counts: ev::Counts {
            succeeded: NODES,
            ..ev::Counts::default()
        },
        outputs: Cow::Borrowed(&empty),
        usage: None,
    })
    .write(2 * NODES + 1, &mut batch);
    writer.send(batch).unwrap();
    writer.finish().unwrap();
}
