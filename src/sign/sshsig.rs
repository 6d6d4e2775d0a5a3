//! SSHSIG signatures (OpenSSH `PROTOCOL.sshsig`) over the raw ledger bytes, in the namespace
//! [`NAMESPACE`], so that
//!
//! ```sh
//! ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n ledger@kairos -s run.jsonl.sig < run.jsonl
//! ```
//!
//! checks a ledger without kairos, and `ssh-keygen -Y sign -n ledger@kairos -f KEY run.jsonl`
//! makes a signature `kairos verify --allowed-signers` accepts.

use super::keys::TrustedKey;
use ed25519_dalek::SigningKey;
use ssh_key::{HashAlg, LineEnding, SshSig};

/// The namespace of ledger signatures.
pub const NAMESPACE: &str = "ledger@kairos";

/// Signs a file whose `HashAlg::Sha512` digest is `prehash`; returns the armored signature.
pub fn sign(key: &SigningKey, prehash: &[u8]) -> Result<String, String> {
    let pair = ssh_key::private::Ed25519Keypair::from_seed(key.as_bytes());
    let private = ssh_key::PrivateKey::from(pair);
    let sig = private
        .sign_prehash(NAMESPACE, HashAlg::Sha512, prehash)
        .map_err(|e| e.to_string())?;
    let mut text = sig.to_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Parses an armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`).
pub fn parse(text: &str) -> Result<SshSig, String> {
    SshSig::from_pem(text.trim()).map_err(|e| format!("not an SSH signature: {e}"))
}

/// Verifies `sig` over a file with digest `prehash` (of `sig.hash_alg()`) against the trusted
/// keys; returns the key that made it.
pub fn verify<'k>(
    sig: &SshSig,
    prehash: &[u8],
    trusted: &'k [TrustedKey],
    now: i64,
) -> Result<&'k TrustedKey, String> {
    if sig.namespace() != NAMESPACE {
        return Err(format!(
            "the signature is in namespace `{}`, not `{NAMESPACE}`",
            sig.namespace()
        ));
    }
    if sig.version() != SshSig::VERSION {
        return Err(format!("unsupported SSHSIG version {}", sig.version()));
    }
    if !sig.reserved().is_empty() {
        return Err("the signature's reserved field is not empty".into());
    }
    let Some(public) = sig.public_key().ed25519() else {
        return Err(format!(
            "a {} signature; kairos verifies Ed25519 only",
            sig.algorithm().as_str()
        ));
    };
    let key = trusted
        .iter()
        .find(|t| t.key.as_bytes() == &public.0)
        .ok_or_else(|| {
            format!(
                "made by a key that is not trusted (keyid {})",
                ed25519_dalek::VerifyingKey::from_bytes(&public.0)
                    .map(|k| super::keys::keyid(&k))
                    .unwrap_or_else(|_| "invalid".into())
            )
        })?;
    key.allows(NAMESPACE, now)
        .map_err(|why| format!("the key of `{}` is not trusted here: {why}", key.name))?;
    let signed = SshSig::signed_data_for_prehash(NAMESPACE, sig.hash_alg(), prehash)
        .map_err(|e| e.to_string())?;
    let signature = ed25519_dalek::Signature::from_slice(sig.signature_bytes())
        .map_err(|_| "the signature is not 64 bytes".to_string())?;
    key.key
        .verify_strict(&signed, &signature)
        .map_err(|_| "the signature does not match the ledger's bytes".to_string())?;
    Ok(key)
}
