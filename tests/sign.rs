//! `kairos keygen`, `sign` and `verify`: the rejection matrix, a mutation property, and
//! interoperability with the real `openssl` and `ssh-keygen` on the machine.

use crate::common::{Output, Test, require_program};
use base64ct::{Base64, Encoding};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const FLOW: &str = "version: 1
name: signed
inputs:
  word: { default: hello }
nodes:
  - id: greet
    tool: echo
    with: { message: \"{{ inputs.word }}\" }
  - id: shout
    needs: [greet]
    tool: template
    with: { text: \"{{ nodes.greet.output | upper }}!\" }
  - id: each
    for_each: [a, b]
    tool: template
    with: { text: \"{{ item }}\" }
  - id: done
    join: [shout, each]
";

fn kairos(dir: &Path, args: &[&str]) -> Output {
    Test::new().args(args).run_in(dir)
}

/// The DER inside a PEM file (what `openssl pkey -outform DER` prints).
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Base64::decode_vec(&body).expect("PEM body is base64")
}

/// Runs a tool of the machine (openssl, ssh-keygen) in `dir`, asserting success. Tests that
/// use one first ask [`require_program`].
#[track_caller]
fn tool(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed by these tests (.ci/run installs it): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a tool with `stdin` from a file; returns whether it succeeded.
fn tool_with_stdin(dir: &Path, program: &str, args: &[&str], stdin: &Path) -> bool {
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(std::fs::File::open(dir.join(stdin)).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
        .status
        .success()
}

/// A directory with `wf.yaml`, its ledger `rec.jsonl`, a key pair `ci.*` and, when `sign`,
/// the envelope `rec.jsonl.intoto.json`.
struct Fixture {
    _t: Test,
    dir: PathBuf,
}

impl Fixture {
    fn new(sign: bool) -> Self {
        let t = Test::new().workflow(FLOW);
        let dir = t.path().to_path_buf();
        kairos(&dir, &["run", "wf.yaml", "-q", "--ledger", "rec.jsonl"]).code(0);
        kairos(&dir, &["keygen", "--out", "ci"]).code(0);
        if sign {
            kairos(&dir, &["sign", "rec.jsonl", "--key", "ci.key"]).code(0);
        }
        Self { _t: t, dir }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    fn lines(&self) -> Vec<String> {
        self.read("rec.jsonl").lines().map(str::to_string).collect()
    }

    fn write_lines(&self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        self.write("rec.jsonl", &text);
    }

    fn verify(&self, extra: &[&str]) -> Output {
        let mut args = vec!["verify", "rec.jsonl", "--key", "ci.pub", "--format", "json"];
        args.extend_from_slice(extra);
        kairos(&self.dir, &args)
    }
}

/// The first failed check of a `--format json` report: (check, line, detail).
#[track_caller]
fn first_failure(out: &Output) -> (String, Option<u64>, String) {
    let doc = out.json();
    assert_eq!(doc["verified"], false, "{}", out.stdout);
    let f = &doc["first_failure"];
    (
        f["check"].as_str().unwrap().to_string(),
        f["line"].as_u64(),
        f["detail"].as_str().unwrap().to_string(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The DSSE pre-authentication encoding, rebuilt here independently of kairos.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[test]
fn signed_ledger_verifies() {
    let f = Fixture::new(true);
    let out = f.verify(&["--require-signature"]).code(0);
    let doc = out.json();
    assert_eq!(doc["verified"], true);
    assert_eq!(doc["signed"], true);
    let records = f.lines().len() as u64;
    assert_eq!(doc["records"], records);
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["workflow"], "signed");
    let lines = f.lines();
    assert_eq!(
        doc["chain_head"],
        sha256_hex(lines.last().unwrap().as_bytes())
    );
    for c in doc["checks"].as_array().unwrap() {
        assert_ne!(c["result"], "failed", "{c}");
    }
    // The statement binds what the issue asks for.
    let env: serde_json::Value = serde_json::from_str(&f.read("rec.jsonl.intoto.json")).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    let keyid = env["signatures"][0]["keyid"].as_str().unwrap();
    let statement: serde_json::Value =
        serde_json::from_slice(&Base64::decode_vec(env["payload"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://kairos.dev/ledger/v1");
    assert_eq!(statement["subject"][0]["name"], "rec.jsonl");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        sha256_hex(f.read("rec.jsonl").as_bytes())
    );
    let p = &statement["predicate"];
    assert_eq!(p["records"], records);
    assert_eq!(p["chain_head"], doc["chain_head"]);
    assert_eq!(p["workflow"], "signed");
    assert_eq!(p["workflow_sha256"], sha256_hex(FLOW.as_bytes()));
    assert_eq!(p["status"], "succeeded");
    assert_eq!(p["format"], "kairos.ledger/1");
    // Key id: SHA-256 of the DER SubjectPublicKeyInfo (`openssl_reads_a_kairos_key` checks
    // that openssl reads the same DER).
    assert_eq!(keyid, sha256_hex(&pem_der(&f.read("ci.pub"))));
    // The table for people.
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "ci.pub"])
        .code(0)
        .stdout_contains("verified rec.jsonl")
        .stdout_contains("signed by ci.pub (envelope)");
}

#[test]
fn workflow_digest_is_checked() {
    let f = Fixture::new(true);
    f.verify(&["--workflow", "wf.yaml"]).code(0);
    f.write("other.yaml", &FLOW.replace("upper", "lower"));
    let out = f.verify(&["--workflow", "other.yaml"]).code(1);
    let (check, line, detail) = first_failure(&out);
    assert_eq!(check, "workflow");
    assert_eq!(line, Some(1));
    assert!(detail.contains("other.yaml has sha256"), "{detail}");
    // Without a signature too: the ledger's own RunStart is compared.
    let u = Fixture::new(false);
    u.write("other.yaml", "version: 1\n");
    let out = u.verify(&["--workflow", "other.yaml"]).code(1);
    assert_eq!(first_failure(&out).0, "workflow");
}

#[test]
fn unsigned_ledger_checks_the_chain_and_says_so() {
    let f = Fixture::new(false);
    kairos(&f.dir, &["verify", "rec.jsonl"])
        .code(0)
        .stdout_contains("unsigned")
        .stdout_contains("note: the ledger is unsigned");
    // Trusted keys but no signature: still a pass, with a warning...
    f.verify(&[])
        .code(0)
        .stdout_contains("add --require-signature");
    // ... unless a signature is required.
    let out = f.verify(&["--require-signature"]).code(1);
    assert_eq!(first_failure(&out).0, "signature");
    // An unsigned ledger with a broken chain still fails.
    let mut lines = f.lines();
    lines[1] = lines[1].replace("\"clock\":", "\"clock\": ");
    f.write_lines(&lines);
    let out = kairos(&f.dir, &["verify", "rec.jsonl", "--format", "json"]).code(1);
    let (check, line, _) = first_failure(&out);
    assert_eq!((check.as_str(), line), ("chain", Some(3)));
}

#[test]
fn unusable_input_is_exit_2() {
    let f = Fixture::new(true);
    // --require-signature without a trusted key.
    kairos(&f.dir, &["verify", "rec.jsonl", "--require-signature"])
        .code(2)
        .stderr_contains("--require-signature needs a trusted key");
    // A missing ledger, a missing or unparsable key.
    kairos(&f.dir, &["verify", "nope.jsonl", "--key", "ci.pub"])
        .code(2)
        .stderr_contains("nope.jsonl");
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "nope.pub"]).code(2);
    f.write("bad.pub", "not a key\n");
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "bad.pub"])
        .code(2)
        .stderr_contains("bad.pub:1");
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "ci.key"])
        .code(2)
        .stderr_contains("this is a private key");
    // An envelope that is not JSON.
    f.write("rec.jsonl.intoto.json", "{\"payloadType\": ");
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "ci.pub"])
        .code(2)
        .stderr_contains("not a DSSE envelope");
    // An SSH signature that is not one.
    std::fs::remove_file(f.dir.join("rec.jsonl.intoto.json")).unwrap();
    f.write(
        "rec.jsonl.sig",
        "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
    );
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "ci.pub"])
        .code(2)
        .stderr_contains("rec.jsonl.sig");
    std::fs::remove_file(f.dir.join("rec.jsonl.sig")).unwrap();
    // A named envelope that does not exist.
    kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--key",
            "ci.pub",
            "--envelope",
            "x.json",
        ],
    )
    .code(2);
}

