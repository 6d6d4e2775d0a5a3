//! Rows 2 to 5 of `kairos verify` (see [`super::verify`]): the envelope, its signatures, the
//! statement read from its payload, and that statement compared with the ledger file.

use super::Facts;
use super::envelope::{self, Envelope, Predicate, Statement, Subject};
use super::keys::TrustedKey;
use super::sshsig;
use super::verify::{Check, Options, Outcome, Report, Signer, check, short};
use std::path::Path;

/// The rows of a ledger without an envelope: it is absent, and so is its signature (a
/// failure under `--require-signature` when there is no SSH signature either).
pub(super) fn no_envelope(report: &mut Report, options: &Options, has_ssh: bool) {
    report.checks.push(check(
        "envelope",
        Outcome::Absent,
        None,
        format!("no {}", super::envelope_path(&options.ledger).display()),
    ));
    let (result, detail) = if options.require_signature && !has_ssh {
        (
            Outcome::Failed,
            "no signature (envelope or SSH signature), and --require-signature".to_string(),
        )
    } else {
        (Outcome::Absent, "no envelope".to_string())
    };
    report.checks.push(check("signature", result, None, detail));
}

/// Checks the envelope and its signatures; sets `statement` from the verified payload.
/// Returns whether a trusted signature verified.
pub(super) fn check_envelope(
    report: &mut Report,
    path: &Path,
    env: &Envelope,
    options: &Options,
    statement: &mut Option<Statement>,
) -> bool {
    let Some(payload) = envelope_row(report, path, env) else {
        return false;
    };
    if options.keys.is_empty() {
        report.checks.push(check(
            "signature",
            Outcome::Skipped,
            None,
            "no trusted key given (--key, --allowed-signers)".into(),
        ));
        // Unverified, the statement proves nothing, but one about other contents shows that
        // the envelope does not belong to this ledger as it is.
        *statement = read_statement(report, &payload, false);
        return false;
    }
    let pae = envelope::pae(&env.payload_type, &payload);
    let (verified, problems) = trusted_signatures(env, &pae, options);
    if verified.is_empty() {
        report.checks.push(check(
            "signature",
            Outcome::Failed,
            None,
            format!("no signature by a trusted key: {}", problems.join("; ")),
        ));
        return false;
    }
    signature_row(report, &verified, &problems);
    // Only now, from the verified bytes.
    *statement = read_statement(report, &payload, true);
    true
}

/// The `envelope` row: the file is a DSSE envelope of a kairos payload with signatures.
/// Returns the payload when it is.
fn envelope_row(report: &mut Report, path: &Path, env: &Envelope) -> Option<Vec<u8>> {
    let name = path.display();
    if env.payload_type != envelope::PAYLOAD_TYPE {
        report.checks.push(check(
            "envelope",
            Outcome::Failed,
            None,
            format!(
                "{name}: payloadType is `{}`, not `{}`",
                env.payload_type,
                envelope::PAYLOAD_TYPE
            ),
        ));
        return None;
    }
    let payload = match env.payload_bytes() {
        Ok(p) => p,
        Err(why) => {
            report.checks.push(check(
                "envelope",
                Outcome::Failed,
                None,
                format!("{name}: {why}"),
            ));
            return None;
        }
    };
    if env.signatures.is_empty() {
        report.checks.push(check(
            "envelope",
            Outcome::Failed,
            None,
            format!("{name}: no signatures"),
        ));
        return None;
    }
    report.checks.push(check(
        "envelope",
        Outcome::Ok,
        None,
        format!(
            "{name}: DSSE, {}, {} signature{}",
            envelope::PAYLOAD_TYPE,
            env.signatures.len(),
            if env.signatures.len() == 1 { "" } else { "s" }
        ),
    ));
    Some(payload)
}

