//! `kairos verify LEDGER [--key PUB]... [--allowed-signers FILE] [--workflow FILE]
//! [--require-signature]`: the checklist of [`crate::sign::verify`].
//!
//! Table output: one row per check (`check | result | line | detail`), then one line: `verified
//! LEDGER: ...` or `verification FAILED: CHECK (line N): DETAIL`, and notes. `--format json`:
//!
//! ```json
//! {"ledger": "run.jsonl", "verified": true, "signed": true, "records": 12,
//!  "chain_head": "<sha256>", "sha256": "<sha256 of the file>", "workflow": "hello",
//!  "workflow_sha256": "<sha256>", "status": "succeeded",
//!  "signers": [{"keyid": "<hex>", "name": "ci", "signature": "dsse"}],
//!  "first_failure": null,
//!  "checks": [{"check": "format", "result": "ok", "line": null, "detail": "..."}],
//!  "notes": []}
//! ```
//!
//! Exit 0 when every check passed; 1 when one failed, however the ledger is damaged (a cut
//! last line too) or when its envelope does not match it (even without `--key`); 2 only when
//! an input cannot be used at all (a missing file, an unreadable key, an envelope that is not
//! JSON, a bad argument).

use super::OutputFormat;
use crate::exit;
use crate::sign::verify::{self, Options, Outcome, Report};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ledger to verify.
    #[arg(value_name = "LEDGER")]
    pub ledger: PathBuf,
    /// A trusted public key: SPKI PEM (`NAME.pub`, `openssl pkey -pubout`) or OpenSSH
    /// `ssh-ed25519` lines. Repeatable.
    #[arg(long = "key", value_name = "PUB")]
    pub keys: Vec<PathBuf>,
    /// An OpenSSH allowed_signers file (`PRINCIPALS [OPTIONS] ssh-ed25519 KEY`); a key with
    /// `namespaces=` must allow `ledger@kairos`.
    #[arg(long, value_name = "FILE")]
    pub allowed_signers: Option<PathBuf>,
    /// Check that the ledger ran this workflow file (its SHA-256).
    #[arg(long, value_name = "FILE")]
    pub workflow: Option<PathBuf>,
    /// Fail unless a trusted key signed the ledger (envelope or SSH signature).
    #[arg(long)]
    pub require_signature: bool,
    /// The envelope (default: LEDGER.intoto.json).
    #[arg(long, value_name = "FILE")]
    pub envelope: Option<PathBuf>,
    /// The SSH signature (default: LEDGER.sig).
    #[arg(long, value_name = "FILE")]
    pub ssh_signature: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn run(args: &Args) -> i32 {
    let keys = match verify::load_trust(&args.keys, args.allowed_signers.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            super::report_error(e);
            return exit::BAD_INPUT;
        }
    };
    let workflow = match &args.workflow {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => Some((path.clone(), crate::ledger::sha256_hex(&bytes))),
            Err(e) => {
                errln!("error: cannot read {}: {e}", path.display());
                return exit::BAD_INPUT;
            }
        },
        None => None,
    };
    let options = Options {
        ledger: args.ledger.clone(),
        keys,
        envelope: args.envelope.clone(),
        ssh_signature: args.ssh_signature.clone(),
        workflow,
        require_signature: args.require_signature,
        now: verify::now(),
    };
    let mut report = match verify::verify(&options) {
        Ok(r) => r,
        Err(e) => {
            super::report_error(e);
            return exit::BAD_INPUT;
        }
    };
    let code = report.exit_code();
    match args.format {
        OutputFormat::Json => super::print_json(&report),
        OutputFormat::Table => super::print_stdout(&table(&report)),
    }
    if let Some(e) = report.read_error.take() {
        super::report_error(e);
    } else if let Some(f) = &report.first_failure {
        errln!(
            "error: {}{}: {}: {}",
            args.ledger.display(),
            f.line.map(|l| format!(":{l}")).unwrap_or_default(),
            f.check,
            f.detail
        );
    }
    code
}

fn table(report: &Report) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    t.set_header(["check", "result", "line", "detail"]);
    for c in &report.checks {
        t.add_row([
            c.check,
            c.result.as_str(),
            &c.line.map(|l| l.to_string()).unwrap_or_default(),
            &c.detail,
        ]);
    }
    let mut out = format!("{t}\n");
    match &report.first_failure {
        Some(f) => out.push_str(&format!(
            "verification FAILED: {}{}: {}\n",
            f.check,
            f.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            f.detail
        )),
        None => {
            let present = report.checks.iter().any(|c| {
                matches!(c.check, "envelope" | "ssh signature") && c.result != Outcome::Absent
            });
            let signers = if !report.signers.is_empty() {
                // One entry per key: `ci (envelope, SSH signature)`.
                let mut by_key: Vec<(&str, &str, Vec<&str>)> = Vec::new();
                for s in &report.signers {
                    let kind = if s.signature == "dsse" {
                        "envelope"
                    } else {
                        "SSH signature"
                    };
                    match by_key.iter_mut().find(|(id, _, _)| *id == s.keyid) {
                        Some(entry) => entry.2.push(kind),
                        None => by_key.push((&s.keyid, &s.name, vec![kind])),
                    }
                }
                let names: Vec<String> = by_key
                    .iter()
                    .map(|(_, name, kinds)| format!("{name} ({})", kinds.join(", ")))
                    .collect();
                format!("signed by {}", names.join("; "))
            } else if present {
                "signatures not checked".to_string()
            } else {
                "unsigned".to_string()
            };
            out.push_str(&format!(
                "verified {}: {} records, chain head {}, status {}, {signers}\n",
                report.ledger,
                report.records.unwrap_or_default(),
                report
                    .chain_head
                    .as_deref()
                    .and_then(|h| h.get(..12))
                    .unwrap_or_default(),
                report.status.as_deref().unwrap_or_default(),
            ));
        }
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}
