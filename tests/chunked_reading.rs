//! Ledgers longer than one of the reader's chunks (`src/ledger/chunk.rs`: lines are read in
//! chunks of 8192 lines or 1 MiB and prepared on all cores): `verify`, `replay` and `diff`
//! say the same, for the same line, whatever the number of threads, with damage in the middle
//! of a chunk, on either side of a boundary between chunks and on the last line.

use crate::common::{Output, Test, rechain};
use std::path::Path;

/// The chunk limits of the reader (`Limits::default` in `src/ledger/chunk.rs`).
const CHUNK_LINES: usize = 8192;
const CHUNK_BYTES: usize = 1 << 20;

/// Thread counts to read with: one thread, the machine's (rayon's default), and more threads
/// than lines in a small chunk part.
const THREADS: [Option<&str>; 3] = [Some("1"), None, Some("7")];

/// Runs a `for_each` of 6,000 no-op instances (12,004 lines, about 1.9 MB: two chunks) into
/// `many.jsonl` in `dir`, and returns its lines.
fn many(dir: &Path) -> Vec<String> {
    let items: Vec<String> = (0..6000).map(|i| i.to_string()).collect();
    let yaml = format!(
        "version: 1\nname: many\nnodes:\n  - id: fan\n    tool: noop\n    for_each: [{}]\n",
        items.join(", ")
    );
    std::fs::write(dir.join("many.yaml"), yaml).unwrap();
    Test::new()
        .args(["run", "many.yaml", "-q", "--ledger", "many.jsonl"])
        .run_in(dir)
        .code(0);
    let text = std::fs::read_to_string(dir.join("many.jsonl")).unwrap();
    text.lines().map(str::to_string).collect()
}

/// The 0-based index of the first line of each chunk after the first, as the reader cuts
/// them: a chunk takes lines until it has `CHUNK_LINES` lines or `CHUNK_BYTES` bytes.
fn chunk_starts(lines: &[String]) -> Vec<usize> {
    let (mut starts, mut count, mut bytes) = (Vec::new(), 0, 0);
    for (i, line) in lines.iter().enumerate() {
        if count == CHUNK_LINES || bytes >= CHUNK_BYTES {
            starts.push(i);
            (count, bytes) = (0, 0);
        }
        count += 1;
        bytes += line.len() + 1;
    }
    starts
}

fn write(dir: &Path, name: &str, lines: &[String]) {
    std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
}

/// Runs `kairos ARGS` in `dir` at every thread count; all must give the same output, which
/// is returned.
fn same_at_any_thread_count(dir: &Path, args: &[&str]) -> Output {
    let run = |threads: Option<&str>| {
        let t = Test::new().args(args);
        match threads {
            Some(n) => t.env("RAYON_NUM_THREADS", n),
            None => t,
        }
        .run_in(dir)
    };
    let first = run(THREADS[0]);
    for threads in &THREADS[1..] {
        let out = run(*threads);
        assert_eq!(
            (out.code, &out.stdout, &out.stderr),
            (first.code, &first.stdout, &first.stderr),
            "{args:?} with RAYON_NUM_THREADS={threads:?}"
        );
    }
    first
}

#[test]
fn a_long_ledger_verifies_replays_and_diffs_the_same_at_any_thread_count() {
    let t = Test::new();
    let dir = t.path();
    let lines = many(dir);
    assert_eq!(lines.len(), 12_004);
    assert_eq!(chunk_starts(&lines).len(), 1, "two chunks");
    same_at_any_thread_count(dir, &["verify", "many.jsonl"])
        .code(0)
        .stdout_contains("verified many.jsonl: 12004 records");
    let replay = same_at_any_thread_count(dir, &["replay", "many.jsonl", "--format", "json"])
        .code(0)
        .json();
    assert_eq!(replay["events"], 12_004);
    assert_eq!(replay["status"], "succeeded");
    same_at_any_thread_count(dir, &["replay", "--check", "many.jsonl"])
        .code(0)
        .stdout_contains("replay matches (12004 events)");
    // One instance's end edited in the second chunk, chained again: a difference, not damage.
    let mut other = lines.clone();
    let k = (0..lines.len() - 100)
        .rev()
        .find(|&k| lines[k].contains("\"event\":\"End\""))
        .unwrap();
    other[k] = other[k].replace("\"attempts\":1", "\"attempts\":2");
    std::fs::write(dir.join("other.jsonl"), rechain(&(other.join("\n") + "\n"))).unwrap();
    let diff = same_at_any_thread_count(
        dir,
        &["diff", "many.jsonl", "other.jsonl", "--format", "json"],
    )
    .code(1)
    .json();
    assert_eq!(diff["first_divergent_seq"], k);
    assert_eq!(diff["nodes"].as_array().unwrap().len(), 1, "{diff:#}");
}

