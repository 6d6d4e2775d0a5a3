//! Key files: reading Ed25519 private keys (kairos, `openssl genpkey`, `ssh-keygen`), public
//! keys (SPKI PEM or an `ssh-ed25519` line), OpenSSH `allowed_signers` files, writing a new
//! key pair, and key ids.
//!
//! The private key is written as PKCS#8 v1 (RFC 5208, the 48-byte form OpenSSL writes and
//! reads) rather than v2 (RFC 5958, with the public key), which OpenSSL 3.0 rejects.

use super::KeyError;
use ed25519_dalek::pkcs8::spki::SubjectPublicKeyInfoRef;
use ed25519_dalek::pkcs8::spki::der::{Decode, pem};
use ed25519_dalek::pkcs8::{ObjectIdentifier, PrivateKeyInfoRef};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::Path;

/// DER of a PKCS#8 v1 Ed25519 `PrivateKeyInfo` up to the 32-byte seed.
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an Ed25519 `SubjectPublicKeyInfo` up to the 32-byte public key.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// id-Ed25519 (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A trusted public key, with where it came from.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub key: VerifyingKey,
    /// Hex SHA-256 of the key's DER `SubjectPublicKeyInfo`.
    pub keyid: String,
    /// The principal(s) of an `allowed_signers` line, or the key file's name.
    pub name: String,
    /// `namespaces="..."` of an `allowed_signers` line (`None`: any namespace).
    pub namespaces: Option<Vec<String>>,
    /// `valid-after` / `valid-before` of an `allowed_signers` line, in seconds since 1970 (UTC).
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
}

impl TrustedKey {
    fn new(key: VerifyingKey, name: String) -> Self {
        Self {
            keyid: keyid(&key),
            key,
            name,
            namespaces: None,
            valid_after: None,
            valid_before: None,
        }
    }

    /// Whether this key may sign in `namespace` now (the `allowed_signers` restrictions).
    pub fn allows(&self, namespace: &str, now: i64) -> Result<(), String> {
        if let Some(patterns) = &self.namespaces
            && !patterns.iter().any(|p| pattern_list_match(p, namespace))
        {
            return Err(format!(
                "its allowed_signers line restricts it to namespaces=\"{}\", not `{namespace}`",
                patterns.join(",")
            ));
        }
        if let Some(t) = self.valid_after
            && now < t
        {
            return Err("its allowed_signers line makes it valid only later (valid-after)".into());
        }
        if let Some(t) = self.valid_before
            && now >= t
        {
            return Err("its allowed_signers line has expired (valid-before)".into());
        }
        Ok(())
    }
}

/// The DER `SubjectPublicKeyInfo` of an Ed25519 public key.
pub fn spki_der(key: &VerifyingKey) -> [u8; 44] {
    let mut der = [0u8; 44];
    der[..12].copy_from_slice(&SPKI_PREFIX);
    der[12..].copy_from_slice(key.as_bytes());
    der
}

/// Key id: lowercase hex SHA-256 of the DER `SubjectPublicKeyInfo`.
pub fn keyid(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(spki_der(key)))
}

/// The private key as PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn private_pem(key: &SigningKey) -> String {
    let mut der = [0u8; 48];
    der[..16].copy_from_slice(&PKCS8_V1_PREFIX);
    der[16..].copy_from_slice(key.as_bytes());
    let text = pem::encode_string("PRIVATE KEY", pem::LineEnding::LF, &der);
    // Overwrite the copy of the seed on the stack (the PEM text is the caller's to drop).
    der.fill(0);
    text.unwrap_or_default()
}

/// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_pem(key: &VerifyingKey) -> String {
    pem::encode_string("PUBLIC KEY", pem::LineEnding::LF, &spki_der(key)).unwrap_or_default()
}

/// The public key as an OpenSSH line (`ssh-ed25519 AAAA... COMMENT`).
pub fn public_ssh(key: &VerifyingKey, comment: &str) -> String {
    let data = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(key.to_bytes()));
    ssh_key::PublicKey::new(data, comment)
        .to_openssh()
        .unwrap_or_default()
}

/// A generated key pair from the operating system's random source.
pub fn generate() -> Result<SigningKey, KeyError> {
    use rand::TryRng;
    let mut seed = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

fn read(path: &Path) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::Format {
        path: path.display().to_string(),
        why: "not a text key file (PEM or OpenSSH)".into(),
    })
}

/// The name of an algorithm OID, for messages.
fn algorithm_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.2.840.113549.1.1.10" => "RSA-PSS".into(),
        "1.2.840.10045.2.1" => "ECDSA".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        "1.3.101.110" => "X25519".into(),
        "1.3.101.111" => "X448".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("the algorithm with OID {other}"),
    }
}

