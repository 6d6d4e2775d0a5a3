//! Signing and verifying ledgers (`docs/ledger.md`, signing) with formats that standard tools check.
//!
//! - [`keys`]: Ed25519 key files (PKCS#8 v1 / SPKI PEM, OpenSSH), key ids, `allowed_signers`.
//! - [`envelope`]: the DSSE envelope and in-toto statement written to `LEDGER.intoto.json`.
//! - [`sshsig`]: the SSHSIG signature `LEDGER.sig` over the raw ledger bytes.
//! - [`verify`]: the checks of `kairos verify`, as a checklist (the envelope's rows are in
//!   `verify_envelope`).
//!
//! Every command reads the ledger once, streaming, through the shared
//! [`crate::ledger::reader`]: [`scan`] checks the format, `seq` and chain, refuses events this
//! kairos does not know (a signature vouches for what kairos can read back), and hashes the
//! file as it goes.

pub mod envelope;
pub mod keys;
pub mod sshsig;
pub mod verify;
mod verify_envelope;

use crate::ledger::event::{Event, Kind};
use crate::ledger::reader::{self, ReadError};
use sha2::{Digest, Sha256, Sha512};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Problems with a key or trust file (always bad input, exit 2).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(kairos::io))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    #[diagnostic(
        code(kairos::key_format),
        help(
            "kairos reads Ed25519 keys: PKCS#8 PEM (`kairos keygen`, `openssl genpkey -algorithm ed25519`), SPKI PEM public keys, and OpenSSH keys (`ssh-keygen -t ed25519`)"
        )
    )]
    Format { path: String, why: String },
    #[error("{path}:{line}: {why}")]
    #[diagnostic(code(kairos::key_format))]
    Line {
        path: String,
        line: usize,
        why: String,
    },
    #[error("{path}: the key is {algorithm}; kairos signs with Ed25519 keys only")]
    #[diagnostic(
        code(kairos::key_algorithm),
        help(
            "make one with `kairos keygen --out NAME`, `openssl genpkey -algorithm ed25519 -out NAME.key` or `ssh-keygen -t ed25519 -f NAME`"
        )
    )]
    Algorithm { path: String, algorithm: String },
    #[error("{path}: the key is encrypted with a passphrase; kairos reads unencrypted keys only")]
    #[diagnostic(code(kairos::key_encrypted), help("{help}"))]
    Encrypted { path: String, help: &'static str },
    #[error("cannot get random bytes from the operating system: {0}")]
    #[diagnostic(code(kairos::random))]
    Random(String),
}

/// The SSHSIG namespace of ledger signatures (`ssh-keygen -Y sign -n ledger@kairos`).
pub const SSH_NAMESPACE: &str = sshsig::NAMESPACE;

/// What one streaming pass over a valid ledger establishes.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub path: PathBuf,
    /// The file name (the statement's subject name).
    pub name: String,
    /// Number of lines.
    pub records: u64,
    /// SHA-256 of the last line.
    pub head: String,
    /// SHA-256 of the whole file.
    pub sha256: String,
    /// `RunStart.workflow` and `RunStart.workflow_sha256`.
    pub workflow: String,
    pub workflow_sha256: String,
    /// `RunEnd.status`, `paused` (a `RunPaused` trailer) or `incomplete`.
    pub status: String,
    /// The file's hash for an SSHSIG, when asked for.
    pub ssh_prehash: Option<Vec<u8>>,
}

/// A ledger that does not read to its end: the reader's error, and how far it got.
#[derive(Debug)]
pub struct ScanFailure {
    pub error: ReadError,
    /// Lines that passed every check before the failure.
    pub lines_ok: u64,
}

/// Feeds every byte read to the file hashes.
struct Hashing<'h, R> {
    inner: R,
    sha256: &'h mut Sha256,
    extra: Option<&'h mut ExtraHash>,
}