/// The trusted keys whose signatures over `pae` verify (each once), and what is wrong with
/// the other signatures.
fn trusted_signatures<'k>(
    env: &Envelope,
    pae: &[u8],
    options: &'k Options,
) -> (Vec<&'k TrustedKey>, Vec<String>) {
    let mut verified: Vec<&TrustedKey> = Vec::new();
    let mut problems = Vec::new();
    for (i, sig) in env.signatures.iter().enumerate() {
        let label = format!(
            "signature {} (keyid {})",
            i + 1,
            if sig.keyid.is_empty() {
                "none"
            } else {
                short(&sig.keyid)
            }
        );
        let signature = match envelope::decode_signature(sig) {
            Ok(s) => s,
            Err(why) => {
                problems.push(format!("{label}: {why}"));
                continue;
            }
        };
        // The keyid is a hint, not authenticated: try the named key first, then the others.
        let mut candidates: Vec<&TrustedKey> = options.keys.iter().collect();
        candidates.sort_by_key(|k| k.keyid != sig.keyid);
        let mut found = None;
        let mut refused = None;
        for key in candidates {
            if key.key.verify_strict(pae, &signature).is_ok() {
                match key.allows(sshsig::NAMESPACE, options.now) {
                    Ok(()) => found = Some(key),
                    Err(why) => refused = Some(format!("the key of `{}`: {why}", key.name)),
                }
                break;
            }
        }
        match (found, refused) {
            (Some(key), _) => {
                if !verified.iter().any(|k| k.keyid == key.keyid) {
                    verified.push(key);
                }
            }
            (None, Some(why)) => problems.push(format!("{label}: {why}")),
            (None, None) => {
                let trusted = options.keys.iter().any(|k| k.keyid == sig.keyid);
                problems.push(if trusted {
                    format!("{label}: does not verify (the payload or the signature was changed)")
                } else {
                    format!("{label}: not made by a trusted key")
                });
            }
        }
    }
    (verified, problems)
}

/// The `signature` row of an envelope signed by trusted keys, with its signers, and a note
/// on the signatures that were not used.
fn signature_row(report: &mut Report, verified: &[&TrustedKey], problems: &[String]) {
    for key in verified {
        report.signers.push(Signer {
            keyid: key.keyid.clone(),
            name: key.name.clone(),
            signature: "dsse",
        });
    }
    if !problems.is_empty() {
        report.notes.push(format!(
            "other signatures in the envelope were not used: {}",
            problems.join("; ")
        ));
    }
    report.checks.push(check(
        "signature",
        Outcome::Ok,
        None,
        verified
            .iter()
            .map(|k| format!("signed by {} (keyid {})", k.name, short(&k.keyid)))
            .collect::<Vec<_>>()
            .join(", "),
    ));
}

/// Parses the envelope's payload as a kairos statement, adding the `statement` row.
/// `verified`: the payload's signature was checked (otherwise the row says it was not).
fn read_statement(report: &mut Report, payload: &[u8], verified: bool) -> Option<Statement> {
    let what = if verified {
        "the signed payload"
    } else {
        "the envelope's payload"
    };
    let failed = |why: String| {
        check(
            "statement",
            Outcome::Failed,
            None,
            if verified {
                why
            } else {
                format!("the envelope does not match the ledger: {why}")
            },
        )
    };
    match serde_json::from_slice::<Statement>(payload) {
        Ok(st) if st.type_ != envelope::STATEMENT_TYPE => {
            report.checks.push(failed(format!(
                "_type is `{}`, not `{}`",
                st.type_,
                envelope::STATEMENT_TYPE
            )));
            None
        }
        Ok(st) if st.predicate_type != envelope::PREDICATE_TYPE => {
            report.checks.push(failed(format!(
                "predicateType is `{}`, not `{}`",
                st.predicate_type,
                envelope::PREDICATE_TYPE
            )));
            None
        }
        Ok(st) if st.subject.len() != 1 => {
            report
                .checks
                .push(failed(format!("{} subjects, not one", st.subject.len())));
            None
        }
        Ok(st) => {
            report.checks.push(check(
                "statement",
                Outcome::Ok,
                None,
                format!(
                    "in-toto Statement v1, {}{}",
                    envelope::PREDICATE_TYPE,
                    if verified {
                        ""
                    } else {
                        " (unverified: no trusted key)"
                    }
                ),
            ));
            Some(st)
        }
        Err(e) => {
            report.checks.push(failed(format!(
                "{what} is not a kairos in-toto statement: {e}"
            )));
            None
        }
    }
}

/// Rows 4 and 5 when there is no statement to compare: absent without an envelope,
/// skipped otherwise, with the reason.
pub(super) fn no_statement(report: &mut Report, has_envelope: bool, envelope_signed: bool) {
    let stmt_rows = ["statement", "subject", "records", "chain head", "run"];
    let why = if !has_envelope {
        "no envelope"
    } else if envelope_signed {
        "not checked: the signed statement is not a kairos statement"
    } else {
        "not checked: no verified signature"
    };
    // `statement` is already there when it failed to parse.
    for name in stmt_rows {
        if !report.checks.iter().any(|c| c.check == name) {
            let result = if !has_envelope {
                Outcome::Absent
            } else {
                Outcome::Skipped
            };
            report.checks.push(check(name, result, None, why.into()));
        }
    }
}

