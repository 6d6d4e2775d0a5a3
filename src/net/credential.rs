//! Which names carry credentials: the headers dropped when a redirect leaves the origin they
//! were sent to, and the header, query and form values never written to a ledger
//! (docs/tools.md, "Credentials are not recorded").
//!
//! A name is read as words (split at anything that is not a letter or digit, lower-cased), so
//! `X-Auth-Token`, `access_token` and `x-api-key` are credentials while `max_tokens` and
//! `Idempotency-Key` are not. When in doubt a name counts: masking a value that was not a
//! secret only makes a replay less strict about it, while recording a secret cannot be undone.

/// Whole words that name a credential wherever they appear in a name.
const WORDS: &[&str] = &[
    "authorization",
    "auth",
    "cookie",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "apikey",
    "credential",
    "credentials",
    "signature",
    "session",
    "sessionid",
];

/// Words that make a following `key` a credential (`api-key`, `access_key`, `X-Goog-Api-Key`).
const KEY_QUALIFIERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "subscription",
    "client",
];

/// Whether a header, query parameter or form field named `name` carries a credential.
pub fn is_credential(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words == ["key"] {
        // `?key=...`, as some public APIs take their key.
        return true;
    }
    words.iter().any(|w| WORDS.contains(w))
        || words
            .windows(2)
            .any(|p| p[1] == "key" && KEY_QUALIFIERS.contains(&p[0]))
}

#[cfg(test)]
mod tests {
    use super::is_credential;

    #[test]
    fn credential_names_are_recognised_by_their_words() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "X-API-Key",
            "api-key",
            "X-Goog-Api-Key",
            "Ocp-Apim-Subscription-Key",
            "X-Auth-Token",
            "access_token",
            "client_secret",
            "password",
            "apikey",
            "key",
            "X-Amz-Security-Token",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in [
            "Accept",
            "Content-Type",
            "max_tokens",
            "Idempotency-Key",
            "X-Request-Id",
            "User-Agent",
            "monkey",
            "q",
        ] {
            assert!(!is_credential(name), "{name}");
        }
    }
}
