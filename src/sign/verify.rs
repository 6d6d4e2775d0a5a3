//! The checks of `kairos verify`, in order, as a checklist.
//!
//! 1. `format`, `seq`, `chain`: the shared reader, over the whole file (one streaming pass,
//!    which also hashes the file).
//! 2. `envelope`: `LEDGER.intoto.json` is a DSSE envelope of an in-toto statement.
//! 3. `signature`: one of its signatures is by a trusted key, over the DSSE PAE
//!    (`verify_strict`).
//! 4. `statement`: the statement, parsed only from the verified payload, is an in-toto
//!    Statement v1 with the kairos predicate and one subject.
//! 5. `subject`: its SHA-256 is the file's; `records` and `chain head`: its count and chain
//!    head are the file's; `run`: its workflow name, workflow digest and status are those the
//!    ledger records.
//! 6. `workflow` (with `--workflow`): the workflow file's SHA-256 is the one the ledger records.
//! 7. `ssh signature`: `LEDGER.sig`, when present, is an SSHSIG by a trusted key over the file's
//!    bytes in the namespace `ledger@kairos`.
//!
//! Without a trusted key the signatures cannot be checked, but the envelope's statement is
//! still compared with the file (rows 4 and 5, marked unverified): an envelope that does not
//! match the ledger (another ledger's, or one signed before the ledger was changed) fails.
//!
//! A check is `ok`, `failed`, `skipped` (it could not or need not run) or `absent` (there is
//! nothing to check: no envelope, no SSH signature). Any failed check is a failed
//! verification (exit 1), whatever is wrong with the ledger, a cut last line included; exit 2
//! is for input that cannot be used at all (see [`InputError`]).

use super::envelope::{Envelope, Statement};
use super::keys::{self, TrustedKey};
use super::{Facts, ScanFailure, sshsig, verify_envelope};
use crate::exit;
use crate::ledger::reader::ReadError;
use serde::Serialize;
use ssh_key::{HashAlg, SshSig};
use std::path::{Path, PathBuf};

/// What to verify, and against what.
#[derive(Debug, Default)]
pub struct Options {
    pub ledger: PathBuf,
    /// Trusted keys (`--key`, `--allowed-signers`).
    pub keys: Vec<TrustedKey>,
    /// The envelope; default `LEDGER.intoto.json` (absent is fine unless it was named).
    pub envelope: Option<PathBuf>,
    /// The SSHSIG; default `LEDGER.sig` (absent is fine unless it was named).
    pub ssh_signature: Option<PathBuf>,
    /// `--workflow`: the file and the SHA-256 of its bytes.
    pub workflow: Option<(PathBuf, String)>,
    pub require_signature: bool,
    /// Seconds since 1970 (for `valid-after`/`valid-before` of `allowed_signers`).
    pub now: i64,
}

/// Input that cannot be checked at all (exit 2).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    #[diagnostic(code(kairos::io))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a DSSE envelope: {why}")]
    #[diagnostic(
        code(kairos::envelope_syntax),
        help("`kairos sign` writes `LEDGER.intoto.json`; sign the ledger again to replace it")
    )]
    Envelope { path: String, why: String },
    #[error("{path}: {why}")]
    #[diagnostic(code(kairos::ssh_signature_syntax))]
    SshSignature { path: String, why: String },
    #[error("--require-signature needs a trusted key: give --key PUB or --allowed-signers FILE")]
    #[diagnostic(code(kairos::no_trusted_key))]
    NoTrustedKey,
    #[error(transparent)]
    #[diagnostic(transparent)]
    Read(ReadError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    Skipped,
    Absent,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
            Outcome::Absent => "absent",
        }
    }
}

/// One row of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub result: Outcome,
    /// The 1-based line the failure is about, where one line is.
    pub line: Option<u64>,
    pub detail: String,
}

/// A key that signed the ledger and verified.
#[derive(Debug, Clone, Serialize)]
pub struct Signer {
    pub keyid: String,
    pub name: String,
    /// `dsse` (the envelope) or `sshsig` (`LEDGER.sig`).
    pub signature: &'static str,
}

/// The verification result.
#[derive(Debug, Serialize)]
pub struct Report {
    pub ledger: String,
    /// Every check passed (or was absent/skipped as allowed).
    pub verified: bool,
    /// A signature by a trusted key verified.
    pub signed: bool,
    pub records: Option<u64>,
    pub chain_head: Option<String>,
    pub sha256: Option<String>,
    pub workflow: Option<String>,
    pub workflow_sha256: Option<String>,
    pub status: Option<String>,
    pub signers: Vec<Signer>,
    pub first_failure: Option<Check>,
    pub checks: Vec<Check>,
    /// Remarks for people (an unsigned ledger, signatures by unknown keys).
    pub notes: Vec<String>,
    /// The reader's error, when the ledger did not read to its end.
    #[serde(skip)]
    pub read_error: Option<ReadError>,
}

