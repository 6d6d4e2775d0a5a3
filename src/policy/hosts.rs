//! `hosts`: which hosts a call may reach. A URL is checked before the call (the gate), and
//! the network layer checks every URL it actually connects to again, each redirect hop
//! included, with the same rules (`net/`): what it reaches is what was checked
//! (docs/policy.md, "Hosts").

use super::effective::{Denial, Reason};
use globset::GlobMatcher;
use std::sync::Arc;

/// The globs of `hosts`, one list per layer that sets them: a host must match a glob of every
/// list. No list: every host passes. Cheap to clone (each call gets its own copy).
#[derive(Clone, Debug, Default)]
pub struct HostRules {
    layers: Arc<[Vec<GlobMatcher>]>,
}

impl HostRules {
    /// No constraint.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(layers: Vec<Vec<GlobMatcher>>) -> Self {
        HostRules {
            layers: layers.into(),
        }
    }

    /// Whether any layer constrains hosts.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Whether `host` (a host name or IP literal, already lower-cased, IPv6 without brackets)
    /// is permitted.
    pub fn permits(&self, host: &str) -> bool {
        self.layers
            .iter()
            .all(|globs| globs.iter().any(|g| g.is_match(host)))
    }

    /// Checks a URL's host. A URL whose host cannot be read is denied where `hosts` applies:
    /// what cannot be named cannot be said to be permitted.
    pub fn check_url(&self, url: &str) -> Result<(), Denial> {
        if self.is_empty() {
            return Ok(());
        }
        if host_of(url).is_some_and(|h| self.permits(&h)) {
            Ok(())
        } else {
            Err(Denial {
                reason: Reason::HostNotPermitted,
                // A URL may carry a credential (`?api_key=`): the detail is recorded.
                detail: format!("host of `{}` is not permitted", crate::net::mask_url(url).0),
            })
        }
    }
}

/// The host of a URL as the network layer connects to it: the authority's host, after any
/// user information, lower-cased, an IPv6 literal without its brackets. `None` when there is
/// none. The network layer refuses URLs this reading and its HTTP parser disagree on
/// (`net::Target`), so the host checked is the host reached.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| &h[1..])
    } else {
        host.split(':').next()
    }?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(globs: &[&[&str]]) -> HostRules {
        HostRules::new(
            globs
                .iter()
                .map(|l| {
                    l.iter()
                        .map(|g| crate::policy::host_matcher(g).unwrap())
                        .collect()
                })
                .collect(),
        )
    }

    #[test]
    fn every_layer_must_permit_the_host() {
        let r = rules(&[&["*.example.com"], &["api.example.com"]]);
        assert!(r.check_url("https://api.example.com/v1").is_ok());
        assert!(r.check_url("https://www.example.com/").is_err());
        assert!(rules(&[]).check_url("anything").is_ok());
    }

    #[test]
    fn the_host_is_read_after_user_information() {
        assert_eq!(
            host_of("http://api.example.com@evil.test/x").as_deref(),
            Some("evil.test")
        );
        assert_eq!(host_of("http://[::1]:8080/").as_deref(), Some("::1"));
        assert_eq!(
            host_of("HTTP://Example.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(host_of("http:///nohost"), None);
        let r = rules(&[&["api.example.com"]]);
        assert!(r.check_url("http://api.example.com@evil.test/").is_err());
        assert!(r.check_url("").is_err());
    }
}
