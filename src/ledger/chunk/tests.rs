//! The reader must say the same of a ledger, for the same line, however its lines fall into
//! chunks and however many threads prepare them.

use super::*;
use crate::ledger::GENESIS;
use crate::ledger::reader::{ReadError, Reader};

/// Chunkings to read with: one line per chunk, small odd sizes (damage falls in the middle
/// of a chunk, on its first and on its last line), a byte limit that cuts chunks at
/// uneven places, and the whole file in one chunk on the calling thread (the reading
/// without chunks, as kairos did before).
fn chunkings() -> Vec<Limits> {
    let parallel = |lines, bytes| Limits {
        lines,
        bytes,
        parallel_from: 0,
    };
    vec![
        parallel(1, usize::MAX),
        parallel(2, usize::MAX),
        parallel(3, usize::MAX),
        parallel(7, usize::MAX),
        parallel(usize::MAX, 300),
        Limits::default(),
        WHOLE,
    ]
}

const WHOLE: Limits = Limits {
    lines: usize::MAX,
    bytes: usize::MAX,
    parallel_from: usize::MAX,
};

/// A ledger of `n` lines (a `RunStart`, then events of different lengths), chained.
fn ledger(n: usize) -> Vec<u8> {
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for i in 0..n {
        let body = if i == 0 {
            "\"event\":\"RunStart\",\"clock\":0,\"format\":\"kairos.ledger/1\"".to_string()
        } else {
            format!(
                "\"event\":\"End\",\"clock\":{i},\"node\":\"n{i}\",\"pad\":\"{}\"",
                "x".repeat(i * 7 % 50)
            )
        };
        let line = format!("{{\"seq\":{i},\"prev\":\"{prev}\",{body}}}");
        prev = crate::ledger::sha256_hex(line.as_bytes());
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// What a reader says of a whole ledger: every line's seq, node and clock, then how it
/// ended (the error's text and exit code), the lines read and the chain head.
#[derive(Debug, PartialEq)]
struct Reading {
    lines: Vec<(u64, Option<String>, u64)>,
    end: Result<(), (String, i32)>,
    count: u64,
    head: String,
}

fn read(bytes: &[u8], limits: Limits) -> Reading {
    read_from(bytes, limits)
}

fn read_from<R: BufRead>(source: R, limits: Limits) -> Reading {
    let mut r = Reader::with_limits(source, "t.jsonl", limits);
    let mut lines = Vec::new();
    let end = loop {
        match r.next_line() {
            Ok(Some(line)) => lines.push((
                line.seq,
                line.head.node.map(str::to_string),
                line.head.clock,
            )),
            Ok(None) => break Ok(()),
            Err(e) => break Err((e.to_string(), e.exit_code())),
        }
    };
    // An error ends the reading.
    assert!(matches!(r.next_line(), Ok(None)));
    Reading {
        lines,
        end,
        count: r.lines(),
        head: r.head().to_string(),
    }
}

/// Reads `bytes` with every chunking; all must agree with the whole-file reading, which
/// is returned.
fn agreed(bytes: &[u8]) -> Reading {
    let whole = read(bytes, WHOLE);
    for limits in chunkings() {
        assert_eq!(read(bytes, limits), whole, "{limits:?}");
    }
    whole
}

fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn with_line(bytes: &[u8], k: usize, edit: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut lines = lines_of(bytes);
    lines[k] = edit(&lines[k]);
    lines.concat()
}

fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    String::from_utf8(line.to_vec())
        .unwrap()
        .replacen(from, to, 1)
        .into_bytes()
}

const N: usize = 20;

/// A change to one line.
type Edit = fn(&[u8]) -> Vec<u8>;

#[test]
fn a_valid_ledger_reads_the_same_in_any_chunks() {
    let bytes = ledger(N);
    let whole = agreed(&bytes);
    assert_eq!(whole.end, Ok(()));
    assert_eq!(whole.count, N as u64);
    assert_eq!(whole.lines.len(), N);
    let last = lines_of(&bytes).pop().unwrap();
    assert_eq!(
        whole.head,
        crate::ledger::sha256_hex(&last[..last.len() - 1])
    );
}

/// An edited line breaks the chain at the line after it, wherever the two fall.
#[test]
fn an_edited_line_is_found_at_the_next_line_in_any_chunks() {
    let bytes = ledger(N);
    for k in 1..N {
        let edited = with_line(&bytes, k, |l| replace(l, "\"clock\":", "\"clock\":1"));
        let r = agreed(&edited);
        if k + 1 < N {
            let message = format!(
                "t.jsonl:{}: broken chain: `prev` is not the SHA-256 of line {}",
                k + 2,
                k + 1
            );
            assert_eq!(r.end, Err((message, crate::exit::NEGATIVE)), "line {k}");
            assert_eq!(r.count, k as u64 + 1);
        } else {
            // The last line has no line after it: only a signature covers it.
            assert_eq!(r.end, Ok(()));
        }
    }
}

/// A `prev` changed on the line itself, including the last line.
#[test]
fn a_changed_prev_is_found_on_its_line_in_any_chunks() {
    let bytes = ledger(N);
    for k in 1..N {
        let edited = with_line(&bytes, k, |l| replace(l, "\"prev\":\"", "\"prev\":\"f"));
        let r = agreed(&edited);
        let message = format!(
            "t.jsonl:{}: broken chain: `prev` is not the SHA-256 of line {k}",
            k + 1
        );
        assert_eq!(r.end, Err((message, crate::exit::NEGATIVE)), "line {k}");
        assert_eq!(r.count, k as u64);
        assert_eq!(r.lines.len(), k);
    }
}

/// Every kind of damage that the preparation of a line finds (not JSON, a key twice,
/// not UTF-8) or that the walk finds (a wrong `seq`), on every line.
#[test]
fn each_kind_of_damage_is_reported_for_its_line_in_any_chunks() {
    let bytes = ledger(N);
    let damages: [(&str, Edit, &str, i32); 5] = [
        (
            "not json",
            |l| replace(l, "{", "["),
            "not a JSON object",
            crate::exit::BAD_INPUT,
        ),
        (
            "a key twice",
            |l| replace(l, "\"clock\":", "\"event\":\"End\",\"clock\":"),
            "duplicate key `event`",
            crate::exit::BAD_INPUT,
        ),
        (
            "not utf-8",
            |l| {
                let mut l = l.to_vec();
                l.insert(3, 0xff);
                l
            },
            "stream did not contain valid UTF-8",
            crate::exit::BAD_INPUT,
        ),
        (
            "not utf-8",
            // The bad byte opens the line: the line before it is fine.
            |l| [&[0xff][..], l].concat(),
            "stream did not contain valid UTF-8",
            crate::exit::BAD_INPUT,
        ),
        (
            "seq",
            |l| replace(l, "\"seq\":", "\"seq\":9"),
            "expected seq",
            crate::exit::NEGATIVE,
        ),
    ];
    for (name, damage, says, code) in damages {
        for k in 1..N {
            let r = agreed(&with_line(&bytes, k, damage));
            let (message, exit) = r.end.clone().unwrap_err();
            assert!(message.contains(says), "{name} on line {k}: {message}");
            if name != "not utf-8" {
                // An I/O error names no line; the others name theirs.
                assert!(
                    message.starts_with(&format!("t.jsonl:{}: ", k + 1)),
                    "{message}"
                );
            }
            assert_eq!(exit, code, "{name}");
            assert_eq!(r.count, k as u64, "{name} on line {k}");
        }
    }
}

/// Several damaged lines: the first is reported, even when a later one sits earlier in
/// its chunk or in an earlier-prepared part of it.
#[test]
fn the_first_bad_line_is_the_one_reported() {
    let bytes = ledger(N);
    for first in 1..N - 1 {
        for second in first + 1..N {
            let damaged = with_line(&bytes, second, |l| replace(l, "{", "["));
            let damaged = with_line(&damaged, first, |l| {
                replace(l, "\"prev\":\"", "\"prev\":\"f")
            });
            let r = agreed(&damaged);
            let message = r.end.unwrap_err().0;
            assert!(
                message.starts_with(&format!("t.jsonl:{}: broken chain", first + 1)),
                "{first} {second}: {message}"
            );
        }
    }
}

#[test]
fn a_torn_last_line_is_reported_in_any_chunks() {
    let bytes = ledger(N);
    let r = agreed(&bytes[..bytes.len() - 1]);
    assert_eq!(
        r.end,
        Err((
            format!(
                "t.jsonl:{N}: the last line is incomplete (no newline at its end): the run was cut off while writing it"
            ),
            crate::exit::BAD_INPUT
        ))
    );
    assert_eq!(r.count, N as u64 - 1);
    // Torn in the middle of its UTF-8: the encoding is reported, as `read_line` does.
    let mut cut = bytes[..bytes.len() - 1].to_vec();
    cut.push(0xc3);
    let r = agreed(&cut);
    assert_eq!(
        r.end.unwrap_err().0,
        "cannot read t.jsonl: stream did not contain valid UTF-8"
    );
}

/// The message for a line that is not UTF-8 is the one `BufRead::read_line` gives.
#[test]
fn a_line_that_is_not_utf8_is_reported_as_read_line_does() {
    let mut buf = String::new();
    let expected = (&b"a\xffb\n"[..]).read_line(&mut buf).unwrap_err();
    let bytes = with_line(&ledger(3), 1, |l| {
        let mut l = l.to_vec();
        l.insert(5, 0xff);
        l
    });
    assert_eq!(
        agreed(&bytes).end.unwrap_err().0,
        format!("cannot read t.jsonl: {expected}")
    );
}

#[test]
fn an_empty_file_and_a_line_longer_than_a_chunk() {
    assert_eq!(
        agreed(b"").end,
        Err((
            "t.jsonl is empty: a ledger has at least a RunStart line".into(),
            crate::exit::BAD_INPUT
        ))
    );
    // Every line is longer than the byte limit of 300: one line per chunk.
    let mut prev = GENESIS.to_string();
    let mut bytes = Vec::new();
    for i in 0..5 {
        let body = if i == 0 {
            "\"event\":\"RunStart\",\"clock\":0,\"format\":\"kairos.ledger/1\"".to_string()
        } else {
            format!(
                "\"event\":\"End\",\"clock\":{i},\"out\":\"{}\"",
                "y".repeat(1000)
            )
        };
        let line = format!("{{\"seq\":{i},\"prev\":\"{prev}\",{body}}}");
        prev = crate::ledger::sha256_hex(line.as_bytes());
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    let r = agreed(&bytes);
    assert_eq!((r.end, r.count), (Ok(()), 5));
}

/// Lines nested as deep as the JSON reader allows, and deeper, read on the pool's
/// threads (smaller stacks than the main thread's) as on the calling thread.
#[test]
fn deep_nesting_reads_the_same_on_the_pool() {
    for depth in [120, 127, 128, 5000] {
        let mut prev = GENESIS.to_string();
        let mut bytes = Vec::new();
        for i in 0..100 {
            let body = if i == 0 {
                "\"event\":\"RunStart\",\"clock\":0,\"format\":\"kairos.ledger/1\"".into()
            } else {
                let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                format!("\"event\":\"End\",\"clock\":{i},\"deep\":{deep}")
            };
            let line = format!("{{\"seq\":{i},\"prev\":\"{prev}\",{body}}}");
            prev = crate::ledger::sha256_hex(line.as_bytes());
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        let r = agreed(&bytes);
        if depth < 127 {
            assert_eq!(r.end, Ok(()), "{depth}");
        } else {
            let message = r.end.unwrap_err().0;
            assert!(
                message.contains("recursion limit exceeded"),
                "{depth}: {message}"
            );
        }
    }
}

/// A source that fails after `ok` bytes.
struct Failing<'a> {
    bytes: &'a [u8],
    ok: usize,
}

impl io::Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.ok).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        self.ok -= n;
        Ok(n)
    }
}

