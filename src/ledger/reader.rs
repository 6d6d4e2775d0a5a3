//! The ledger reader shared by every command that reads ledgers (replay, diff, resume, verify
//! and sign).
//!
//! It streams the file line by line and checks, for each line: that it is complete (ends with
//! `\n`), that it is a JSON object, that `seq` counts 0, 1, 2, ..., that `prev` is the SHA-256
//! of the previous line, and on line 0 that it is a `RunStart` of a format this kairos reads.
//! Only the fields every reader needs are parsed here ([`Head`]: the chain check of `verify`
//! reads nothing else); a caller asks a [`Line`] for its [`Kind`] or its whole [`Event`] only if
//! it needs them, and either refuses an event kind this kairos does not know. Memory does not
//! grow with the number of lines: lines are read in bounded chunks, and the work on each line
//! that needs no other line is done on rayon's threads (`chunk.rs`).

use super::chunk::{Chunk, Chunks, End, Limits, Prepared};
use super::event::{Event, EventError, Kind};
pub use super::unique::Duplicate;
use super::unique::{Found, HeadSeed};
use super::{FORMAT, GENESIS};
use serde::Deserialize;
use serde::de::DeserializeSeed;
use std::io::{self, BufRead};

/// Why a ledger cannot be read. `line` is 1-based, as editors count.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(kairos::io))]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is empty: a ledger has at least a RunStart line")]
    #[diagnostic(code(kairos::ledger_empty))]
    Empty { path: String },
    #[error("{path}:{line}: not a JSON object: {message}")]
    #[diagnostic(code(kairos::ledger_syntax))]
    NotJson {
        path: String,
        line: u64,
        message: String,
    },
    #[error(
        "{path}:{line}: the last line is incomplete (no newline at its end): the run was cut off while writing it"
    )]
    #[diagnostic(
        code(kairos::ledger_torn),
        help("a crash can leave a torn last line; everything before it is intact")
    )]
    Torn { path: String, line: u64 },
    #[error("{path}:1: not a kairos ledger: {why}")]
    #[diagnostic(code(kairos::not_a_ledger))]
    NotLedger { path: String, why: String },
    #[error("{path}:1: unsupported ledger format `{found}`")]
    #[diagnostic(code(kairos::ledger_format), help("this kairos reads `{FORMAT}`"))]
    UnknownFormat { path: String, found: String },
    #[error("{path}:{line}: expected seq {expected}, found {found}")]
    #[diagnostic(
        code(kairos::ledger_seq),
        help("lines were removed, duplicated or reordered")
    )]
    BadSeq {
        path: String,
        line: u64,
        expected: u64,
        found: String,
    },
    #[error("{path}:{line}: {error}")]
    #[diagnostic(code(kairos::ledger_event))]
    Event {
        path: String,
        line: u64,
        error: EventError,
        #[help]
        help: Option<String>,
    },
    #[error("{path}:{line}: {duplicate}")]
    #[diagnostic(
        code(kairos::ledger_duplicate_key),
        help(
            "JSON readers disagree on which of two values of one key counts, so a ledger line gives each key once; kairos never writes such a line"
        )
    )]
    DuplicateKey {
        path: String,
        line: u64,
        duplicate: Duplicate,
    },
    #[error("{path}:{line}: broken chain: `prev` is not the SHA-256 of line {previous}")]
    #[diagnostic(
        code(kairos::ledger_chain),
        help("a line before this one was changed, or this one was moved")
    )]
    BrokenChain {
        path: String,
        line: u64,
        previous: u64,
    },
}

impl ReadError {
    /// Exit code (`docs/exit-codes.md`): a broken chain or sequence is a negative verification result (1);
    /// anything that is not a readable ledger at all is bad input (2).
    pub fn exit_code(&self) -> i32 {
        match self {
            ReadError::BadSeq { .. } | ReadError::BrokenChain { .. } => crate::exit::NEGATIVE,
            _ => crate::exit::BAD_INPUT,
        }
    }
}

/// The fields every line has. Reading them checks the whole line for a key given twice in
/// one object (`unique.rs`).
#[derive(Debug)]
pub struct Head<'a> {
    pub seq: u64,
    pub prev: &'a str,
    pub event: &'a str,
    pub node: Option<&'a str>,
    pub clock: u64,
}

impl<'a> Head<'a> {
    /// Reads the head of `text`; a key given twice anywhere in the line is reported as a
    /// [`Duplicate`] apart from other errors.
    pub fn read(text: &'a str) -> Result<Self, HeadError> {
        let found = Found::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let head = HeadSeed { found: &found }
            .deserialize(&mut de)
            .and_then(|head| de.end().map(|()| head));
        head.map_err(|e| match found.into_inner() {
            Some(duplicate) => HeadError::Duplicate(duplicate),
            None => HeadError::Json(e),
        })
    }
}