// ---- The rejection matrix ----

#[test]
fn rejects_a_ledger_truncated_by_a_line() {
    let f = Fixture::new(true);
    let mut lines = f.lines();
    let n = lines.len() as u64;
    lines.pop();
    f.write_lines(&lines);
    let out = f.verify(&[]).code(1);
    let (check, line, detail) = first_failure(&out);
    assert_eq!(check, "subject");
    assert_eq!(line, Some(n));
    assert!(detail.contains("truncated"), "{detail}");
    out.stderr_contains(&format!("rec.jsonl:{n}: subject"));
}

/// A cut last line is a damaged ledger: a failed verification (exit 1) naming the line, with
/// or without a key, not unusable input.
#[test]
fn rejects_a_ledger_truncated_by_a_byte() {
    let f = Fixture::new(true);
    let text = f.read("rec.jsonl");
    let n = f.lines().len() as u64;
    f.write("rec.jsonl", &text[..text.len() - 1]);
    let out = f.verify(&[]).code(1);
    let (check, line, detail) = first_failure(&out);
    assert_eq!((check.as_str(), line), ("format", Some(n)));
    assert!(detail.contains("incomplete"), "{detail}");
    out.stderr_contains(&format!("rec.jsonl:{n}: the last line is incomplete"));
    kairos(&f.dir, &["verify", "rec.jsonl"])
        .code(1)
        .stdout_contains(&format!("verification FAILED: format (line {n})"));
}

