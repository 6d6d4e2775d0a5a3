//! Redaction (`docs/policy.md`): `redact` patterns and the values of `secrets` environment variables are
//! replaced before anything reaches the ledger, the terminal or another node.
//!
//! Everything to find is compiled into one regex (the patterns, and each secret's literal,
//! JSON-escaped, URL-encoded and base64 forms), so the cost grows with the text, not with the
//! number of patterns. A secret's replacement names the variable (`[REDACTED:NAME]`), so the
//! same secret always gives the same placeholder and diffs still line up; a pattern's matches
//! become `[REDACTED]`.

use regex::Regex;

/// A placeholder redaction writes (`[REDACTED]`, `[REDACTED:NAME]`).
const PLACEHOLDER: &str = r"\[REDACTED(?::[A-Za-z0-9_]+)?\]";

/// The compiled size one pass of redaction may take (the `regex` crate's default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Secrets up to this many bytes are masked in every escaped form and in wrapped base64; a
/// longer one (a key file) as it is, JSON-escaped and in unwrapped base64 (`docs/policy.md`).
const MAX_ESCAPED_SECRET: usize = 1024;

/// Values shorter than this are not treated as secrets: masking every `a` helps nobody.
const MIN_SECRET_LEN: usize = 4;

/// Why the redaction a policy asks for cannot be built. A run must not go on without it: its
/// secrets would reach the ledger in clear.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("the redaction this policy asks for cannot be built: {reason}")]
#[diagnostic(
    code(kairos::redaction_unbuildable),
    help("use fewer or simpler `redact` patterns (together they compile into one regex)")
)]
pub struct RedactError {
    pub reason: String,
}

pub struct Redactor {
    /// Secrets first, then patterns: a pattern that matches only a prefix of a secret (or
    /// starts before it and ends inside it) cannot leave the rest of the secret in clear.
    passes: Vec<Pass>,
}

/// One regex and, per capture group after the placeholder's, its replacement.
struct Pass {
    regex: Regex,
    replacements: Vec<String>,
}

impl Redactor {
    /// Builds the redactor; `secrets` are environment variable names, read now (a variable
    /// that is not set has nothing to mask).
    pub fn new(patterns: &[String], secrets: &[String]) -> Result<Self, RedactError> {
        let values: Vec<(String, String)> = secrets
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .collect();
        Self::with_values(patterns, &values)
    }

    /// Builds the redactor from secret (name, value) pairs.
    pub fn with_values(
        patterns: &[String],
        secrets: &[(String, String)],
    ) -> Result<Self, RedactError> {
        // (length the form stands for, regex, replacement)
        let mut forms: Vec<(usize, String, String)> = Vec::new();
        for (name, value) in secrets {
            // A secret read from a file or a mount usually ends with a newline, and tools trim
            // what they output (a shell call's `output` is its trimmed stdout): the trimmed
            // value is masked too, in every form.
            let mut bases = vec![value.as_str()];
            if value.trim() != value {
                bases.push(value.trim());
            }
            for base in bases.into_iter().filter(|b| b.len() >= MIN_SECRET_LEN) {
                let replacement = format!("[REDACTED:{name}]");
                // Every escaped form costs regex states per character: a very long secret (a
                // key file) is masked in its plain forms only.
                let full = base.len() <= MAX_ESCAPED_SECRET;
                let escaped = if full {
                    escaped_forms(base)
                } else {
                    let json = serde_json::to_string(base).unwrap_or_default();
                    [base.to_string(), json[1..json.len() - 1].to_string()]
                        .iter()
                        .map(|f| regex::escape(f))
                        .collect::<Vec<_>>()
                        .join("|")
                };
                forms.push((base.len(), escaped, replacement.clone()));
                for core in base64_forms(base.as_bytes()) {
                    if core.len() >= MIN_SECRET_LEN {
                        let form = if full {
                            wrapped(&core)
                        } else {
                            regex::escape(&core)
                        };
                        forms.push((core.len(), form, replacement.clone()));
                    }
                }
            }
        }
        // Longest first: the alternation takes the first form that matches at a place, so a
        // longer secret wins over a shorter one inside it, and the untrimmed value over the
        // trimmed one.
        forms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        forms.dedup_by(|a, b| a.1 == b.1);
        let mut passes = Vec::new();
        if !forms.is_empty() {
            let (alternatives, replacements) = forms.into_iter().map(|(_, f, r)| (f, r)).unzip();
            passes.push(Pass::build(alternatives, replacements)?);
        }
        if !patterns.is_empty() {
            passes.push(Pass::build(
                patterns.iter().map(|p| format!("(?:{p})")).collect(),
                vec!["[REDACTED]".to_string(); patterns.len()],
            )?);
        }
        Ok(Self { passes })
    }