/// The first PEM block of `text` (OpenSSL may put explanatory text around it).
fn pem_block(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let end_marker = rest.find("-----END ")?;
    let end = end_marker
        + rest[end_marker..]
            .find('\n')
            .unwrap_or(rest.len() - end_marker);
    Some(&rest[..end])
}

/// Reads a signing key: PKCS#8 PEM (`kairos keygen`, `openssl genpkey -algorithm ed25519`)
/// or an unencrypted OpenSSH private key (`ssh-keygen -t ed25519`).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read(path)?;
    parse_signing_key(&text, &path.display().to_string())
}

/// Parses a signing key read from `name` (see [`load_signing_key`]).
pub fn parse_signing_key(text: &str, name: &str) -> Result<SigningKey, KeyError> {
    let format = |why: String| KeyError::Format {
        path: name.to_string(),
        why,
    };
    let algorithm = |algorithm: String| KeyError::Algorithm {
        path: name.to_string(),
        algorithm,
    };
    let block = pem_block(text).ok_or_else(|| {
        if text.trim_start().starts_with("ssh-") || text.trim_start().starts_with("ecdsa-") {
            format("this is an OpenSSH public key; signing needs the private key".into())
        } else {
            format("no PEM block (`-----BEGIN ...-----`) found".into())
        }
    })?;
    if block.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key = ssh_key::PrivateKey::from_openssh(block).map_err(|e| {
            match openssh_key_type(block) {
                Some(t) if t != "ssh-ed25519" => algorithm(format!("OpenSSH {t}")),
                _ => format(format!("not a readable OpenSSH private key: {e}")),
            }
        })?;
        if key.is_encrypted() {
            return Err(KeyError::Encrypted {
                path: name.to_string(),
                help: "remove the passphrase from a copy: `ssh-keygen -p -N '' -f COPY`",
            });
        }
        return match key.key_data().ed25519() {
            Some(pair) => Ok(SigningKey::from_bytes(pair.private.as_ref())),
            None => Err(algorithm(format!("OpenSSH {}", key.algorithm().as_str()))),
        };
    }
    let (label, der) =
        pem::decode_vec(block.as_bytes()).map_err(|e| format(format!("bad PEM: {e}")))?;
    match label {
        "PRIVATE KEY" => {
            let info = PrivateKeyInfoRef::from_der(&der)
                .map_err(|e| format(format!("not a PKCS#8 private key: {e}")))?;
            if info.algorithm.oid != ED25519_OID {
                return Err(algorithm(algorithm_name(&info.algorithm.oid)));
            }
            SigningKey::try_from(info)
                .map_err(|e| format(format!("not a valid Ed25519 PKCS#8 key: {e}")))
        }
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted {
            path: name.to_string(),
            help: "decrypt a copy: `openssl pkey -in KEY -out COPY`",
        }),
        "RSA PRIVATE KEY" => Err(algorithm("RSA".into())),
        "EC PRIVATE KEY" => Err(algorithm("ECDSA".into())),
        "DSA PRIVATE KEY" => Err(algorithm("DSA".into())),
        "PUBLIC KEY" => Err(format(
            "this is a public key; signing needs the private key".into(),
        )),
        other => Err(format(format!("a PEM `{other}` is not a private key"))),
    }
}

/// The key type (`ssh-rsa`, `ecdsa-sha2-nistp256`, ...) of an OpenSSH private key file, read
/// from its unencrypted public part (`openssh-key-v1`: magic, cipher, kdf, kdf options, key
/// count, then the public key blob, which starts with the type).
fn openssh_key_type(block: &str) -> Option<String> {
    use base64ct::{Base64, Encoding};
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let bytes = Base64::decode_vec(&body).ok()?;
    let mut rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
    fn string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = rest.get(4..4 + len)?;
        *rest = &rest[4 + len..];
        Some(s)
    }
    for _ in 0..3 {
        string(&mut rest)?;
    }
    rest = rest.get(4..)?;
    let mut public = string(&mut rest)?;
    let key_type = string(&mut public)?;
    String::from_utf8(key_type.to_vec()).ok()
}

/// Reads trusted public keys from a file: an SPKI PEM (`kairos keygen`'s `.pub`, `openssl pkey
/// -pubout`) or OpenSSH public key lines (`ssh-ed25519 AAAA... comment`, one or more).
pub fn load_public_keys(path: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let text = read(path)?;
    parse_public_keys(&text, &path.display().to_string())
}

