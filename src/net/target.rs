//! A URL kairos sends a request to: `http` or `https`, with a host, and nothing two readers
//! could take for different hosts. The policy reads a URL's host with `policy::hosts::host_of`
//! and the client with its own parser; a URL on which the two could disagree (a backslash,
//! whitespace, control characters) is refused, and one on which they do disagree is refused
//! too, so the host checked is the host connected to.

use super::NetError;
use crate::policy::hosts::host_of;
use ureq::http::Uri;

/// A checked URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    url: String,
    scheme: String,
    /// Lower-case; an IPv6 literal without brackets.
    host: String,
    port: u16,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, NetError> {
        let bad = |why: &str| NetError::BadUrl(format!("`{url}` {why}"));
        if let Some(c) = url
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '\\')
        {
            return Err(bad(&format!("contains {c:?}")));
        }
        let uri: Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            "" => return Err(bad("has no scheme (http:// or https://)")),
            _ => return Err(bad("is not http:// or https://")),
        };
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("has no host"))?
            .to_ascii_lowercase();
        if host_of(url).as_deref() != Some(host.as_str()) {
            return Err(bad("names its host ambiguously"));
        }
        Ok(Target {
            url: url.to_string(),
            port: uri.port_u16().unwrap_or(default_port),
            scheme,
            host,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether `other` is the same scheme, host and port: credentials sent to one may go to
    /// the other.
    pub fn same_origin_host(&self, other: &Target) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }

    /// A redirect's `Location`, absolute or relative to this URL (RFC 3986 section 5.2, for
    /// the forms servers send: absolute, scheme-relative, absolute path, query, relative path).
    pub fn join(&self, location: &str) -> Result<String, NetError> {
        if location.contains("://") {
            return Ok(location.to_string());
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Ok(format!("{}://{rest}", self.scheme));
        }
        let after_scheme = self.url.len() - self.url.split_once("://").map_or("", |p| p.1).len();
        let rest = &self.url[after_scheme..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let origin = &self.url[..after_scheme + authority_end];
        let path_and_query = &rest[authority_end..];
        let path = path_and_query
            .split(['?', '#'])
            .next()
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        Ok(if location.starts_with('/') {
            format!("{origin}{location}")
        } else if location.starts_with('?') {
            format!("{origin}{path}{location}")
        } else {
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{origin}{dir}{location}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_two_readers_could_read_differently_are_refused() {
        for url in [
            "http://good.test\\@evil.test/",
            "http://good.test /",
            "http://good.test\t/",
            "ftp://good.test/",
            "good.test/x",
            "http:///x",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
        let t = Target::parse("http://user@Evil.Test:8080/x").unwrap();
        assert_eq!(t.host(), "evil.test");
        assert_eq!(t.port, 8080);
        assert_eq!(Target::parse("https://[::1]/").unwrap().host(), "::1");
    }

    #[test]
    fn redirect_locations_resolve_against_the_url() {
        let t = Target::parse("https://a.test/dir/page?q=1").unwrap();
        assert_eq!(t.join("http://b.test/x").unwrap(), "http://b.test/x");
        assert_eq!(t.join("//b.test/x").unwrap(), "https://b.test/x");
        assert_eq!(t.join("/root").unwrap(), "https://a.test/root");
        assert_eq!(t.join("other").unwrap(), "https://a.test/dir/other");
        assert_eq!(t.join("?p=2").unwrap(), "https://a.test/dir/page?p=2");
        let bare = Target::parse("https://a.test").unwrap();
        assert_eq!(bare.join("x").unwrap(), "https://a.test/x");
    }

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        let a = Target::parse("https://a.test/x").unwrap();
        assert!(a.same_origin_host(&Target::parse("https://A.test:443/y").unwrap()));
        assert!(!a.same_origin_host(&Target::parse("http://a.test/").unwrap()));
        assert!(!a.same_origin_host(&Target::parse("https://a.test:8443/").unwrap()));
        assert!(!a.same_origin_host(&Target::parse("https://b.test/").unwrap()));
    }
}
