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
    regex: Option<Regex>,
    /// Per capture group (after the patterns'), the replacement.
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
        let mut alternatives = Vec::new();
        let mut replacements = Vec::new();
        for p in patterns {
            alternatives.push(format!("(?:{p})"));
            replacements.push("[REDACTED]".to_string());
        }
        for (name, value) in secrets {
            // A secret read from a file or a mount usually ends with a newline, and tools trim
            // what they output (a shell call's `output` is its trimmed stdout): the trimmed
            // value is masked too, in every form.
            let bases: Vec<&str> = [value.as_str(), value.trim()]
                .into_iter()
                .filter(|b| b.len() >= MIN_SECRET_LEN)
                .collect();
            let mut forms = Vec::new();
            for base in bases {
                forms.push(base.to_string());
                let json = serde_json::to_string(base).unwrap_or_default();
                forms.push(json[1..json.len() - 1].to_string());
                forms.push(url_encode(base));
                forms.extend(base64_forms(base.as_bytes()));
            }
            // Longest first: the alternation takes the first form that matches at a place, and
            // the untrimmed value must win over the trimmed one inside it.
            forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
            forms.dedup();
            forms.retain(|f| f.len() >= MIN_SECRET_LEN);
            for f in forms {
                alternatives.push(regex::escape(&f));
                replacements.push(format!("[REDACTED:{name}]"));
            }
        }
        if alternatives.is_empty() {
            return Ok(Self {
                regex: None,
                replacements,
            });
        }
        // Each alternative is its own capture group, so a match tells which replacement applies.
        // Longer literals first, so a secret's longer encoded form wins over a shorter one.
        // The first group is a placeholder already written, kept as it is and not counted: text
        // redacted once (and counted) passes the ledger's choke point unchanged.
        let pattern = std::iter::once(PLACEHOLDER.to_string())
            .chain(alternatives.iter().cloned())
            .map(|a| format!("({a})"))
            .collect::<Vec<_>>()
            .join("|");
        // A larger lazy-DFA cache keeps the single pass fast when there are many patterns.
        // Redaction that cannot be built refuses the run: going on without it would write every
        // secret in clear.
        let regex = regex::RegexBuilder::new(&pattern)
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
            regex: Some(regex),
            replacements,
        })
    }

    pub fn is_active(&self) -> bool {
        self.regex.is_some()
    }

    /// Replaces what must not be seen; returns the new text and the number of replacements.
    pub fn redact<'t>(&self, text: &'t str) -> (std::borrow::Cow<'t, str>, usize) {
        let Some(re) = &self.regex else {
            return (text.into(), 0);
        };
        let mut count = 0;
        let out = re.replace_all(text, |caps: &regex::Captures<'_>| {
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

    /// Whether `text` holds anything to replace.
    pub fn finds(&self, text: &str) -> bool {
        self.regex
            .as_ref()
            .is_some_and(|re| re.captures_iter(text).any(|caps| caps.get(1).is_none()))
    }

    /// Redacts every string inside a JSON value in place; returns the number of replacements.
    pub fn redact_json(&self, value: &mut serde_json::Value) -> usize {
        if self.regex.is_none() {
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

/// The ledger's choke point (`ledger/encode.rs`): every text field of every event the engine
/// writes passes here. What the engine already redacted (and counted) has nothing left to
/// match, so the counts recorded per field stay those of the first pass.
impl crate::ledger::Mask for Redactor {
    fn mask<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        self.redact(text).0
    }
    fn finds(&self, text: &str) -> bool {
        Redactor::finds(self, text)
    }
    fn mask_json(&self, value: &mut serde_json::Value) {
        self.redact_json(value);
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(STD[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
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