/// A read that fails is reported after every whole line read before it, whatever the
/// chunks.
#[test]
fn a_failed_read_comes_after_the_lines_before_it() {
    let bytes = ledger(N);
    let ends: Vec<usize> = lines_of(&bytes)
        .iter()
        .scan(0, |at, l| {
            *at += l.len();
            Some(*at)
        })
        .collect();
    for (k, &at) in ends.iter().enumerate().take(N - 1) {
        for ok in [at, at + 10] {
            let source = |limits| {
                read_from(
                    io::BufReader::with_capacity(16, Failing { bytes: &bytes, ok }),
                    limits,
                )
            };
            let whole = source(WHOLE);
            assert_eq!(
                whole.end,
                Err((
                    "cannot read t.jsonl: disk on fire".into(),
                    crate::exit::BAD_INPUT
                ))
            );
            assert_eq!(whole.count, k as u64 + 1);
            for limits in chunkings() {
                assert_eq!(source(limits), whole, "{limits:?}");
            }
        }
    }
}

/// The number of threads preparing the chunks changes nothing.
#[test]
fn the_number_of_threads_changes_nothing() {
    let bytes = ledger(200);
    let damaged = with_line(&bytes, 150, |l| replace(l, "\"clock\":", "\"clock\":1"));
    let expected: Vec<Reading> = [&bytes, &damaged].iter().map(|b| read(b, WHOLE)).collect();
    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for (b, expected) in [&bytes, &damaged].iter().zip(&expected) {
            for limits in chunkings() {
                let got = pool.install(|| read(b, limits));
                assert_eq!(&got, expected, "{threads} threads, {limits:?}");
            }
        }
    }
    assert!(expected[1].end.is_err());
}

/// Reading may stop before the end (`replay --until`) without reading what follows.
#[test]
fn a_reader_left_early_is_fine() {
    let bytes = ledger(N);
    for limits in chunkings() {
        let mut r = Reader::with_limits(&bytes[..], "t.jsonl", limits);
        for _ in 0..5 {
            r.next_line().unwrap().unwrap();
        }
        assert_eq!(r.lines(), 5);
        drop(r);
    }
    let _ = ReadError::Empty { path: "t".into() };
}
