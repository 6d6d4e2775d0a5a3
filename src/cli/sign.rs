//! `kairos sign LEDGER --key KEY [--ssh]`: a DSSE/in-toto envelope `LEDGER.intoto.json`, and
//! with `--ssh` an SSHSIG `LEDGER.sig` over the raw ledger bytes.
//!
//! The ledger is read once (format, `seq`, whole chain, file hashes); a ledger that does not
//! verify is not signed. Signing an already signed ledger with another key adds a signature to
//! the envelope (key rotation); with the same key it replaces that key's signature. An envelope
//! that holds a statement about other ledger contents is refused.

use super::OutputFormat;
use crate::exit;
use crate::sign::envelope::{Envelope, Statement};
use crate::sign::{self, Facts, keys, sshsig};
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ledger to sign.
    #[arg(value_name = "LEDGER")]
    pub ledger: PathBuf,
    /// Ed25519 private key file: PKCS#8 PEM (`kairos keygen`, `openssl genpkey -algorithm
    /// ed25519`) or an unencrypted OpenSSH key (`ssh-keygen -t ed25519`). KAIROS_SIGNING_KEY
    /// may hold the path or the PEM text itself (a CI secret).
    #[arg(
        long,
        value_name = "KEY",
        env = "KAIROS_SIGNING_KEY",
        hide_env_values = true
    )]
    pub key: PathBuf,
    /// Also write LEDGER.sig, an SSHSIG signature over the ledger bytes (namespace
    /// `ledger@kairos`) that `ssh-keygen -Y verify` checks.
    #[arg(long)]
    pub ssh: bool,
    /// Where to write the envelope (default: LEDGER.intoto.json).
    #[arg(long, value_name = "FILE")]
    pub envelope: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn run(args: &Args) -> i32 {
    let key = match signing_key(args) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let ssh_hash = args.ssh.then_some(ssh_key::HashAlg::Sha512);
    let facts = match scan(args, ssh_hash) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let statement = Statement::about(&facts);
    let payload = statement.to_payload();
    let envelope_path = args
        .envelope
        .clone()
        .unwrap_or_else(|| sign::envelope_path(&args.ledger));
    let mut envelope = match envelope_to_sign(args, &envelope_path, &payload) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let replaced = envelope.sign(&key, &payload);
    if let Err(e) = sign::write_atomically(&envelope_path, envelope.to_json().as_bytes()) {
        errln!("error: cannot write {}: {e}", envelope_path.display());
        return exit::BAD_INPUT;
    }
    let ssh_path = sign::ssh_signature_path(&args.ledger);
    if args.ssh
        && let Err(code) = write_ssh_signature(&key, &facts, &ssh_path)
    {
        return code;
    }
    let keyid = keys::keyid(&key.verifying_key());
    if args.format == OutputFormat::Json {
        let doc = serde_json::json!({
            "ledger": args.ledger.display().to_string(),
            "envelope": envelope_path.display().to_string(),
            "ssh_signature": args.ssh.then(|| ssh_path.display().to_string()),
            "keyid": keyid,
            "signatures": envelope.signatures.len(),
            "replaced": replaced,
            "records": facts.records,
            "chain_head": facts.head,
            "sha256": facts.sha256,
            "workflow": facts.workflow,
            "workflow_sha256": facts.workflow_sha256,
            "status": facts.status,
        });
        super::print_json(&doc);
        return exit::SUCCESS;
    }
    let n = envelope.signatures.len();
    let mut text = format!(
        "signed {} ({} records, chain head {}, status {}) with key {keyid}\n\
         wrote {} ({n} signature{}{})\n",
        args.ledger.display(),
        facts.records,
        facts.head.get(..12).unwrap_or_default(),
        facts.status,
        envelope_path.display(),
        if n == 1 { "" } else { "s" },
        if replaced {
            "; this key's signature was replaced"
        } else {
            ""
        }
    );
    if args.ssh {
        text.push_str(&format!(
            "wrote {} (SSHSIG, namespace {})\n",
            ssh_path.display(),
            sshsig::NAMESPACE
        ));
    }
    super::print_stdout(&text);
    exit::SUCCESS
}

/// Loads `--key`; when it cannot be, prints why and gives the exit code.
fn signing_key(args: &Args) -> Result<SigningKey, i32> {
    // A PEM in the variable itself (a CI secret) rather than a path.
    let loaded = match args.key.to_str() {
        Some(text) if text.contains("-----BEGIN ") => {
            keys::parse_signing_key(text, "KAIROS_SIGNING_KEY")
        }
        _ => keys::load_signing_key(&args.key),
    };
    match loaded {
        Ok(k) => Ok(k),
        Err(e) => {
            super::report_error(e);
            Err(exit::BAD_INPUT)
        }
    }
}

/// Reads the ledger once (format, `seq`, chain, file hashes); when it does not verify, prints
/// why signing is refused and gives the exit code.
fn scan(args: &Args, ssh_hash: Option<ssh_key::HashAlg>) -> Result<Facts, i32> {
    match sign::scan(&args.ledger, ssh_hash) {
        Ok(f) => Ok(f),
        Err(failure) => {
            let code = failure.error.exit_code();
            super::report_error(failure.error);
            errln!(
                "error: refusing to sign {}: it does not verify",
                args.ledger.display()
            );
            Err(code)
        }
    }
}

/// The envelope to add the signature to: the one at `envelope_path` when it signs `payload`,
/// or a new one when there is none. Otherwise prints why and gives the exit code.
fn envelope_to_sign(args: &Args, envelope_path: &Path, payload: &[u8]) -> Result<Envelope, i32> {
    match std::fs::read(envelope_path) {
        Ok(text) => {
            let existing: Envelope = match serde_json::from_slice(&text) {
                Ok(e) => e,
                Err(e) => {
                    errln!(
                        "error: {} exists but is not a DSSE envelope ({e}); remove it to sign anew",
                        envelope_path.display()
                    );
                    return Err(exit::BAD_INPUT);
                }
            };
            if existing.payload_bytes().ok().as_deref() != Some(payload)
                || existing.payload_type != crate::sign::envelope::PAYLOAD_TYPE
            {
                errln!(
                    "error: {} signs other contents than {} as it is now (the ledger changed since, or the envelope belongs to another ledger); remove it to sign anew",
                    envelope_path.display(),
                    args.ledger.display()
                );
                return Err(exit::BAD_INPUT);
            }
            Ok(existing)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Envelope::new(payload)),
        Err(e) => {
            errln!("error: cannot read {}: {e}", envelope_path.display());
            Err(exit::BAD_INPUT)
        }
    }
}

/// Writes the SSHSIG over the ledger's bytes to `ssh_path`; when it cannot, prints why and
/// gives the exit code.
fn write_ssh_signature(key: &SigningKey, facts: &Facts, ssh_path: &Path) -> Result<(), i32> {
    let prehash = facts.ssh_prehash.clone().unwrap_or_default();
    let text = match sshsig::sign(key, &prehash) {
        Ok(t) => t,
        Err(e) => {
            errln!("error: cannot make the SSH signature: {e}");
            return Err(exit::BAD_INPUT);
        }
    };
    if let Err(e) = sign::write_atomically(ssh_path, text.as_bytes()) {
        errln!("error: cannot write {}: {e}", ssh_path.display());
        return Err(exit::BAD_INPUT);
    }
    Ok(())
}