    pub fn is_active(&self) -> bool {
        !self.passes.is_empty()
    }

    /// Replaces what must not be seen; returns the new text and the number of replacements.
    pub fn redact<'t>(&self, text: &'t str) -> (std::borrow::Cow<'t, str>, usize) {
        let mut out = std::borrow::Cow::Borrowed(text);
        let mut count = 0;
        for pass in &self.passes {
            let (new, n) = pass.redact(&out);
            if n > 0 {
                out = std::borrow::Cow::Owned(new.into_owned());
                count += n;
            }
        }
        (out, count)
    }

    /// Whether `text` holds anything to replace.
    pub fn finds(&self, text: &str) -> bool {
        self.passes.iter().any(|p| p.finds(text))
    }

    /// Redacts every string inside a JSON value in place; returns the number of replacements.
    pub fn redact_json(&self, value: &mut serde_json::Value) -> usize {
        if !self.is_active() {
            return 0;
        }
        match value {
            serde_json::Value::String(s) => {
                let (new, n) = self.redact(s);
                if n > 0 {
                    *s = new.into_owned();
                }
                n
            }
            serde_json::Value::Array(items) => items.iter_mut().map(|v| self.redact_json(v)).sum(),
            serde_json::Value::Object(map) => map.values_mut().map(|v| self.redact_json(v)).sum(),
            _ => 0,
        }
    }
}

impl Pass {
    /// Each alternative is its own capture group, so a match tells which replacement applies.
    /// The first group is a placeholder already written, kept as it is and not counted: text
    /// redacted once (and counted) passes the ledger's choke point unchanged, and the
    /// patterns' pass does not rewrite the secrets' placeholders.
    fn build(alternatives: Vec<String>, replacements: Vec<String>) -> Result<Self, RedactError> {
        let pattern = std::iter::once(PLACEHOLDER.to_string())
            .chain(alternatives)
            .map(|a| format!("({a})"))
            .collect::<Vec<_>>()
            .join("|");
        // A larger lazy-DFA cache keeps the single pass fast when there are many patterns.
        // Redaction that cannot be built refuses the run: going on without it would write every
        // secret in clear.
        let regex = regex::RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| RedactError {
                reason: e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            })?;
        Ok(Self {
            regex,
            replacements,
        })
    }

    fn redact<'t>(&self, text: &'t str) -> (std::borrow::Cow<'t, str>, usize) {
        let mut count = 0;
        let out = self.regex.replace_all(text, |caps: &regex::Captures<'_>| {
            let group = (1..caps.len())
                .find(|&g| caps.get(g).is_some())
                .unwrap_or(2);
            if group == 1 {
                return caps[0].to_string();
            }
            count += 1;
            self.replacements
                .get(group - 2)
                .cloned()
                .unwrap_or_else(|| "[REDACTED]".into())
        });
        if count == 0 {
            // Only placeholders matched: the text is unchanged.
            return (text.into(), 0);
        }
        (out, count)
    }

    fn finds(&self, text: &str) -> bool {
        self.regex
            .captures_iter(text)
            .any(|caps| caps.get(1).is_none())
    }
}