/// However a ledger is damaged, verifying it fails with exit 1 and names the first bad line.
#[test]
fn a_damaged_ledger_is_a_failed_verification_naming_the_line() {
    let f = Fixture::new(false);
    let lines = f.lines();
    let first = format!("{}\n", lines[0]);
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("not JSON", format!("{first}{{oops\n").into_bytes(), 2),
        ("not UTF-8", [first.as_bytes(), b"\xff\n"].concat(), 2),
        ("empty", Vec::new(), 1),
        ("cut inside the first line", lines[0][..20].into(), 1),
        ("not a ledger", b"{\"seq\":0,\"hello\":1}\n".to_vec(), 1),
    ];
    for (what, bytes, line) in cases {
        std::fs::write(f.dir.join("rec.jsonl"), bytes).unwrap();
        let out = kairos(&f.dir, &["verify", "rec.jsonl", "--format", "json"]).code(1);
        let (_, at, _) = first_failure(&out);
        assert_eq!(at, Some(line), "{what}");
    }
}

#[test]
fn rejects_reordered_lines() {
    let f = Fixture::new(true);
    let mut lines = f.lines();
    lines.swap(2, 3);
    f.write_lines(&lines);
    let out = f.verify(&[]).code(1);
    let (check, line, _) = first_failure(&out);
    assert_eq!((check.as_str(), line), ("seq", Some(3)));
    // Reordered and renumbered and rechained: the chain holds, the signature does not.
    let f = Fixture::new(true);
    let mut lines = f.lines();
    lines.swap(2, 3);
    let renumbered: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let rest = l.split_once(",\"prev\"").unwrap().1;
            format!("{{\"seq\":{i},\"prev\"{rest}")
        })
        .collect();
    f.write_lines(&rechain(&renumbered));
    let out = f.verify(&[]).code(1);
    let (check, _, _) = first_failure(&out);
    assert_eq!(check, "subject");
}

#[test]
fn rejects_an_edited_record_at_each_position() {
    let f = Fixture::new(true);
    let original = f.lines();
    let n = original.len();
    for i in 0..n {
        // Still valid JSON with the same fields: only the bytes (and so the hash) change.
        let mut lines = original.clone();
        lines[i] = lines[i].replacen("\"clock\":", "\"clock\": ", 1);
        assert_ne!(lines[i], original[i]);
        f.write_lines(&lines);
        let out = f.verify(&[]).code(1);
        let (check, line, _) = first_failure(&out);
        if i + 1 < n {
            // The next line's `prev` no longer matches.
            assert_eq!(
                (check.as_str(), line),
                ("chain", Some(i as u64 + 2)),
                "line {i}"
            );
        } else {
            // The last line has no successor: the signed chain head catches it.
            assert_eq!(
                (check.as_str(), line),
                ("subject", Some(n as u64)),
                "line {i}"
            );
        }
        // The same edit with the chain rewritten: the signature catches it.
        f.write_lines(&rechain(&lines));
        let out = f.verify(&[]).code(1);
        let (check, line, detail) = first_failure(&out);
        assert_eq!(
            (check.as_str(), line),
            ("subject", Some(n as u64)),
            "line {i}"
        );
        assert!(detail.contains("chain rewritten"), "{detail}");
    }
    // An edit of the content (not only the spacing), rechained.
    let edited: Vec<String> = original
        .iter()
        .map(|l| l.replace("HELLO!", "HACKED!"))
        .collect();
    assert_ne!(edited, original);
    f.write_lines(&rechain(&edited));
    f.verify(&[]).code(1);
}