/// The hash an SSHSIG signs (ssh-keygen uses SHA-512; SHA-256 is allowed).
pub enum ExtraHash {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl ExtraHash {
    pub fn new(alg: ssh_key::HashAlg) -> Self {
        match alg {
            ssh_key::HashAlg::Sha256 => Self::Sha256(Sha256::new()),
            _ => Self::Sha512(Sha512::new()),
        }
    }
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let bytes = &buf[..n];
        self.sha256.update(bytes);
        if let Some(extra) = self.extra.as_deref_mut() {
            extra.update(bytes);
        }
        Ok(n)
    }
}

/// Reads the whole ledger once: checks format, `seq` and chain (the shared reader), and
/// hashes the file (SHA-256, plus `ssh_hash` for an SSHSIG) on the way.
pub fn scan(path: &Path, ssh_hash: Option<ssh_key::HashAlg>) -> Result<Facts, ScanFailure> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ScanFailure {
        error: ReadError::Io {
            path: name.clone(),
            source,
        },
        lines_ok: 0,
    })?;
    let mut sha256 = Sha256::new();
    let mut extra = ssh_hash.map(ExtraHash::new);
    let mut facts = Facts {
        path: path.to_path_buf(),
        name: path
            .file_name()
            .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned()),
        ..Facts::default()
    };
    {
        let source = Hashing {
            inner: file,
            sha256: &mut sha256,
            extra: extra.as_mut(),
        };
        let mut r = reader::Reader::new(std::io::BufReader::with_capacity(1 << 16, source), name);
        let mut status: &'static str = "incomplete";
        let mut end_status = "";
        loop {
            let line = match r.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(error) => {
                    let lines_ok = r.lines();
                    return Err(ScanFailure { error, lines_ok });
                }
            };
            // Only the lines the facts come from are read whole; every other line's kind is
            // checked, so a ledger with events this kairos does not know is refused.
            let fail = |error| ScanFailure {
                error,
                lines_ok: line.seq,
            };
            let kind = line.kind().map_err(fail)?;
            status = match kind {
                Kind::RunPaused => "paused",
                Kind::RunEnd => "",
                _ => "incomplete",
            };
            if (kind == Kind::RunStart && line.seq == 0) || kind == Kind::RunEnd {
                match line.event().map_err(fail)? {
                    Event::RunStart(start) => {
                        facts.workflow = start.workflow.into_owned();
                        facts.workflow_sha256 = start.workflow_sha256.into_owned();
                    }
                    Event::RunEnd(end) => end_status = end.status.name(),
                    _ => {}
                }
            }
        }
        facts.records = r.lines();
        facts.head = r.head().to_string();
        facts.status = if status.is_empty() {
            end_status
        } else {
            status
        }
        .to_string();
    }
    facts.sha256 = hex::encode(sha256.finalize());
    facts.ssh_prehash = extra.map(ExtraHash::finish);
    Ok(facts)
}

/// SHA-256 (and optionally the SSHSIG hash) of a whole file, without checking anything.
pub fn hash_file(
    path: &Path,
    ssh_hash: Option<ssh_key::HashAlg>,
) -> std::io::Result<(String, Option<Vec<u8>>)> {
    let mut sha256 = Sha256::new();
    let mut extra = ssh_hash.map(ExtraHash::new);
    let mut source = Hashing {
        inner: std::fs::File::open(path)?,
        sha256: &mut sha256,
        extra: extra.as_mut(),
    };
    std::io::copy(&mut source, &mut std::io::sink())?;
    Ok((hex::encode(sha256.finalize()), extra.map(ExtraHash::finish)))
}

/// `LEDGER` + `suffix` (`run.jsonl` -> `run.jsonl.intoto.json`).
pub fn beside(ledger: &Path, suffix: &str) -> PathBuf {
    let mut s = ledger.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Default envelope path: `LEDGER.intoto.json`.
pub fn envelope_path(ledger: &Path) -> PathBuf {
    beside(ledger, ".intoto.json")
}

/// Default SSHSIG path: `LEDGER.sig` (where `ssh-keygen -Y sign` puts it).
pub fn ssh_signature_path(ledger: &Path) -> PathBuf {
    beside(ledger, ".sig")
}

/// Writes `contents` to `path` through a temporary file in the same directory and a rename,
/// so a reader never sees half an envelope.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