impl Report {
    /// Exit code: a ledger damaged in any way, or a signature or envelope that does not hold,
    /// is a negative result; only unusable input (an [`InputError`]) is bad input.
    pub fn exit_code(&self) -> i32 {
        if self.first_failure.is_some() {
            exit::NEGATIVE
        } else {
            exit::SUCCESS
        }
    }
}

/// One row of the checklist.
pub(super) fn check(
    check: &'static str,
    result: Outcome,
    line: Option<u64>,
    detail: String,
) -> Check {
    Check {
        check,
        result,
        line,
        detail,
    }
}

/// The first 12 hex digits of a digest, as the rows show it.
pub(super) fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// Reads an optional file: `None` when it does not exist and was not named explicitly.
fn read_optional(
    explicit: Option<&Path>,
    default: PathBuf,
) -> Result<Option<(PathBuf, String)>, InputError> {
    let path = explicit.map_or(default, Path::to_path_buf);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some((path, String::from_utf8_lossy(&bytes).into_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Ok(None),
        Err(source) => Err(InputError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Runs every check. `Err` only for input that cannot be checked at all (exit 2).
pub fn verify(options: &Options) -> Result<Report, InputError> {
    if options.require_signature && options.keys.is_empty() {
        return Err(InputError::NoTrustedKey);
    }
    let ledger = &options.ledger;
    let envelope = read_envelope(options)?;
    let ssh_sig = read_ssh_signature(options)?;
    let ssh_hash = ssh_sig.as_ref().map(|(_, s)| s.hash_alg());

    let mut report = empty_report(ledger);

    // 1. Format, seq, chain (and the file's hashes).
    let (facts, (file_sha256, ssh_prehash)) = check_ledger(&mut report, ledger, ssh_hash)?;
    let broken = "not checked: the ledger did not read to its end";

    // 2-5. The envelope.
    let mut statement: Option<Statement> = None;
    let mut envelope_signed = false;
    match &envelope {
        None => verify_envelope::no_envelope(&mut report, options, ssh_sig.is_some()),
        Some((path, env)) => {
            envelope_signed =
                verify_envelope::check_envelope(&mut report, path, env, options, &mut statement);
        }
    }
    match &statement {
        None => verify_envelope::no_statement(&mut report, envelope.is_some(), envelope_signed),
        Some(st) => {
            let first = report.checks.len();
            verify_envelope::check_statement(&mut report, st, facts.as_ref(), &file_sha256, broken);
            if !envelope_signed {
                // Compared without a trusted key: a mismatch means the envelope is not this
                // ledger's; a match proves nothing.
                for row in &mut report.checks[first..] {
                    match row.result {
                        Outcome::Failed => {
                            row.detail =
                                format!("the envelope does not match the ledger: {}", row.detail);
                        }
                        Outcome::Ok => row.detail.push_str(" (unverified: no trusted key)"),
                        _ => {}
                    }
                }
            }
        }
    }

    // 6. The workflow.
    check_workflow(&mut report, options, facts.as_ref(), broken);

    // 7. The SSH signature.
    let ssh_signed = check_ssh_signature(&mut report, options, ssh_sig.as_ref(), ssh_prehash);

    report.signed = envelope_signed || ssh_signed;
    conclude(
        &mut report,
        options,
        envelope.is_none() && ssh_sig.is_none(),
    );
    Ok(report)
}

/// Reads the envelope (`--envelope`, or `LEDGER.intoto.json` when there is one).
fn read_envelope(options: &Options) -> Result<Option<(PathBuf, Envelope)>, InputError> {
    read_optional(
        options.envelope.as_deref(),
        super::envelope_path(&options.ledger),
    )?
    .map(|(path, text)| {
        serde_json::from_str::<Envelope>(&text)
            .map(|e| (path.clone(), e))
            .map_err(|e| InputError::Envelope {
                path: path.display().to_string(),
                why: e.to_string(),
            })
    })
    .transpose()
}

/// Reads the SSH signature (`--ssh-signature`, or `LEDGER.sig` when there is one).
fn read_ssh_signature(options: &Options) -> Result<Option<(PathBuf, SshSig)>, InputError> {
    read_optional(
        options.ssh_signature.as_deref(),
        super::ssh_signature_path(&options.ledger),
    )?
    .map(|(path, text)| {
        sshsig::parse(&text)
            .map(|s| (path.clone(), s))
            .map_err(|why| InputError::SshSignature {
                path: path.display().to_string(),
                why,
            })
    })
    .transpose()
}

/// The report before any check has run.
fn empty_report(ledger: &Path) -> Report {
    Report {
        ledger: ledger.display().to_string(),
        verified: false,
        signed: false,
        records: None,
        chain_head: None,
        sha256: None,
        workflow: None,
        workflow_sha256: None,
        status: None,
        signers: Vec::new(),
        first_failure: None,
        checks: Vec::new(),
        notes: Vec::new(),
        read_error: None,
    }
}

/// The file's SHA-256 and, when there is an SSH signature, the hash it signs.
type FileHashes = (String, Option<Vec<u8>>);

/// Row 1: the `format`, `seq` and `chain` rows, from one pass of the reader that also hashes
/// the file. Returns what the ledger establishes (`None` when it did not read to its end),
/// the file's SHA-256 and the SSHSIG hash.
fn check_ledger(
    report: &mut Report,
    ledger: &Path,
    ssh_hash: Option<HashAlg>,
) -> Result<(Option<Facts>, FileHashes), InputError> {
    match super::scan(ledger, ssh_hash) {
        Ok(facts) => {
            ledger_read(report, &facts);
            let (sha, pre) = (facts.sha256.clone(), facts.ssh_prehash.clone());
            Ok((Some(facts), (sha, pre)))
        }
        Err(failure) => Ok((None, ledger_damaged(report, ledger, ssh_hash, failure)?)),
    }
}

/// The rows and facts of a ledger that read to its end.
fn ledger_read(report: &mut Report, facts: &Facts) {
    report.checks.push(check(
        "format",
        Outcome::Ok,
        None,
        format!("{}, starts with RunStart", crate::ledger::FORMAT),
    ));
    report.checks.push(check(
        "seq",
        Outcome::Ok,
        None,
        format!("0..{} contiguous", facts.records.saturating_sub(1)),
    ));
    report.checks.push(check(
        "chain",
        Outcome::Ok,
        None,
        format!(
            "{} lines chained, head {}",
            facts.records,
            short(&facts.head)
        ),
    ));
    report.records = Some(facts.records);
    report.chain_head = Some(facts.head.clone());
    report.sha256 = Some(facts.sha256.clone());
    report.workflow = Some(facts.workflow.clone());
    report.workflow_sha256 = Some(facts.workflow_sha256.clone());
    report.status = Some(facts.status.clone());
}

/// The rows of a ledger that did not read to its end: the check that failed, those before it
/// passed, those after it skipped. Returns the file's SHA-256 and SSHSIG hash, so the
/// signatures are still checked.
fn ledger_damaged(
    report: &mut Report,
    ledger: &Path,
    ssh_hash: Option<HashAlg>,
    failure: ScanFailure,
) -> Result<FileHashes, InputError> {
    // Bytes that are not text are damage, like any other; a file that cannot be read
    // at all is unusable input.
    let not_text = matches!(&failure.error, ReadError::Io { source, .. }
        if source.kind() == std::io::ErrorKind::InvalidData);
    if matches!(failure.error, ReadError::Io { .. }) && !not_text {
        return Err(InputError::Read(failure.error));
    }
    let (line, kind) = match &failure.error {
        ReadError::BadSeq { line, .. } => (*line, 1),
        ReadError::BrokenChain { line, .. } => (*line, 2),
        ReadError::NotJson { line, .. }
        | ReadError::Torn { line, .. }
        | ReadError::Event { line, .. } => (*line, 0),
        ReadError::Io { .. } => (failure.lines_ok + 1, 0),
        _ => (1, 0),
    };
    let message = if not_text {
        "not UTF-8 text".to_string()
    } else {
        failure.error.to_string()
    };
    let message = message
        .strip_prefix(&format!("{}:{line}: ", ledger.display()))
        .or_else(|| message.strip_prefix(&format!("{}: ", ledger.display())))
        .unwrap_or(&message)
        .to_string();
    for (i, name) in ["format", "seq", "chain"].into_iter().enumerate() {
        let row = match i.cmp(&kind) {
            std::cmp::Ordering::Less => check(
                name,
                Outcome::Ok,
                None,
                format!("lines 1-{} ok", failure.lines_ok),
            ),
            std::cmp::Ordering::Equal => check(name, Outcome::Failed, Some(line), message.clone()),
            std::cmp::Ordering::Greater => check(
                name,
                Outcome::Skipped,
                None,
                format!("stopped at line {line}"),
            ),
        };
        report.checks.push(row);
    }
    // (The reader's own words for bytes that are not text would say "cannot read".)
    report.read_error = (!not_text).then_some(failure.error);
    // Keep checking the signatures, for the record: a valid signature over a ledger
    // whose chain is broken still fails, but the report says which is which.
    let (sha, pre) = super::hash_file(ledger, ssh_hash).map_err(|source| InputError::Io {
        path: ledger.display().to_string(),
        source,
    })?;
    report.sha256 = Some(sha.clone());
    Ok((sha, pre))
}

/// Row 6: the `workflow` row, with `--workflow`.
fn check_workflow(report: &mut Report, options: &Options, facts: Option<&Facts>, broken: &str) {
    match (&options.workflow, facts) {
        (None, _) => report.checks.push(check(
            "workflow",
            Outcome::Skipped,
            None,
            "no --workflow given".into(),
        )),
        (Some(_), None) => {
            report
                .checks
                .push(check("workflow", Outcome::Skipped, None, broken.into()))
        }
        (Some((path, digest)), Some(f)) => {
            let row = if *digest == f.workflow_sha256 {
                check(
                    "workflow",
                    Outcome::Ok,
                    None,
                    format!(
                        "{} is the workflow `{}` the ledger ran (sha256 {})",
                        path.display(),
                        f.workflow,
                        short(digest)
                    ),
                )
            } else {
                check(
                    "workflow",
                    Outcome::Failed,
                    Some(1),
                    format!(
                        "{} has sha256 {}, the ledger ran `{}` with sha256 {}",
                        path.display(),
                        short(digest),
                        f.workflow,
                        short(&f.workflow_sha256)
                    ),
                )
            };
            report.checks.push(row);
        }
    }
}

/// Row 7: the `ssh signature` row. Returns whether the SSH signature verified.
fn check_ssh_signature(
    report: &mut Report,
    options: &Options,
    ssh_sig: Option<&(PathBuf, SshSig)>,
    ssh_prehash: Option<Vec<u8>>,
) -> bool {
    let mut ssh_signed = false;
    match ssh_sig {
        None => report.checks.push(check(
            "ssh signature",
            Outcome::Absent,
            None,
            format!(
                "no {}",
                super::ssh_signature_path(&options.ledger).display()
            ),
        )),
        Some((path, _)) if options.keys.is_empty() => report.checks.push(check(
            "ssh signature",
            Outcome::Skipped,
            None,
            format!(
                "{}: no trusted key given (--key, --allowed-signers)",
                path.display()
            ),
        )),
        Some((path, sig)) => {
            let prehash = ssh_prehash.unwrap_or_default();
            match sshsig::verify(sig, &prehash, &options.keys, options.now) {
                Ok(key) => {
                    ssh_signed = true;
                    report.signers.push(Signer {
                        keyid: key.keyid.clone(),
                        name: key.name.clone(),
                        signature: "sshsig",
                    });
                    report.checks.push(check(
                        "ssh signature",
                        Outcome::Ok,
                        None,
                        format!(
                            "{}: signed by {} (keyid {}) over the file's bytes",
                            path.display(),
                            key.name,
                            short(&key.keyid)
                        ),
                    ));
                }
                Err(why) => report.checks.push(check(
                    "ssh signature",
                    Outcome::Failed,
                    None,
                    format!("{}: {why}", path.display()),
                )),
            }
        }
    }
    ssh_signed
}

/// The end of the checklist: a missing signature under `--require-signature`, the notes for
/// people, and the verdict. `unsigned`: there is neither an envelope nor an SSH signature.
fn conclude(report: &mut Report, options: &Options, unsigned: bool) {
    if !report.signed
        && options.require_signature
        && !report.checks.iter().any(|c| c.result == Outcome::Failed)
    {
        report.checks.push(check(
            "signature",
            Outcome::Failed,
            None,
            "no signature by a trusted key, and --require-signature".into(),
        ));
    }
    if unsigned {
        report.notes.push(if options.keys.is_empty() {
            "the ledger is unsigned: only its format and chain were checked".into()
        } else {
            "the ledger is unsigned though trusted keys were given; add --require-signature to make that a failure".into()
        });
    } else if options.keys.is_empty() {
        report.notes.push(
            "no trusted key given (--key, --allowed-signers): the signatures were not checked"
                .into(),
        );
    }
    report.first_failure = report
        .checks
        .iter()
        .find(|c| c.result == Outcome::Failed)
        .cloned();
    report.verified = report.first_failure.is_none();
}

/// Seconds since 1970 now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Loads `--key` files and an `--allowed-signers` file.
pub fn load_trust(
    key_files: &[PathBuf],
    allowed_signers: Option<&Path>,
) -> Result<Vec<TrustedKey>, super::KeyError> {
    let mut trusted = Vec::new();
    for path in key_files {
        trusted.extend(keys::load_public_keys(path)?);
    }
    if let Some(path) = allowed_signers {
        trusted.extend(keys::load_allowed_signers(path)?);
    }
    Ok(trusted)
}