#[test]
fn rejects_an_appended_line() {
    let f = Fixture::new(true);
    let mut lines = f.lines();
    let n = lines.len();
    let head = sha256_hex(lines[n - 1].as_bytes());
    lines.push(format!(
        "{{\"seq\":{n},\"prev\":\"{head}\",\"event\":\"End\",\"clock\":99,\"node\":\"extra\",\"status\":\"succeeded\"}}"
    ));
    f.write_lines(&lines);
    let out = f.verify(&[]).code(1);
    let (check, line, detail) = first_failure(&out);
    assert_eq!((check.as_str(), line), ("subject", Some(n as u64 + 1)));
    assert!(detail.contains("appended"), "{detail}");
}

#[test]
fn rejects_a_duplicated_line() {
    let f = Fixture::new(true);
    let mut lines = f.lines();
    let dup = lines[2].clone();
    lines.insert(3, dup);
    f.write_lines(&lines);
    let out = f.verify(&[]).code(1);
    let (check, line, _) = first_failure(&out);
    assert_eq!((check.as_str(), line), ("seq", Some(4)));
    // The last line duplicated.
    let f = Fixture::new(true);
    let mut lines = f.lines();
    lines.push(lines.last().unwrap().clone());
    f.write_lines(&lines);
    f.verify(&[]).code(1);
}

#[test]
fn rejects_a_wrong_key() {
    let f = Fixture::new(true);
    kairos(&f.dir, &["keygen", "--out", "other"]).code(0);
    let out = kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--key",
            "other.pub",
            "--format",
            "json",
        ],
    )
    .code(1);
    let (check, _, detail) = first_failure(&out);
    assert_eq!(check, "signature");
    assert!(detail.contains("not made by a trusted key"), "{detail}");
}

#[test]
fn rejects_the_envelope_of_another_ledger() {
    let f = Fixture::new(true);
    kairos(
        &f.dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "other.jsonl",
            "--input",
            "word=bye",
        ],
    )
    .code(0);
    kairos(&f.dir, &["sign", "other.jsonl", "--key", "ci.key"]).code(0);
    f.verify(&["--envelope", "other.jsonl.intoto.json"]).code(1);
    std::fs::copy(
        f.dir.join("other.jsonl.intoto.json"),
        f.dir.join("rec.jsonl.intoto.json"),
    )
    .unwrap();
    let out = f.verify(&[]).code(1);
    let (check, _, detail) = first_failure(&out);
    assert_eq!(check, "subject");
    assert!(
        detail.contains("the signed ledger `other.jsonl`"),
        "{detail}"
    );
}

/// Without `--key` nothing can be said about the signatures, but an envelope that is about
/// other contents (another ledger's, or one signed before the ledger was edited or cut) is not
/// "verified": the envelope does not match.
#[test]
fn without_a_key_an_envelope_that_does_not_match_fails() {
    let f = Fixture::new(true);
    kairos(&f.dir, &["verify", "rec.jsonl"])
        .code(0)
        .stdout_contains("verified rec.jsonl")
        .stdout_contains("signatures not checked");
    let no_key = |f: &Fixture| {
        let out = kairos(&f.dir, &["verify", "rec.jsonl"]).code(1);
        assert!(!out.stdout.contains("verified rec.jsonl"), "{}", out.stdout);
        out.stdout_contains("the envelope does not match the ledger");
        kairos(&f.dir, &["verify", "rec.jsonl", "--format", "json"])
            .code(1)
            .json()["first_failure"]
            .clone()
    };
    // Another ledger's envelope.
    let original = f.read("rec.jsonl");
    kairos(
        &f.dir,
        &[
            "run",
            "wf.yaml",
            "-q",
            "--ledger",
            "other.jsonl",
            "--input",
            "word=bye",
        ],
    )
    .code(0);
    kairos(&f.dir, &["sign", "other.jsonl", "--key", "ci.key"]).code(0);
    let own = f.read("rec.jsonl.intoto.json");
    f.write("rec.jsonl.intoto.json", &f.read("other.jsonl.intoto.json"));
    let failure = no_key(&f);
    assert_eq!(failure["check"], "subject");
    f.write("rec.jsonl.intoto.json", &own);
    // An edit after signing, the chain rewritten.
    f.write(
        "rec.jsonl",
        &crate::common::rechain(&original.replace("HELLO!", "HELLO?")),
    );
    let failure = no_key(&f);
    assert_eq!(failure["check"], "subject");
    assert!(failure["line"].is_u64(), "{failure}");
    // The last line cut off after signing.
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let n = lines.len() as u64;
    lines.pop();
    f.write_lines(&lines);
    let failure = no_key(&f);
    assert_eq!(failure["line"], n);
    assert!(
        failure["detail"].as_str().unwrap().contains("truncated"),
        "{failure}"
    );
    // An envelope whose payload is not a kairos statement.
    f.write("rec.jsonl", &original);
    let mut env: serde_json::Value = serde_json::from_str(&own).unwrap();
    env["payload"] = Base64::encode_string(b"{}").into();
    f.write("rec.jsonl.intoto.json", &env.to_string());
    assert_eq!(no_key(&f)["check"], "statement");
}