/// The lines to damage: early in the first chunk, in its middle, its last line, the first
/// and second lines of the next chunk, and the last two lines of the file.
fn places(lines: &[String]) -> Vec<usize> {
    let boundary = chunk_starts(lines)[0];
    let n = lines.len();
    vec![
        1,
        boundary / 2,
        boundary - 1,
        boundary,
        boundary + 1,
        n - 2,
        n - 1,
    ]
}

/// An edited line breaks the chain at the next line; every reading command names that line,
/// with exit code 1, at any thread count.
#[test]
fn an_edited_line_is_reported_at_the_next_line_wherever_the_chunks_fall() {
    let t = Test::new();
    let dir = t.path();
    let lines = many(dir);
    let boundary = chunk_starts(&lines)[0];
    for k in places(&lines) {
        let mut edited = lines.clone();
        // `prev` of line k is changed: line k itself (1-based k + 1) breaks the chain.
        edited[k] = edited[k].replacen("\"prev\":\"", "\"prev\":\"0", 1);
        write(dir, "edited.jsonl", &edited);
        let message = format!(
            "edited.jsonl:{}: broken chain: `prev` is not the SHA-256 of line {k}",
            k + 1
        );
        let mut commands = vec![
            &["verify", "edited.jsonl"][..],
            &["replay", "edited.jsonl"],
            &["diff", "many.jsonl", "edited.jsonl"],
        ];
        if k == boundary {
            commands.extend([
                &["replay", "--check", "edited.jsonl"][..],
                &["diff", "edited.jsonl", "many.jsonl"],
            ]);
        }
        for args in commands {
            let out = same_at_any_thread_count(dir, args).code(1);
            assert!(
                out.stdout.contains(&message) || out.stderr.contains(&message),
                "{args:?} on line {k}: {}{}",
                out.stdout,
                out.stderr
            );
        }
    }
}

/// Damage that the preparation of a line finds (a key given twice), placed in the same
/// chunk after a broken chain: the broken chain, on the earlier line, is what is reported.
#[test]
fn the_first_damaged_line_is_reported_when_several_are() {
    let t = Test::new();
    let dir = t.path();
    let lines = many(dir);
    let [first, .., last] = places(&lines)[..] else {
        unreachable!()
    };
    for (a, b) in [(first, first + 1), (first, last), (last - 1, last)] {
        let mut damaged = lines.clone();
        damaged[b] = damaged[b].replacen("\"clock\":", "\"event\":\"End\",\"clock\":", 1);
        damaged[a] = damaged[a].replacen("\"prev\":\"", "\"prev\":\"0", 1);
        write(dir, "damaged.jsonl", &damaged);
        let out = same_at_any_thread_count(dir, &["replay", "damaged.jsonl"]).code(1);
        assert!(
            out.stderr
                .contains(&format!("damaged.jsonl:{}: broken chain", a + 1)),
            "{a} {b}: {}",
            out.stderr
        );
        // Alone, the later damage is reported for its own line.
        let mut later = lines.clone();
        later[b] = damaged[b].clone();
        write(dir, "later.jsonl", &later);
        // `verify` reports it as a failed check (exit 1), the readers as bad input (exit 2).
        same_at_any_thread_count(dir, &["verify", "later.jsonl"])
            .code(1)
            .stdout_contains("duplicate key `event`");
        same_at_any_thread_count(dir, &["replay", "later.jsonl"])
            .code(2)
            .stderr_contains(&format!("later.jsonl:{}: duplicate key `event`", b + 1));
    }
}

/// A torn last line and a line that is not UTF-8 in the second chunk.
#[test]
fn a_torn_end_and_bytes_that_are_not_text_are_reported_as_before() {
    let t = Test::new();
    let dir = t.path();
    let lines = many(dir);
    let text = lines.join("\n") + "\n";
    std::fs::write(dir.join("torn.jsonl"), &text[..text.len() - 5]).unwrap();
    same_at_any_thread_count(dir, &["verify", "torn.jsonl"])
        .code(1)
        .stderr_contains(&format!(
            "torn.jsonl:{}: the last line is incomplete",
            lines.len()
        ));
    let k = places(&lines)[4];
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i == k {
            bytes.extend_from_slice(b"\xff");
        }
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    std::fs::write(dir.join("binary.jsonl"), bytes).unwrap();
    same_at_any_thread_count(dir, &["replay", "binary.jsonl"])
        .code(2)
        .stderr_contains("cannot read binary.jsonl: stream did not contain valid UTF-8");
}
