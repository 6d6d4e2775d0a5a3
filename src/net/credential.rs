//! Which names carry credentials: the headers dropped when a redirect leaves the origin they
//! were sent to, and the header, query and form values never written to a ledger
//! (docs/tools.md, "Credentials are not recorded"); and URLs with those values masked, for
//! whatever records a URL (a call's input and output, an error, a policy denial's detail).
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

/// What a masked credential reads as.
pub const MASK: &str = "[REDACTED]";

/// Masks the values of `fields` (headers, query parameters, form fields: name to value) whose
/// name carries a credential; gives how many it masked (a value already masked, or null, is
/// not counted).
pub fn mask_credentials(fields: &mut serde_json::Map<String, serde_json::Value>) -> usize {
    let mut masked = 0;
    for (name, value) in fields.iter_mut() {
        if is_credential(name) && !value.is_null() && *value != MASK {
            *value = serde_json::Value::String(MASK.into());
            masked += 1;
        }
    }
    masked
}

/// A URL with its credentials masked: the password of its user information, and the values of
/// query parameters that name a credential (`?api_key=...`). Gives how many it masked.
pub fn mask_url(url: &str) -> (String, usize) {
    let mut masked = 0;
    let (head, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let (before, query) = match head.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (head, None),
    };
    let mut out = String::with_capacity(url.len());
    // user:password@ in the authority.
    let scheme_end = before.find("://").map_or(0, |i| i + 3);
    let authority_end = before[scheme_end..]
        .find('/')
        .map_or(before.len(), |i| scheme_end + i);
    let authority = &before[scheme_end..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host))
            if let Some((user, password)) = userinfo.split_once(':')
                && password != MASK =>
        {
            out.push_str(&before[..scheme_end]);
            out.push_str(&format!("{user}:{MASK}@{host}"));
            out.push_str(&before[authority_end..]);
            masked += 1;
        }
        _ => out.push_str(before),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, param) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match param.split_once('=') {
                Some((name, value)) if is_credential(name) && value != MASK => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(MASK);
                    masked += 1;
                }
                _ => out.push_str(param),
            }
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    (out, masked)
}

#[cfg(test)]
mod tests {
    use super::{is_credential, mask_url};

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

    #[test]
    fn urls_lose_their_passwords_and_credential_parameters() {
        assert_eq!(
            mask_url("https://u:p@a.test/x?api_key=k&q=1#f"),
            (
                "https://u:[REDACTED]@a.test/x?api_key=[REDACTED]&q=1#f".into(),
                2
            )
        );
        assert_eq!(
            mask_url("https://a.test/x?q=1"),
            ("https://a.test/x?q=1".into(), 0)
        );
    }
}