#[test]
fn rejects_a_tampered_payload() {
    let f = Fixture::new(true);
    let mut env: serde_json::Value =
        serde_json::from_str(&f.read("rec.jsonl.intoto.json")).unwrap();
    let payload = Base64::decode_vec(env["payload"].as_str().unwrap()).unwrap();
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    statement["predicate"]["status"] = "failed".into();
    env["payload"] = Base64::encode_string(&serde_json::to_vec(&statement).unwrap()).into();
    f.write("rec.jsonl.intoto.json", &env.to_string());
    let out = f.verify(&[]).code(1);
    let (check, _, detail) = first_failure(&out);
    assert_eq!(check, "signature");
    assert!(detail.contains("does not verify"), "{detail}");
    // The statement of an unverified payload is never looked at.
    let doc = out.json();
    let statement_row = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "statement")
        .unwrap()
        .clone();
    assert_eq!(statement_row["result"], "skipped");
    // A changed payload type.
    let f = Fixture::new(true);
    let text = f
        .read("rec.jsonl.intoto.json")
        .replace("application/vnd.in-toto+json", "application/vnd.other+json");
    f.write("rec.jsonl.intoto.json", &text);
    assert_eq!(first_failure(&f.verify(&[]).code(1)).0, "envelope");
}

#[test]
fn rejects_a_validly_signed_ledger_with_a_broken_chain() {
    let f = Fixture::new(true);
    let mut lines = f.lines();
    lines[2] = lines[2].replacen("\"clock\":", "\"clock\": ", 1);
    f.write_lines(&lines);
    // kairos refuses to sign it...
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "ci.key"])
        .code(1)
        .stderr_contains("refusing to sign");
    // ... so sign it here: a statement that matches the broken file exactly.
    let text = f.read("rec.jsonl");
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "rec.jsonl", "digest": {"sha256": sha256_hex(text.as_bytes())}}],
        "predicateType": "https://kairos.dev/ledger/v1",
        "predicate": {
            "format": "kairos.ledger/1",
            "records": lines.len(),
            "chain_head": sha256_hex(lines.last().unwrap().as_bytes()),
            "workflow": "signed",
            "workflow_sha256": sha256_hex(FLOW.as_bytes()),
            "status": "succeeded",
        },
    });
    let payload = serde_json::to_vec(&statement).unwrap();
    let key = {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&f.read("ci.key")).unwrap()
    };
    let sig = ed25519_dalek::Signer::sign(&key, &pae("application/vnd.in-toto+json", &payload))
        .to_bytes();
    let keyid = sha256_hex(&pem_der(&f.read("ci.pub")));
    let env = serde_json::json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": Base64::encode_string(&payload),
        "signatures": [{"keyid": keyid, "sig": Base64::encode_string(&sig)}],
    });
    f.write("rec.jsonl.intoto.json", &env.to_string());
    let out = f.verify(&[]).code(1);
    let (check, line, _) = first_failure(&out);
    assert_eq!((check.as_str(), line), ("chain", Some(4)));
    // The signature itself is valid, and the report says so.
    let doc = out.json();
    let row = |name: &str| {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(row("signature"), "ok");
    assert_eq!(row("subject"), "ok");
    out.stderr_contains("broken chain");
}