/// Why a line's head cannot be read.
#[derive(Debug)]
pub enum HeadError {
    /// An object of the line has a key twice.
    Duplicate(Duplicate),
    Json(serde_json::Error),
}

/// One checked line.
pub struct Line<'a> {
    /// 0-based line number (= `seq`).
    pub seq: u64,
    /// The line's bytes, without the newline.
    pub text: &'a str,
    pub head: Head<'a>,
    /// The ledger's path, for errors about the line.
    path: &'a str,
}

impl<'a> Line<'a> {
    /// The line's event kind, without reading its fields.
    pub fn kind(&self) -> Result<Kind, ReadError> {
        Kind::of(self.head.event).map_err(|e| self.error(e))
    }

    /// The line's event, every field read.
    pub fn event(&self) -> Result<Event<'a>, ReadError> {
        Event::parse(self.head.event, self.text).map_err(|e| self.error(e))
    }

    fn error(&self, error: EventError) -> ReadError {
        let help = matches!(error, EventError::Unknown(_)).then(|| {
            format!(
                "this kairos ({}) reads the events it writes; read this ledger with the kairos that wrote it, or a later one",
                env!("CARGO_PKG_VERSION")
            )
        });
        ReadError::Event {
            path: self.path.to_string(),
            line: self.seq + 1,
            error,
            help,
        }
    }
}

/// Streams and checks a ledger.
///
/// Lines are read and prepared in chunks (`chunk.rs`: UTF-8, head and SHA-256 of each line, on
/// rayon's threads); [`Reader::next_line`] hands them out one at a time, in order, making the
/// checks that link each line to the one before. An error is the first bad line's whatever
/// the chunking, and ends the reading.
pub struct Reader<R> {
    chunks: Chunks<R>,
    path: String,
    /// The chunk being handed out, and the index of its next line.
    chunk: Chunk,
    pos: usize,
    next_seq: u64,
    /// Lowercase hex SHA-256 of the previous line.
    prev: [u8; 64],
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(source: R, path: impl Into<String>) -> Self {
        Self::with_limits(source, path, Limits::default())
    }

    /// A reader whose chunks hold at most `limits` (tests use tiny chunks, to put damage at
    /// their edges).
    pub(crate) fn with_limits(source: R, path: impl Into<String>, limits: Limits) -> Self {
        let mut prev = [0u8; 64];
        prev.copy_from_slice(GENESIS.as_bytes());
        Self {
            chunks: Chunks::new(source, limits),
            path: path.into(),
            chunk: Chunk::default(),
            pos: 0,
            next_seq: 0,
            prev,
            done: false,
        }
    }

    /// Number of lines read so far.
    pub fn lines(&self) -> u64 {
        self.next_seq
    }

    /// SHA-256 of the last line read (the chain head).
    pub fn head(&self) -> &str {
        std::str::from_utf8(&self.prev).unwrap_or_default()
    }

    /// Reads and checks the next line; `Ok(None)` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, ReadError> {
        if self.done {
            return Ok(None);
        }
        while self.pos == self.chunk.len() {
            if let Some(end) = self.chunk.take_end() {
                self.done = true;
                return match end {
                    End::Eof if self.next_seq == 0 => Err(ReadError::Empty {
                        path: self.path.clone(),
                    }),
                    End::Eof => Ok(None),
                    End::Io(source) => Err(ReadError::Io {
                        path: self.path.clone(),
                        source,
                    }),
                    // As `BufRead::read_line` says it.
                    End::NotUtf8 => Err(ReadError::Io {
                        path: self.path.clone(),
                        source: io::Error::new(
                            io::ErrorKind::InvalidData,
                            "stream did not contain valid UTF-8",
                        ),
                    }),
                };
            }
            self.refill();
        }
        let (text, prepared) = self.chunk.line(self.pos);
        self.pos += 1;
        let (head, sha256) = match check(text, prepared, self.next_seq, &self.prev, &self.path) {
            Ok(checked) => checked,
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        self.prev = *sha256;
        self.next_seq += 1;
        Ok(Some(Line {
            seq: head.seq,
            text,
            head,
            path: &self.path,
        }))
    }

    /// Replaces the chunk handed out by the next one.
    fn refill(&mut self) {
        let used = std::mem::take(&mut self.chunk);
        self.chunk = self.chunks.next(used);
        self.pos = 0;
    }
}

