//! The ledger reader: the line and chain checks every reading command shares (`replay`,
//! `replay --check`, `verify`, `diff`, `resume`), every event parsed (`Event::parse`), and
//! then, as the commands do, `verify`'s checklist and `replay --check`'s re-drive of the
//! embedded workflow. An event read must also write back as itself. Errors are fine; a panic
//! is not.
#![no_main]

use kairos::ledger::event::Event;
use kairos::ledger::reader::Reader;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data, "fuzz.jsonl");
    let complete = loop {
        match reader.next_line() {
            Ok(Some(line)) => {
                let _ = line.kind();
                if let Ok(event) = line.event() {
                    let _ = event.node();
                    round_trip(&event, line.head.clock);
                }
            }
            Ok(None) => break true,
            Err(e) => {
                let _ = e.exit_code();
                let _ = e.to_string();
                break false;
            }
        }
    };
    let _ = reader.head();

    // The commands read files: a ledger that read to its end goes through them too.
    if complete {
        let path = ledger_file(data);
        let options = kairos::sign::verify::Options {
            ledger: path.clone(),
            keys: Vec::new(),
            envelope: None,
            ssh_signature: None,
            workflow: None,
            require_signature: false,
            now: 0,
        };
        let _ = kairos::sign::verify::verify(&options);
        let _ = kairos::record::redrive::redrive(&path, None);
    }
});

/// Writing an event and reading it back gives the same event.
fn round_trip(event: &Event<'_>, clock: u64) {
    // `write` gives the body, ended by a newline, that the writer puts between
    // `{"seq":N,"prev":"...",` and `}` (`ledger/writer.rs`).
    let mut body = String::new();
    event.write(clock, &mut body);
    let body = body.strip_suffix('\n').expect("a body ends with a newline");
    assert!(!body.contains('\n'), "a body holds a raw newline: {body}");
    let line = format!("{{{body}}}");
    match Event::parse(event.kind(), &line) {
        Ok(again) => assert_eq!(&again, event, "event changed on write and read: {line}"),
        Err(e) => panic!("a written event does not read back: {e}: {line}"),
    }
}

/// The ledger as a file of this process's own (the commands take paths; no envelope or
/// signature sits beside it, so only the ledger is read).
fn ledger_file(data: &[u8]) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = std::env::var_os("KAIROS_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("kairos-fuzz-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        dir
    });
    let path = dir.join("ledger.jsonl");
    std::fs::write(&path, data).expect("write the temporary ledger");
    path
}