// ---- Mutations ----

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Drop(usize),
    Swap(usize, usize),
    Duplicate(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(Mutation::Drop),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        any::<usize>().prop_map(Mutation::Duplicate),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(m: &Mutation, text: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let n = lines.len();
    match *m {
        Mutation::Flip { at, xor } => {
            let mut out = text.to_vec();
            out[at % text.len()] ^= xor;
            return out;
        }
        Mutation::Drop(i) => {
            lines.remove(i % n);
        }
        Mutation::Swap(a, b) => {
            let a = a % n;
            let b = (a + 1 + b % (n - 1)) % n;
            lines.swap(a, b);
        }
        Mutation::Duplicate(i) => {
            let i = i % n;
            lines.insert(i, lines[i]);
        }
        Mutation::Truncate(len) => return text[..len % text.len()].to_vec(),
    }
    lines.concat()
}

#[test]
fn any_single_mutation_of_a_signed_ledger_fails_verification() {
    let f = Fixture::new(true);
    let original = std::fs::read(f.dir.join("rec.jsonl")).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let result = runner.run(&mutation(), |m| {
        let mutated = apply(&m, &original);
        prop_assert_ne!(&mutated, &original);
        std::fs::write(f.dir.join("rec.jsonl"), &mutated).unwrap();
        let out = kairos(
            &f.dir,
            &["verify", "rec.jsonl", "--key", "ci.pub", "--format", "json"],
        );
        prop_assert!(
            out.code == 1,
            "{m:?}: exit {}, not a failed verification:\n{}{}",
            out.code,
            out.stdout,
            out.stderr
        );
        let doc = out.json();
        prop_assert!(
            doc["first_failure"]["line"].is_u64(),
            "{m:?}: no line named: {}",
            doc["first_failure"]
        );
        Ok(())
    });
    std::fs::write(f.dir.join("rec.jsonl"), &original).unwrap();
    if let Err(e) = result {
        panic!("{e}");
    }
    f.verify(&[]).code(0);
}

// ---- Signing ----

#[test]
fn rotation_adds_signatures() {
    let f = Fixture::new(true);
    kairos(&f.dir, &["keygen", "--out", "next"]).code(0);
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "next.key"])
        .code(0)
        .stdout_contains("(2 signatures)");
    // Signing again with a key already there replaces its signature.
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "ci.key"])
        .code(0)
        .stdout_contains("(2 signatures; this key's signature was replaced)");
    let env: serde_json::Value = serde_json::from_str(&f.read("rec.jsonl.intoto.json")).unwrap();
    assert_eq!(env["signatures"].as_array().unwrap().len(), 2);
    f.verify(&[]).code(0);
    kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--key",
            "next.pub",
            "--require-signature",
        ],
    )
    .code(0)
    .stdout_contains("signed by next.pub");
    // A ledger that changed after it was signed is not re-signed into the old envelope.
    let mut lines = f.lines();
    lines.pop();
    f.write_lines(&lines);
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "ci.key"])
        .code(2)
        .stderr_contains("remove it to sign anew");
}

#[test]
fn signing_key_from_the_environment() {
    let f = Fixture::new(false);
    let run = |value: &str| {
        assert_cmd::Command::cargo_bin("kairos")
            .unwrap()
            .args(["sign", "rec.jsonl"])
            .current_dir(&f.dir)
            .env("KAIROS_SIGNING_KEY", value)
            .output()
            .unwrap()
    };
    assert!(run("ci.key").status.success());
    f.verify(&["--require-signature"]).code(0);
    // The PEM text itself, as a CI secret holds it; never echoed.
    std::fs::remove_file(f.dir.join("rec.jsonl.intoto.json")).unwrap();
    let pem = f.read("ci.key");
    let out = run(&pem);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("PRIVATE KEY"));
    f.verify(&["--require-signature"]).code(0);
}

#[test]
fn keygen_refuses_to_overwrite_and_protects_the_key() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(false);
    let before = f.read("ci.key");
    kairos(&f.dir, &["keygen", "--out", "ci"])
        .code(2)
        .stderr_contains("already exists");
    assert_eq!(f.read("ci.key"), before);
    let mode = std::fs::metadata(f.dir.join("ci.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Only the .pub.ssh exists: still refused, nothing written.
    std::fs::write(f.dir.join("x.pub.ssh"), "taken").unwrap();
    kairos(&f.dir, &["keygen", "--out", "x"]).code(2);
    assert!(!f.dir.join("x.key").exists());
    // PKCS#8 v1: 48 bytes of DER.
    assert_eq!(pem_der(&f.read("ci.key")).len(), 48);
    let keyid = kairos(&f.dir, &["keygen", "--out", "j", "--format", "json"])
        .code(0)
        .json()["keyid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(keyid.len(), 64);
}

#[test]
fn keys_of_other_algorithms_made_by_openssl_are_refused_clearly() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new(false);
    tool(
        &f.dir,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "rsa",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "rsa.key",
        ],
    );
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "rsa.key"])
        .code(2)
        .stderr_contains("the key is RSA; kairos signs with Ed25519 keys only");
    tool(
        &f.dir,
        "openssl",
        &["genpkey", "-algorithm", "x25519", "-out", "x.key"],
    );
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "x.key"])
        .code(2)
        .stderr_contains("the key is X25519");
    assert!(!f.dir.join("rec.jsonl.intoto.json").exists());
}