/// The checks of one prepared line against the line before: it is complete, its head reads,
/// line 0 is a `RunStart` of this format, `seq` counts on and `prev` is the previous line's
/// SHA-256. In this order, as the first failing one is the one reported.
fn check<'a>(
    text: &'a str,
    prepared: &'a Prepared,
    next_seq: u64,
    prev: &[u8; 64],
    path: &str,
) -> Result<(Head<'a>, &'a [u8; 64]), ReadError> {
    let line_no = next_seq + 1;
    let (head, sha256) = match prepared {
        Prepared::Torn => {
            return Err(ReadError::Torn {
                path: path.to_string(),
                line: line_no,
            });
        }
        Prepared::Bad(e) => return Err(head_error(e, text, next_seq, path)),
        Prepared::Good { head, sha256 } => (head.head(text), sha256),
    };
    if next_seq == 0 {
        check_start(&head, text, path)?;
    }
    if head.seq != next_seq {
        return Err(ReadError::BadSeq {
            path: path.to_string(),
            line: line_no,
            expected: next_seq,
            found: head.seq.to_string(),
        });
    }
    if head.prev.as_bytes() != prev {
        return Err(ReadError::BrokenChain {
            path: path.to_string(),
            line: line_no,
            previous: next_seq,
        });
    }
    Ok((head, sha256))
}

/// The error for a line whose head cannot be read.
fn head_error(error: &HeadError, text: &str, next_seq: u64, path: &str) -> ReadError {
    match error {
        HeadError::Duplicate(duplicate) => ReadError::DuplicateKey {
            path: path.to_string(),
            line: next_seq + 1,
            duplicate: duplicate.clone(),
        },
        // A line that is JSON but lacks the ledger fields is "not a ledger" on line 1.
        HeadError::Json(e)
            if next_seq == 0 && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() =>
        {
            ReadError::NotLedger {
                path: path.to_string(),
                why: format!("{e}"),
            }
        }
        HeadError::Json(e) => ReadError::NotJson {
            path: path.to_string(),
            line: next_seq + 1,
            message: e.to_string(),
        },
    }
}

/// Line 0 is a `RunStart` of the format this kairos reads.
fn check_start(head: &Head<'_>, text: &str, path: &str) -> Result<(), ReadError> {
    if head.event != Kind::RunStart.name() {
        return Err(ReadError::NotLedger {
            path: path.to_string(),
            why: format!("the first event is `{}`, not `RunStart`", head.event),
        });
    }
    // Only `format` is read: a ledger of another format may have other fields, and must be
    // refused for its format, not for what it lacks.
    #[derive(Deserialize)]
    struct Format<'a> {
        #[serde(borrow)]
        format: Option<&'a str>,
    }
    let format = serde_json::from_str::<Format<'_>>(text)
        .ok()
        .and_then(|f| f.format);
    match format {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(ReadError::UnknownFormat {
            path: path.to_string(),
            found: other.to_string(),
        }),
        None => Err(ReadError::NotLedger {
            path: path.to_string(),
            why: "RunStart has no `format`".into(),
        }),
    }
}

/// Opens a ledger file for reading.
pub fn open(path: &std::path::Path) -> Result<Reader<io::BufReader<std::fs::File>>, ReadError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io {
        path: name.clone(),
        source,
    })?;
    Ok(Reader::new(
        io::BufReader::with_capacity(1 << 16, file),
        name,
    ))
}