/// Parses trusted public keys read from `name` (see [`load_public_keys`]).
pub fn parse_public_keys(text: &str, name: &str) -> Result<Vec<TrustedKey>, KeyError> {
    let format = |why: String| KeyError::Format {
        path: name.to_string(),
        why,
    };
    if let Some(block) = pem_block(text) {
        let (label, der) =
            pem::decode_vec(block.as_bytes()).map_err(|e| format(format!("bad PEM: {e}")))?;
        return match label {
            "PUBLIC KEY" => Ok(vec![TrustedKey::new(
                parse_spki(&der, name)?,
                name.to_string(),
            )]),
            l if l.contains("PRIVATE KEY") => Err(format(
                "this is a private key; give the public key (`NAME.pub`) to verify".into(),
            )),
            other => Err(format(format!("a PEM `{other}` is not a public key"))),
        };
    }
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = parse_ssh_public(line).map_err(|why| KeyError::Line {
            path: name.to_string(),
            line: i + 1,
            why,
        })?;
        let comment = line.split_whitespace().nth(2).unwrap_or(name).to_string();
        keys.push(TrustedKey::new(key, comment));
    }
    if keys.is_empty() {
        return Err(format(
            "no public key in it (expected a PEM `PUBLIC KEY` or `ssh-ed25519 ...` lines)".into(),
        ));
    }
    Ok(keys)
}

/// An Ed25519 public key from DER `SubjectPublicKeyInfo`.
fn parse_spki(der: &[u8], name: &str) -> Result<VerifyingKey, KeyError> {
    let info = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| KeyError::Format {
        path: name.to_string(),
        why: format!("not a SubjectPublicKeyInfo: {e}"),
    })?;
    if info.algorithm.oid != ED25519_OID {
        return Err(KeyError::Algorithm {
            path: name.to_string(),
            algorithm: algorithm_name(&info.algorithm.oid),
        });
    }
    let bytes: [u8; 32] = info
        .subject_public_key
        .as_bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Format {
            path: name.to_string(),
            why: "the Ed25519 public key is not 32 bytes".into(),
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Format {
        path: name.to_string(),
        why: "not a valid Ed25519 public key".into(),
    })
}

/// An Ed25519 public key from an OpenSSH line (`ssh-ed25519 AAAA... [comment]`).
fn parse_ssh_public(line: &str) -> Result<VerifyingKey, String> {
    let key = ssh_key::PublicKey::from_openssh(line).map_err(|e| {
        match line.split_whitespace().next() {
            Some(t) if is_key_type(t) && t != "ssh-ed25519" => {
                format!("a {t} key; kairos signs and verifies with Ed25519 only")
            }
            _ => format!("not an OpenSSH public key: {e}"),
        }
    })?;
    match key.key_data().ed25519() {
        Some(k) => VerifyingKey::from_bytes(&k.0).map_err(|_| "not a valid Ed25519 key".into()),
        None => Err(format!(
            "a {} key; kairos signs and verifies with Ed25519 only",
            key.algorithm().as_str()
        )),
    }
}

/// An Ed25519 public key as ssh-key's key data (to compare with an SSHSIG's key).
pub fn to_ssh_key_data(key: &VerifyingKey) -> ssh_key::public::KeyData {
    ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(key.to_bytes()))
}

/// Reads an OpenSSH `allowed_signers` file (`ssh-keygen(1)`, ALLOWED SIGNERS): lines of
/// `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`. Options `namespaces="..."`,
/// `valid-after=...` and `valid-before=...` are honoured; `cert-authority` lines are skipped
/// (kairos does not verify certificates), as are keys of other algorithms.
pub fn load_allowed_signers(path: &Path) -> Result<Vec<TrustedKey>, KeyError> {
    let text = read(path)?;
    parse_allowed_signers(&text, &path.display().to_string())
}