#[test]
fn other_and_encrypted_ssh_keygen_keys_are_refused_clearly() {
    if !require_program("ssh-keygen") {
        return;
    }
    let f = Fixture::new(false);
    tool(
        &f.dir,
        "ssh-keygen",
        &["-q", "-t", "ecdsa", "-N", "", "-f", "ec"],
    );
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "ec"])
        .code(2)
        .stderr_contains("ecdsa-sha2-nistp256");
    kairos(&f.dir, &["verify", "rec.jsonl", "--key", "ec.pub"])
        .code(2)
        .stderr_contains("Ed25519 only");
    tool(
        &f.dir,
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "secret", "-f", "enc"],
    );
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "enc"])
        .code(2)
        .stderr_contains("encrypted");
    assert!(!f.dir.join("rec.jsonl.intoto.json").exists());
}

#[test]
fn a_public_key_is_refused_as_a_signing_key() {
    let f = Fixture::new(false);
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "ci.pub"])
        .code(2)
        .stderr_contains("this is a public key");
    assert!(!f.dir.join("rec.jsonl.intoto.json").exists());
}

// ---- Interoperability with openssl and ssh-keygen ----

#[test]
fn openssl_reads_a_kairos_key() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new(false);
    tool(&f.dir, "openssl", &["pkey", "-in", "ci.key", "-noout"]);
    let public = tool(&f.dir, "openssl", &["pkey", "-in", "ci.key", "-pubout"]).stdout;
    assert_eq!(String::from_utf8(public).unwrap(), f.read("ci.pub"));
    let text = tool(
        &f.dir,
        "openssl",
        &["pkey", "-in", "ci.key", "-text", "-noout"],
    )
    .stdout;
    assert!(String::from_utf8_lossy(&text).contains("ED25519 Private-Key"));
    // The key id is the SHA-256 of the DER SubjectPublicKeyInfo, as openssl writes it.
    let der = tool(
        &f.dir,
        "openssl",
        &["pkey", "-pubin", "-in", "ci.pub", "-outform", "DER"],
    )
    .stdout;
    let signed = kairos(
        &f.dir,
        &["sign", "rec.jsonl", "--key", "ci.key", "--format", "json"],
    )
    .code(0);
    assert_eq!(signed.json()["keyid"], sha256_hex(&der));
}

#[test]
fn ssh_keygen_reads_a_kairos_public_key() {
    if !require_program("ssh-keygen") {
        return;
    }
    let f = Fixture::new(false);
    let fp = tool(&f.dir, "ssh-keygen", &["-l", "-f", "ci.pub.ssh"]).stdout;
    assert!(String::from_utf8_lossy(&fp).contains("(ED25519)"));
}

#[test]
fn an_openssl_key_signs() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new(false);
    tool(
        &f.dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", "o.key"],
    );
    tool(
        &f.dir,
        "openssl",
        &["pkey", "-in", "o.key", "-pubout", "-out", "o.pub"],
    );
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "o.key"]).code(0);
    kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--key",
            "o.pub",
            "--require-signature",
        ],
    )
    .code(0);
    f.verify(&[]).code(1);
}

#[test]
fn an_ssh_keygen_key_signs() {
    if !require_program("ssh-keygen") {
        return;
    }
    let f = Fixture::new(false);
    tool(
        &f.dir,
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "dev@example",
            "-f",
            "s",
        ],
    );
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "s"]).code(0);
    kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--key",
            "s.pub",
            "--require-signature",
        ],
    )
    .code(0)
    .stdout_contains("signed by dev@example");
    // The same key through an allowed_signers file.
    f.write(
        "allowed_signers",
        &format!("dev@example {}", f.read("s.pub")),
    );
    kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--allowed-signers",
            "allowed_signers",
            "--require-signature",
        ],
    )
    .code(0);
}

#[test]
fn openssl_verifies_the_envelope_signature() {
    if !require_program("openssl") {
        return;
    }
    let f = Fixture::new(true);
    let env: serde_json::Value = serde_json::from_str(&f.read("rec.jsonl.intoto.json")).unwrap();
    let payload = Base64::decode_vec(env["payload"].as_str().unwrap()).unwrap();
    let sig = Base64::decode_vec(env["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    std::fs::write(
        f.dir.join("pae.bin"),
        pae(env["payloadType"].as_str().unwrap(), &payload),
    )
    .unwrap();
    std::fs::write(f.dir.join("sig.bin"), &sig).unwrap();
    let out = tool(
        &f.dir,
        "openssl",
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", "ci.pub", "-rawin", "-in", "pae.bin",
            "-sigfile", "sig.bin",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));
    // The subject digest is what sha256sum says.
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        sha256_hex(f.read("rec.jsonl").as_bytes())
    );
}