/// The ledger's choke point (`ledger/encode.rs`): every text field of every event the engine
/// writes passes here. What the engine already redacted (and counted) has nothing left to
/// match, so the counts recorded per field stay those of the first pass.
impl crate::ledger::Mask for Redactor {
    fn mask<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        self.redact(text).0
    }
    fn mask_json(&self, value: &mut serde_json::Value) {
        self.redact_json(value);
    }
}

/// A regex for `text` in every escaped form a tool or a library writes it, each character on
/// its own (so mixtures match too): as it is; JSON-escaped (`\"`, `\\`, `\/`, `\n`..., and
/// `\uXXXX` for any character, either case, surrogate pairs beyond the BMP); URL-encoded (`%XX`
/// for any byte, either case, and `+` for a space, as Python's `quote`/`quote_plus` write it).
fn escaped_forms(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let mut alts = vec![regex::escape(c.encode_utf8(&mut [0; 4]))];
        match c {
            '"' => alts.push(r#"\\""#.into()),
            '\\' => alts.push(r"\\\\".into()),
            '/' => alts.push(r"\\/".into()),
            '\n' => alts.push(r"\\n".into()),
            '\r' => alts.push(r"\\r".into()),
            '\t' => alts.push(r"\\t".into()),
            '\u{8}' => alts.push(r"\\b".into()),
            '\u{c}' => alts.push(r"\\f".into()),
            ' ' => alts.push(r"\+".into()),
            _ => {}
        }
        let units: String = c
            .encode_utf16(&mut [0; 2])
            .iter()
            .map(|u| format!(r"\\u{}", hex_any_case(&format!("{u:04x}"))))
            .collect();
        alts.push(units);
        let bytes: String = c
            .encode_utf8(&mut [0; 4])
            .bytes()
            .map(|b| format!("%{}", hex_any_case(&format!("{b:02x}"))))
            .collect();
        alts.push(bytes);
        out.push_str("(?:");
        out.push_str(&alts.join("|"));
        out.push(')');
    }
    out
}

/// Hex digits in either case: `[aA]` for a letter.
fn hex_any_case(hex: &str) -> String {
    hex.chars()
        .map(|d| {
            if d.is_ascii_alphabetic() {
                format!("[{}{}]", d, d.to_ascii_uppercase())
            } else {
                d.to_string()
            }
        })
        .collect()
}

/// A regex for base64 text `core` as the `base64` tool writes it: wrapped (at 76 columns by
/// default), so a line break may fall anywhere inside it.
fn wrapped(core: &str) -> String {
    const BREAK: &str = r"\r?\n?";
    let chars: Vec<String> = core
        .chars()
        .map(|c| regex::escape(c.encode_utf8(&mut [0; 4])))
        .collect();
    chars.join(BREAK)
}

/// Unpadded standard base64, as `base64` and every library write it before the padding.
fn base64(bytes: &[u8]) -> String {
    use base64ct::{Base64Unpadded, Encoding};
    Base64Unpadded::encode_string(bytes)
}