/// Compares the verified statement with the file.
pub(super) fn check_statement(
    report: &mut Report,
    st: &Statement,
    facts: Option<&Facts>,
    file_sha256: &str,
    broken: &str,
) {
    let subject = &st.subject[0];
    let p = &st.predicate;
    report
        .checks
        .push(subject_row(subject, p, facts, file_sha256));
    let Some(f) = facts else {
        for name in ["records", "chain head", "run"] {
            report
                .checks
                .push(check(name, Outcome::Skipped, None, broken.into()));
        }
        return;
    };
    report.checks.push(records_row(p, f));
    report.checks.push(chain_head_row(p, f));
    report.checks.push(run_row(p, f));
}

/// Where the file departs from the signed ledger, as far as the count and head tell.
fn locate(f: &Facts, p: &Predicate) -> (Option<u64>, String) {
    if f.records < p.records {
        (
            Some(f.records + 1),
            format!(
                "the file ends after {} lines, the signed ledger has {} (truncated)",
                f.records, p.records
            ),
        )
    } else if f.records > p.records {
        (
            Some(p.records + 1),
            format!(
                "line {} is past the signed ledger's {} lines (appended)",
                p.records + 1,
                p.records
            ),
        )
    } else if f.head != p.chain_head {
        (
            Some(f.records),
            format!(
                "line {} is not the signed one (it, or a line before it, was changed and the chain rewritten, or this is another ledger)",
                f.records
            ),
        )
    } else {
        (
            None,
            "the file has other bytes than the signed ledger".into(),
        )
    }
}

/// The `subject` row: the statement's SHA-256 is the file's.
fn subject_row(
    subject: &Subject,
    p: &Predicate,
    facts: Option<&Facts>,
    file_sha256: &str,
) -> Check {
    let renamed = if facts.is_some_and(|f| f.name != subject.name) {
        format!(" (signed as `{}`)", subject.name)
    } else {
        String::new()
    };
    if subject.digest.sha256 == file_sha256 {
        check(
            "subject",
            Outcome::Ok,
            None,
            format!("sha256 {} is the file's{renamed}", short(file_sha256)),
        )
    } else {
        let (line, why) = match facts {
            Some(f) => locate(f, p),
            None => (
                None,
                "the file has other bytes than the signed ledger".into(),
            ),
        };
        check(
            "subject",
            Outcome::Failed,
            line,
            format!(
                "the signed ledger{} has sha256 {}, the file {}: {why}",
                if renamed.is_empty() {
                    String::new()
                } else {
                    format!(" `{}`", subject.name)
                },
                short(&subject.digest.sha256),
                short(file_sha256)
            ),
        )
    }
}

/// The `records` row: the statement's count of lines is the file's.
fn records_row(p: &Predicate, f: &Facts) -> Check {
    if p.records == f.records {
        check(
            "records",
            Outcome::Ok,
            None,
            format!("{} records", f.records),
        )
    } else {
        let (line, why) = locate(f, p);
        check("records", Outcome::Failed, line, why)
    }
}

/// The `chain head` row: the statement's chain head is the file's.
fn chain_head_row(p: &Predicate, f: &Facts) -> Check {
    if p.chain_head == f.head {
        check("chain head", Outcome::Ok, None, short(&f.head).to_string())
    } else {
        check(
            "chain head",
            Outcome::Failed,
            Some(f.records),
            format!(
                "the signed chain head is {}, the file's last line hashes to {}",
                short(&p.chain_head),
                short(&f.head)
            ),
        )
    }
}

/// The `run` row: the statement's format, workflow and status are those the ledger records.
fn run_row(p: &Predicate, f: &Facts) -> Check {
    let mut differences = Vec::new();
    if p.format != crate::ledger::FORMAT {
        differences.push(format!("format `{}`", p.format));
    }
    if p.workflow != f.workflow {
        differences.push(format!(
            "workflow `{}` (the ledger: `{}`)",
            p.workflow, f.workflow
        ));
    }
    if p.workflow_sha256 != f.workflow_sha256 {
        differences.push(format!(
            "workflow sha256 {} (the ledger: {})",
            short(&p.workflow_sha256),
            short(&f.workflow_sha256)
        ));
    }
    if p.status != f.status {
        differences.push(format!(
            "status `{}` (the ledger: `{}`)",
            p.status, f.status
        ));
    }
    if differences.is_empty() {
        check(
            "run",
            Outcome::Ok,
            None,
            format!(
                "workflow `{}` (sha256 {}), status {}",
                f.workflow,
                short(&f.workflow_sha256),
                f.status
            ),
        )
    } else {
        check(
            "run",
            Outcome::Failed,
            None,
            format!("the statement says {}", differences.join(", ")),
        )
    }
}