#[test]
fn ssh_keygen_verifies_kairos_sign_ssh() {
    if !require_program("ssh-keygen") {
        return;
    }
    let f = Fixture::new(false);
    kairos(&f.dir, &["sign", "rec.jsonl", "--key", "ci.key", "--ssh"])
        .code(0)
        .stdout_contains("rec.jsonl.sig");
    f.write(
        "allowed_signers",
        &format!("ci@example {}", f.read("ci.pub.ssh")),
    );
    let verify = |f: &Fixture| {
        tool_with_stdin(
            &f.dir,
            "ssh-keygen",
            &[
                "-Y",
                "verify",
                "-f",
                "allowed_signers",
                "-I",
                "ci@example",
                "-n",
                "ledger@kairos",
                "-s",
                "rec.jsonl.sig",
            ],
            Path::new("rec.jsonl"),
        )
    };
    assert!(
        verify(&f),
        "ssh-keygen -Y verify rejected kairos sign --ssh"
    );
    // kairos checks it too (with the envelope).
    kairos(
        &f.dir,
        &[
            "verify",
            "rec.jsonl",
            "--allowed-signers",
            "allowed_signers",
            "--require-signature",
        ],
    )
    .code(0)
    .stdout_contains("signed by ci@example (envelope, SSH signature)");
    // A changed ledger fails ssh-keygen as well.
    let mut lines = f.lines();
    lines.pop();
    f.write_lines(&lines);
    assert!(!verify(&f), "ssh-keygen accepted a truncated ledger");
}

#[test]
fn kairos_accepts_an_ssh_keygen_signature() {
    if !require_program("ssh-keygen") {
        return;
    }
    let f = Fixture::new(false);
    tool(
        &f.dir,
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f", "s"],
    );
    tool(
        &f.dir,
        "ssh-keygen",
        &["-Y", "sign", "-f", "s", "-n", "ledger@kairos", "rec.jsonl"],
    );
    assert!(f.dir.join("rec.jsonl.sig").exists());
    f.write(
        "allowed_signers",
        &format!(
            "dev@example namespaces=\"ledger@kairos\" {}",
            f.read("s.pub")
        ),
    );
    let args = [
        "verify",
        "rec.jsonl",
        "--allowed-signers",
        "allowed_signers",
        "--require-signature",
        "--format",
        "json",
    ];
    let out = kairos(&f.dir, &args).code(0);
    let doc = out.json();
    assert_eq!(doc["signed"], true);
    assert_eq!(doc["signers"][0]["name"], "dev@example");
    assert_eq!(doc["signers"][0]["signature"], "sshsig");
    // A key whose allowed_signers line excludes the namespace is not trusted.
    f.write(
        "allowed_signers",
        &format!("dev@example namespaces=\"git\" {}", f.read("s.pub")),
    );
    let out = kairos(&f.dir, &args).code(1);
    assert_eq!(first_failure(&out).0, "ssh signature");
    // A signature in another namespace is refused.
    f.write(
        "allowed_signers",
        &format!("dev@example {}", f.read("s.pub")),
    );
    std::fs::remove_file(f.dir.join("rec.jsonl.sig")).unwrap();
    tool(
        &f.dir,
        "ssh-keygen",
        &["-Y", "sign", "-f", "s", "-n", "file", "rec.jsonl"],
    );
    let out = kairos(&f.dir, &args).code(1);
    let (check, _, detail) = first_failure(&out);
    assert_eq!(check, "ssh signature");
    assert!(detail.contains("namespace `file`"), "{detail}");
    // A changed ledger fails.
    std::fs::remove_file(f.dir.join("rec.jsonl.sig")).unwrap();
    tool(
        &f.dir,
        "ssh-keygen",
        &["-Y", "sign", "-f", "s", "-n", "ledger@kairos", "rec.jsonl"],
    );
    kairos(&f.dir, &args).code(0);
    let text = f.read("rec.jsonl").replace("HELLO!", "HELLO?");
    f.write("rec.jsonl", &text);
    kairos(&f.dir, &args).code(1);
}

/// [`crate::common::rechain`] over lines.
fn rechain(lines: &[String]) -> Vec<String> {
    crate::common::rechain(&(lines.join("\n") + "\n"))
        .lines()
        .map(str::to_string)
        .collect()
}