/// Parses an `allowed_signers` file read from `name` (see [`load_allowed_signers`]).
pub fn parse_allowed_signers(text: &str, name: &str) -> Result<Vec<TrustedKey>, KeyError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| KeyError::Line {
            path: name.to_string(),
            line: i + 1,
            why,
        };
        let fields = split_fields(line).map_err(bad)?;
        let mut it = fields.into_iter();
        let principals = it.next().unwrap_or_default();
        let mut next = it
            .next()
            .ok_or_else(|| bad("no key after the principals".into()))?;
        let mut namespaces = None;
        let mut valid_after = None;
        let mut valid_before = None;
        let mut cert_authority = false;
        // Options come before the key type; key types never contain `=` or `,`.
        if !is_key_type(&next) {
            for option in split_options(&next) {
                let (k, v) = match option.split_once('=') {
                    Some((k, v)) => (k.to_ascii_lowercase(), Some(v.trim_matches('"'))),
                    None => (option.to_ascii_lowercase(), None),
                };
                match (k.as_str(), v) {
                    ("cert-authority", None) => cert_authority = true,
                    ("namespaces", Some(v)) => {
                        namespaces = Some(v.split(',').map(str::to_string).collect::<Vec<_>>())
                    }
                    ("valid-after", Some(v)) => valid_after = Some(parse_time(v).map_err(bad)?),
                    ("valid-before", Some(v)) => valid_before = Some(parse_time(v).map_err(bad)?),
                    _ => return Err(bad(format!("unknown option `{option}`"))),
                }
            }
            next = it
                .next()
                .ok_or_else(|| bad("no key after the options".into()))?;
        }
        let blob = it
            .next()
            .ok_or_else(|| bad("no key data after the key type".into()))?;
        if cert_authority || next != "ssh-ed25519" {
            // Certificates and other algorithms cannot sign a kairos ledger: not trusted here.
            continue;
        }
        let key = parse_ssh_public(&format!("{next} {blob}")).map_err(bad)?;
        let mut trusted = TrustedKey::new(key, principals);
        trusted.namespaces = namespaces;
        trusted.valid_after = valid_after;
        trusted.valid_before = valid_before;
        keys.push(trusted);
    }
    if keys.is_empty() {
        return Err(KeyError::Format {
            path: name.to_string(),
            why: "no ssh-ed25519 key in this allowed_signers file".into(),
        });
    }
    Ok(keys)
}

fn is_key_type(field: &str) -> bool {
    field.starts_with("ssh-")
        || field.starts_with("ecdsa-")
        || field.starts_with("sk-")
        || field.starts_with("rsa-")
}

/// Splits on spaces outside double quotes.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    fields.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if !cur.is_empty() {
        fields.push(cur);
    }
    Ok(fields)
}

/// Splits an options field on commas outside double quotes.
fn split_options(field: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in field.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&field[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&field[start..]);
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]` as seconds since 1970. Times are read as UTC (ssh-keygen reads a
/// time without `Z` as local time).
fn parse_time(v: &str) -> Result<i64, String> {
    let digits = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    let bad = || format!("`{v}` is not a time (YYYYMMDD[HHMM[SS]][Z])");
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i64>().ok());
    let (y, m, d) = (num(0..4), num(4..6), num(6..8));
    let (hh, mm, ss) = (
        num(8..10).unwrap_or(0),
        num(10..12).unwrap_or(0),
        num(12..14).unwrap_or(0),
    );
    let (Some(y), Some(m), Some(d)) = (y, m, d) else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// OpenSSH pattern-list matching (`*` and `?` wildcards, `!` negation), as `namespaces=` uses.
fn pattern_list_match(pattern: &str, value: &str) -> bool {
    let mut matched = false;
    for p in pattern.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg.as_bytes(), value.as_bytes()) {
                return false;
            }
        } else if wildcard(p.as_bytes(), value.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn wildcard(p: &[u8], v: &[u8]) -> bool {
    match (p.first(), v.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], v) || (!v.is_empty() && wildcard(p, &v[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &v[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &v[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_formats_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let pem = private_pem(&key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let (_, der) = pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(der.len(), 48);
        assert_eq!(&der[..16], &PKCS8_V1_PREFIX);
        assert_eq!(
            parse_signing_key(&pem, "k").unwrap().to_bytes(),
            key.to_bytes()
        );
        let public = parse_public_keys(&public_pem(&key.verifying_key()), "p").unwrap();
        assert_eq!(public[0].key, key.verifying_key());
        assert_eq!(public[0].keyid, keyid(&key.verifying_key()));
        let ssh = parse_public_keys(&public_ssh(&key.verifying_key(), "me"), "s").unwrap();
        assert_eq!(ssh[0].key, key.verifying_key());
        assert_eq!(ssh[0].name, "me");
    }

    #[test]
    fn allowed_signers_options() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let line = public_ssh(&key.verifying_key(), "c");
        let text = format!(
            "# comment\nalice,bob namespaces=\"ledger@kairos,x\",valid-after=20200101 {line}\n\
             ca@example cert-authority {line}\n"
        );
        let keys = parse_allowed_signers(&text, "a").unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "alice,bob");
        assert!(keys[0].allows("ledger@kairos", 1_700_000_000).is_ok());
        assert!(keys[0].allows("file", 1_700_000_000).is_err());
        assert!(keys[0].allows("ledger@kairos", 0).is_err());
        assert_eq!(parse_time("19700102").unwrap(), 86_400);
        assert_eq!(parse_time("20000301000000Z").unwrap(), 951_868_800);
        assert!(pattern_list_match("ledger@*,!x", "ledger@kairos"));
        assert!(!pattern_list_match("*,!ledger@kairos", "ledger@kairos"));
    }
}
