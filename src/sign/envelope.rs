//! The signature envelope: a DSSE envelope (<https://github.com/secure-systems-lab/dsse>)
//! holding an in-toto Statement v1 (<https://github.com/in-toto/attestation>) about one
//! ledger file.
//!
//! ```json
//! {"payloadType": "application/vnd.in-toto+json",
//!  "payload": "<base64 of the statement>",
//!  "signatures": [{"keyid": "<hex SHA-256 of the DER SPKI>", "sig": "<base64 Ed25519>"}]}
//! ```
//!
//! The signature is over the DSSE pre-authentication encoding (PAE) of the payload type and
//! the decoded payload bytes: `DSSEv1 SP len(type) SP type SP len(body) SP body`. The
//! statement is compact JSON with its keys in a fixed order, so the same ledger gives the same
//! payload bytes and a second signer adds a signature to the same payload.

use super::Facts;
use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};

/// DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The kairos predicate: what the statement says about the ledger.
pub const PREDICATE_TYPE: &str = "https://kairos.dev/ledger/v1";

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// The in-toto statement (key order fixed by the field order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: Digests,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    pub sha256: String,
}

/// What kairos binds to the ledger file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicate {
    /// Ledger format (`kairos.ledger/1`).
    pub format: String,
    /// Number of lines (events).
    pub records: u64,
    /// SHA-256 of the last line (without its newline).
    pub chain_head: String,
    /// Workflow name and SHA-256 of its source (from `RunStart`).
    pub workflow: String,
    pub workflow_sha256: String,
    /// Run status: `succeeded`, `failed`, `denied` (from `RunEnd`), `paused` or `incomplete`.
    pub status: String,
}

impl Statement {
    /// The statement about a scanned ledger.
    pub fn about(facts: &Facts) -> Self {
        Self {
            type_: STATEMENT_TYPE.into(),
            subject: vec![Subject {
                name: facts.name.clone(),
                digest: Digests {
                    sha256: facts.sha256.clone(),
                },
            }],
            predicate_type: PREDICATE_TYPE.into(),
            predicate: Predicate {
                format: crate::ledger::FORMAT.into(),
                records: facts.records,
                chain_head: facts.head.clone(),
                workflow: facts.workflow.clone(),
                workflow_sha256: facts.workflow_sha256.clone(),
                status: facts.status.clone(),
            },
        }
    }

    /// The payload bytes (compact JSON).
    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A DSSE envelope as stored in `LEDGER.intoto.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard base64 (with padding) of the statement.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    /// Standard base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

impl Envelope {
    /// An envelope over `payload` without signatures yet.
    pub fn new(payload: &[u8]) -> Self {
        Self {
            payload_type: PAYLOAD_TYPE.into(),
            payload: Base64::encode_string(payload),
            signatures: Vec::new(),
        }
    }

    /// The decoded payload.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        Base64::decode_vec(self.payload.trim())
            .map_err(|e| format!("the payload is not standard base64: {e}"))
    }

    /// Signs the payload with `key`: replaces this key's signature if there is one, else adds
    /// one. Returns whether a signature by this key was already there.
    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey, payload: &[u8]) -> bool {
        use ed25519_dalek::Signer;
        let keyid = super::keys::keyid(&key.verifying_key());
        let sig = key.sign(&pae(&self.payload_type, payload));
        let entry = EnvelopeSignature {
            keyid: keyid.clone(),
            sig: Base64::encode_string(&sig.to_bytes()),
        };
        match self.signatures.iter_mut().find(|s| s.keyid == keyid) {
            Some(existing) => {
                *existing = entry;
                true
            }
            None => {
                self.signatures.push(entry);
                false
            }
        }
    }

    /// Pretty JSON with a final newline, as written to disk.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Decodes one envelope signature into an Ed25519 signature.
pub fn decode_signature(sig: &EnvelopeSignature) -> Result<ed25519_dalek::Signature, String> {
    let bytes = Base64::decode_vec(sig.sig.trim())
        .map_err(|e| format!("the signature is not standard base64: {e}"))?;
    ed25519_dalek::Signature::from_slice(&bytes)
        .map_err(|_| format!("the signature is {} bytes, not 64", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn statement_keys_are_in_a_fixed_order() {
        let facts = Facts {
            name: "run.jsonl".into(),
            records: 3,
            head: "ab".into(),
            sha256: "cd".into(),
            workflow: "wf".into(),
            workflow_sha256: "ef".into(),
            status: "succeeded".into(),
            ..Facts::default()
        };
        let text = String::from_utf8(Statement::about(&facts).to_payload()).unwrap();
        assert_eq!(
            text,
            "{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":\"run.jsonl\",\
             \"digest\":{\"sha256\":\"cd\"}}],\"predicateType\":\"https://kairos.dev/ledger/v1\",\
             \"predicate\":{\"format\":\"kairos.ledger/1\",\"records\":3,\"chain_head\":\"ab\",\
             \"workflow\":\"wf\",\"workflow_sha256\":\"ef\",\"status\":\"succeeded\"}}"
        );
    }
}