/// Strips `{"seq":N,"prev":"...",` from a line written by kairos, leaving the event body;
/// used to compare events of two ledgers whatever their position.
pub fn body(text: &str) -> &str {
    // Lines are `{"seq":N,"prev":"<64 hex>",<body>}`.
    text.find(",\"prev\":\"").map_or(text, |i| {
        let rest = &text[i + 9..];
        rest.get(66..rest.len().saturating_sub(1)).unwrap_or(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn read_all(text: &str) -> Result<u64, ReadError> {
        let mut r = Reader::new(text.as_bytes(), "t.jsonl");
        while r.next_line()?.is_some() {}
        Ok(r.lines())
    }

    fn ledger(events: &[&str]) -> String {
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        for (i, body) in events.iter().enumerate() {
            let line = format!("{{\"seq\":{i},\"prev\":\"{prev}\",{body}}}");
            prev = hex::encode(Sha256::digest(line.as_bytes()));
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    const START: &str = "\"event\":\"RunStart\",\"clock\":0,\"format\":\"kairos.ledger/1\"";

    #[test]
    fn reads_a_valid_ledger() {
        let text = ledger(&[START, "\"event\":\"End\",\"clock\":1,\"node\":\"a\""]);
        assert_eq!(read_all(&text).unwrap(), 2);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(body(line), "\"event\":\"End\",\"clock\":1,\"node\":\"a\"");
    }

    #[test]
    fn a_line_of_an_unknown_kind_is_refused_when_asked_for() {
        let text = ledger(&[START, "\"event\":\"Teleport\",\"clock\":1,\"node\":\"a\""]);
        let mut r = Reader::new(text.as_bytes(), "t.jsonl");
        r.next_line().unwrap();
        // The chain check reads the line; asking what it is refuses it.
        let line = r.next_line().unwrap().unwrap();
        let e = line.kind().unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.jsonl:2: unknown event `Teleport` (written by a newer kairos?)"
        );
        assert_eq!(e.exit_code(), crate::exit::BAD_INPUT);
        assert!(matches!(
            line.event(),
            Err(ReadError::Event { line: 2, .. })
        ));
    }

    fn duplicate(body: &str) -> Option<String> {
        match read_all(&ledger(&[START, body])) {
            Err(ReadError::DuplicateKey {
                line: 2, duplicate, ..
            }) => Some(duplicate.to_string()),
            Ok(_) => None,
            Err(e) => panic!("{body}: {e}"),
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let cases = [
            (
                r#""event":"RunEnd","clock":1,"status":"failed","status":"succeeded""#,
                "duplicate key `status`",
            ),
            (
                r#""event":"End","clock":1,"clock":2"#,
                "duplicate key `clock`",
            ),
            (
                r#""event":"RunEnd","clock":1,"counts":{"failed":1,"failed":0}"#,
                "duplicate key `failed` in `/counts`",
            ),
            (
                r#""event":"ToolOutput","clock":1,"output":[0,{"a":{"k":1,"k":2}}]"#,
                "duplicate key `k` in `/output/1/a`",
            ),
            // The same key spelled with an escape is the same key.
            (
                r#""event":"End","clock":1,"x":1,"x":2"#,
                "duplicate key `x`",
            ),
            (
                r#""event":"End","clock":1,"a/b~":{"q\u001b":1,"q\u001b":2}"#,
                "duplicate key `q\\u{1b}` in `/a~1b~0`",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(duplicate(body).as_deref(), Some(message), "{body}");
        }
        let e = read_all(&ledger(&[START, cases[0].0])).unwrap_err();
        assert_eq!(e.to_string(), "t.jsonl:2: duplicate key `status`");
        assert_eq!(e.exit_code(), crate::exit::BAD_INPUT);
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        for body in [
            r#""event":"End","clock":1,"a":{"clock":1},"b":{"clock":2}"#,
            r#""event":"End","clock":1,"list":[{"k":1},{"k":2}],"k":[]"#,
            r#""event":"End","clock":1,"deep":[[[{"a":{"a":{"a":1}}}]]]"#,
        ] {
            assert_eq!(duplicate(body), None, "{body}");
        }
    }

    /// A large object is checked with a hash set, not pair by pair.
    #[test]
    fn a_key_twice_in_a_large_object_is_refused() {
        let keys: Vec<String> = (0..1000).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = format!(r#""event":"End","clock":1,"big":{{{}}}"#, keys.join(","));
        assert_eq!(duplicate(&body), None);
        let twice = format!(
            r#""event":"End","clock":1,"big":{{{},"k500":0}}"#,
            keys.join(",")
        );
        assert_eq!(
            duplicate(&twice).as_deref(),
            Some("duplicate key `k500` in `/big`")
        );
    }

    #[test]
    fn rejects_each_kind_of_damage() {
        let good = ledger(&[
            START,
            "\"event\":\"A\",\"clock\":1",
            "\"event\":\"B\",\"clock\":2",
        ]);
        let lines: Vec<&str> = good.lines().collect();
        assert!(matches!(read_all(""), Err(ReadError::Empty { .. })));
        assert!(matches!(
            read_all("not json\n"),
            Err(ReadError::NotJson { line: 1, .. })
        ));
        assert!(matches!(
            read_all("{\"a\":1}\n"),
            Err(ReadError::NotLedger { .. })
        ));
        assert!(matches!(
            read_all(&good[..good.len() - 1]),
            Err(ReadError::Torn { line: 3, .. })
        ));
        let swapped = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
        assert!(matches!(
            read_all(&swapped),
            Err(ReadError::BadSeq { line: 2, .. })
        ));
        let edited = good.replace("\"event\":\"A\"", "\"event\":\"X\"");
        assert!(matches!(
            read_all(&edited),
            Err(ReadError::BrokenChain { line: 3, .. })
        ));
        let foreign =
            ledger(&["\"event\":\"RunStart\",\"clock\":0,\"format\":\"kairos.ledger/9\""]);
        assert!(matches!(
            read_all(&foreign),
            Err(ReadError::UnknownFormat { .. })
        ));
        let not_start = ledger(&["\"event\":\"End\",\"clock\":0"]);
        assert!(matches!(
            read_all(&not_start),
            Err(ReadError::NotLedger { .. })
        ));
    }
}