/// The part of a base64 encoding that is the same wherever the secret sits in the encoded data:
/// for each of the three alignments, the characters that depend on the secret's bytes only.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    for shift in 0..3 {
        let mut data = vec![0u8; shift];
        data.extend_from_slice(secret);
        let enc = base64(&data);
        // Characters fully determined by the secret: skip those mixing prefix bytes, and the
        // last ones that may mix with whatever follows.
        let start = (shift * 8).div_ceil(6);
        let end = (data.len() * 8) / 6;
        if end > start {
            let core = &enc[start..end];
            forms.push(core.to_string());
            forms.push(core.replace('+', "-").replace('/', "_"));
        }
    }
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    const TOKEN: &str = "Sx-9f2/7Qa+b7c 6d5e";

    fn token() -> Redactor {
        Redactor::with_values(&[], &[("TOKEN".into(), TOKEN.into())]).unwrap()
    }

    #[track_caller]
    fn masked(r: &Redactor, text: &str) {
        let (out, n) = r.redact(text);
        assert!(n >= 1, "nothing masked in {text:?}");
        assert!(out.contains("[REDACTED:TOKEN]"), "{text:?} -> {out:?}");
        for part in ["9f2", "7Qa", "b7c", "6d5e"] {
            assert!(!out.contains(part), "{text:?} -> {out:?}");
        }
    }

    #[test]
    fn url_forms_python_writes_are_masked() {
        let r = token();
        // urllib.parse.quote (keeps `/`), quote(safe=''), quote_plus, each in either case.
        for text in [
            "Sx-9f2/7Qa%2Bb7c%206d5e",
            "Sx-9f2%2F7Qa%2Bb7c%206d5e",
            "Sx-9f2%2F7Qa%2Bb7c+6d5e",
            "sx-9f2%2f7qa%2bb7c+6d5e"
                .replace("sx", "Sx")
                .replace("7qa", "7Qa")
                .as_str(),
            "q=Sx-9f2%2f7Qa%2bb7c%206d5e&x=1",
        ] {
            masked(&r, text);
        }
    }

    #[test]
    fn json_forms_every_encoder_writes_are_masked() {
        let r = token();
        let full: String = TOKEN
            .chars()
            .map(|c| format!("\\u{:04X}", c as u32))
            .collect();
        for text in [
            r#"{"k":"Sx-9f2\/7Qa+b7c 6d5e"}"#.to_string(),
            format!(r#"{{"k":"{full}"}}"#),
            format!(r#"{{"k":"{}"}}"#, full.to_lowercase()),
            r#"{"k":"Sx-9f2\u002f7Qa\u002Bb7c\u00206d5e"}"#.to_string(),
        ] {
            masked(&r, &text);
        }
        let astral =
            Redactor::with_values(&[], &[("TOKEN".into(), "k\u{1F600}ey-12".into())]).unwrap();
        assert_eq!(
            astral.redact("x k\\ud83d\\ude00ey-12 y").0,
            "x [REDACTED:TOKEN] y"
        );
    }

    #[test]
    fn base64_wrapped_inside_the_secret_is_masked() {
        let secret = "a-long-secret-value-that-spans-a-line-break-0123456789";
        let r = Redactor::with_values(&[], &[("TOKEN".into(), secret.into())]).unwrap();
        for prefix in [
            "",
            "x",
            "xy",
            "0123456789012345678901234567890123456789012345",
        ] {
            let enc = base64(format!("{prefix}{secret}").as_bytes());
            // Wrapped at 76 columns, like `base64` writes it, and at 20 to put breaks inside.
            for width in [76, 20] {
                let lines: Vec<String> = enc
                    .as_bytes()
                    .chunks(width)
                    .map(|c| String::from_utf8(c.to_vec()).unwrap())
                    .collect();
                for sep in ["\n", "\r\n"] {
                    let text = lines.join(sep);
                    let (out, n) = r.redact(&text);
                    assert!(n >= 1, "{text:?}");
                    // What is left is at most the characters mixing prefix or padding bits.
                    let left: usize = out.replace("[REDACTED:TOKEN]", "").replace(sep, "").len();
                    assert!(
                        left <= 4 * prefix.len().div_ceil(3) + 4,
                        "{text:?} -> {out:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_pattern_matching_a_prefix_of_a_secret_does_not_leave_the_rest() {
        let r = Redactor::with_values(
            &["tok-[a-z]{3}".into(), "key=\\w+".into()],
            &[("TOKEN".into(), "tok-abc-def-123".into())],
        )
        .unwrap();
        assert_eq!(r.redact("a tok-abc-def-123 b").0, "a [REDACTED:TOKEN] b");
        let out = r.redact("key=tok-abc-def-123").0;
        assert!(!out.contains("def-123"), "{out}");
        // A longer secret wins over a shorter one inside it.
        let r = Redactor::with_values(
            &[],
            &[
                ("SHORT".into(), "abcd1234".into()),
                ("LONG".into(), "abcd1234-and-more".into()),
            ],
        )
        .unwrap();
        assert_eq!(r.redact("abcd1234-and-more").0, "[REDACTED:LONG]");
    }

    #[test]
    fn placeholders_are_not_masked_again() {
        let r = Redactor::with_values(
            &["[A-Z]{5,}".into()],
            &[("TOKEN".into(), "tok-abc-def-123".into())],
        )
        .unwrap();
        let (once, n) = r.redact("tok-abc-def-123 SHOUT");
        assert_eq!((once.as_ref(), n), ("[REDACTED:TOKEN] [REDACTED]", 2));
        assert_eq!(r.redact(&once), (once.clone(), 0));
        assert!(!r.finds(&once));
    }

    #[test]
    fn a_long_secret_still_builds() {
        // A PEM key is a few KiB; past the limit of escaped forms, the plain ones still hold.
        for len in [MAX_ESCAPED_SECRET, 4 * MAX_ESCAPED_SECRET] {
            let secret: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let r = Redactor::with_values(&[], &[("KEY".into(), secret.clone())]).unwrap();
            assert_eq!(r.redact(&format!("<{secret}>")).0, "<[REDACTED:KEY]>");
            assert_eq!(r.redact(&base64(secret.as_bytes())).1, 1);
        }
    }

    #[test]
    fn base64_matches_a_reference() {
        assert_eq!(base64(b"hello"), "aGVsbG8");
        assert_eq!(base64(b"hi!"), "aGkh");
    }

    #[test]
    fn secrets_are_masked_in_every_form() {
        let r = Redactor::with_values(
            &["(?i)password=\\S+".into()],
            &[("KAIROS_TEST_SECRET_A".into(), "s3cr3t-v@lue/42".into())],
        )
        .unwrap();
        let secret = "s3cr3t-v@lue/42";
        let json = serde_json::to_string(&serde_json::json!({ "k": secret })).unwrap();
        let texts = [
            format!("plain {secret} end"),
            json,
            format!("url {}", url_encode(secret)),
            format!("b64 {}", base64(format!("x{secret}yz").as_bytes())),
            format!("b64 {}", base64(format!("ab{secret}").as_bytes())),
            format!("b64 {}", base64(secret.as_bytes())),
        ];
        for t in &texts {
            let (out, n) = r.redact(t);
            assert!(n >= 1, "{t}");
            assert!(
                !out.contains(secret) && !out.contains(&url_encode(secret)),
                "{t} -> {out}"
            );
            assert!(out.contains("[REDACTED:KAIROS_TEST_SECRET_A]"), "{out}");
        }
        assert_eq!(r.redact("user password=hunter2 ok").0, "user [REDACTED] ok");
        assert_eq!(r.redact("nothing here"), ("nothing here".into(), 0));
    }

    #[test]
    fn redaction_too_large_to_build_is_an_error_not_silence() {
        let patterns: Vec<String> = (0..400)
            .map(|i| format!("(?:[a-z]{{80}}x{i}){{60}}"))
            .collect();
        let e = Redactor::with_values(&patterns, &[("S".into(), "hunter22".into())])
            .err()
            .expect("too large to build");
        assert!(e.to_string().contains("cannot be built"), "{e}");
    }

    #[test]
    fn secret_with_trailing_newline_is_masked_trimmed_too() {
        let r = Redactor::with_values(&[], &[("TOKEN".into(), "  tok-12345\n".into())]).unwrap();
        assert_eq!(r.redact("out: tok-12345").0, "out: [REDACTED:TOKEN]");
        assert_eq!(
            r.redact("raw:  tok-12345\n!").0,
            "raw:[REDACTED:TOKEN]!",
            "the untrimmed value wins where it stands whole"
        );
        assert_eq!(r.redact(&base64(b"tok-12345")).1, 1);
    }
}
