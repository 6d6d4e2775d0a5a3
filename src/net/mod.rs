//! The network layer under the `http`, `llm` and `mcp` tools: one synchronous HTTP client
//! (ureq: pure Rust, rustls, no async runtime, so a call is a plain blocking function on the
//! thread that runs it) with the policy applied at every URL it reaches.
//!
//! Redirects are followed here, not by the client, so that each hop is checked against
//! `hosts` before it is connected to and is reported in [`Response::hops`]; credentials
//! (`Authorization`, `Cookie`, `Proxy-Authorization`, `X-Api-Key` and every header
//! [`is_credential`] names) are dropped when a hop leaves the origin they were sent to
//! (docs/tools.md, "http"). A response body is kept up to the request's cap; past it, its
//! full size and SHA-256 are kept instead of the rest, as for a process's output.

mod credential;
mod target;

use crate::capped::Capped;
use crate::policy::effective::Denial;
use crate::policy::hosts::HostRules;
pub use credential::{MASK, is_credential, mask_credentials, mask_url};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use target::Target;
use ureq::Agent;

/// Redirects followed at most, whatever a request asks for.
pub const MAX_REDIRECTS: u32 = 10;

/// How long an exchange may take when the call sets no `timeout`: a network call always ends.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Idle connections kept for reuse, in all and per host.
const MAX_IDLE_CONNECTIONS: usize = 256;
const MAX_IDLE_PER_HOST: usize = 64;

/// Response header bytes accepted at most.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// One request, as a tool built it from its rendered arguments.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Upper-case method name.
    pub method: String,
    pub url: String,
    /// Names as given; sent in this order.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The whole exchange, redirects and body included; [`DEFAULT_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
    /// Redirects to follow (capped at [`MAX_REDIRECTS`]); 0: a redirect is the response.
    pub follow_redirects: u32,
    /// Body bytes kept; past it only the size and SHA-256 are.
    pub max_response_bytes: usize,
    /// PEM file of extra trusted root certificates.
    pub ca_bundle: Option<PathBuf>,
}

/// A response's status line and headers, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Names lower-cased, in the order received (a repeated header appears repeatedly).
    pub headers: Vec<(String, String)>,
    /// The URL that answered: the request's, or the last redirect's.
    pub final_url: String,
    /// The redirects followed, in order.
    pub hops: Vec<Hop>,
}

impl Head {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A redirect followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub status: u16,
    /// The URL the redirect led to.
    pub location: String,
}

/// A response read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub head: Head,
    pub body: Body,
}

/// A response body: its first bytes, and beyond the cap its size and digest.
pub use crate::capped::Kept as Body;

/// A response whose body is still to be read (a stream of server-sent events).
pub struct Streaming {
    pub head: Head,
    pub body: Box<dyn Read + Send>,
}

/// Why an exchange gave no response.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The policy does not permit a URL the exchange would reach.
    #[error("{}", .0.detail)]
    Denied(Denial),
    /// Not a URL kairos sends requests to.
    #[error("{0}")]
    BadUrl(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    /// `ca_bundle` could not be read.
    #[error("ca_bundle `{path}`: {reason}")]
    CaBundle { path: String, reason: String },
    /// Connecting, TLS, or the exchange itself failed.
    #[error("{0}")]
    Transport(String),
}

impl NetError {
    /// Whether trying again could succeed: connection failures and timeouts, not a refused
    /// URL, a bad bundle or a protocol the server will speak the same way next time.
    pub fn is_transient(&self) -> bool {
        matches!(self, NetError::Timeout(_) | NetError::Transport(_))
    }
}

/// A run's network access: the host rules every reached URL must pass, and the HTTP clients
/// (one per trust configuration) whose connections are reused across the run's calls. Cheap
/// to clone; clones share the clients.
#[derive(Clone, Default)]
pub struct Net {
    hosts: HostRules,
    agents: Arc<Mutex<BTreeMap<Option<PathBuf>, Agent>>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("hosts", &self.hosts).finish()
    }
}

impl Net {
    /// Network access checked against `hosts` (the policy's `reaching` rules).
    pub fn new(hosts: HostRules) -> Self {
        Net {
            hosts,
            agents: Arc::default(),
        }
    }

    /// The rules every reached URL is checked against.
    pub fn hosts(&self) -> &HostRules {
        &self.hosts
    }

    /// Checks a URL as a hop would be checked: parsed, and its host against `hosts`.
    pub fn check(&self, url: &str) -> Result<Target, NetError> {
        let target = Target::parse(url)?;
        self.hosts
            .check_url(target.as_str())
            .map_err(NetError::Denied)?;
        Ok(target)
    }

    /// Sends `request` and reads the whole response, the body up to its cap.
    pub fn send(&self, request: &Request) -> Result<Response, NetError> {
        let deadline = Deadline::new(request.timeout);
        let Streaming { head, body } = self.exchange(request, &deadline)?;
        let body = read_capped(body, request.max_response_bytes, &deadline)?;
        Ok(Response { head, body })
    }

    /// Sends `request` and returns the response with its body unread, for a caller that reads
    /// it as it arrives (server-sent events). The request's timeout bounds the whole body too.
    pub fn open(&self, request: &Request) -> Result<Streaming, NetError> {
        self.exchange(request, &Deadline::new(request.timeout))
    }

    /// The exchange, following redirects hop by hop.
    fn exchange(&self, request: &Request, deadline: &Deadline) -> Result<Streaming, NetError> {
        let agent = self.agent(request.ca_bundle.as_deref())?;
        let first = self.check(&request.url)?;
        let (mut method, mut body) = (request.method.clone(), request.body.clone());
        let mut headers = request.headers.clone();
        let mut target = first.clone();
        let mut hops = Vec::new();
        let limit = request.follow_redirects.min(MAX_REDIRECTS);
        loop {
            let response = send_once(&agent, &method, &target, &headers, &body, deadline)?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok());
            let redirect = matches!(status, 301 | 302 | 303 | 307 | 308) && limit > 0;
            let Some(location) = location.filter(|_| redirect) else {
                return Ok(streaming(response, target, hops, deadline.total));
            };
            if hops.len() as u32 >= limit {
                return Err(NetError::TooManyRedirects(limit));
            }
            let next = self.check(&target.join(location)?)?;
            if !next.same_origin_host(&first) {
                headers.retain(|(n, _)| !is_credential(n));
            }
            // 303 always, and 301/302 after anything but GET/HEAD, become a GET without a
            // body, as browsers and curl do; 307 and 308 repeat the request as it was.
            if status == 303 || (matches!(status, 301 | 302) && method != "HEAD") {
                if method != "GET" && method != "HEAD" {
                    method = "GET".into();
                }
                if body.take().is_some() {
                    headers.retain(|(n, _)| {
                        !n.eq_ignore_ascii_case("content-type")
                            && !n.eq_ignore_ascii_case("content-length")
                    });
                }
            }
            hops.push(Hop {
                status,
                location: next.as_str().to_string(),
            });
            target = next;
        }
    }

    /// The client for a trust configuration, built once per run.
    fn agent(&self, ca_bundle: Option<&Path>) -> Result<Agent, NetError> {
        let key = ca_bundle.map(Path::to_path_buf);
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(agent) = agents.get(&key) {
            return Ok(agent.clone());
        }
        let agent = build_agent(ca_bundle)?;
        agents.insert(key, agent.clone());
        Ok(agent)
    }
}

/// When an exchange must be over.
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn new(timeout: Option<Duration>) -> Self {
        let total = timeout.unwrap_or(DEFAULT_TIMEOUT);
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    /// What is left, or the timeout error when nothing is.
    fn left(&self) -> Result<Duration, NetError> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(NetError::Timeout(self.total))
        } else {
            Ok(left)
        }
    }
}

fn build_agent(ca_bundle: Option<&Path>) -> Result<Agent, NetError> {
    use ureq::tls::{RootCerts, TlsConfig};
    let roots = match ca_bundle {
        None => RootCerts::WebPki,
        Some(path) => RootCerts::new_with_certs(&read_bundle(path)?),
    };
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_response_header_size(MAX_HEADER_BYTES)
        // As many idle connections kept per host as the network lane runs calls by default,
        // so concurrent calls to one server reuse their connections instead of opening new
        // ones (ureq keeps 3 per host by default).
        .max_idle_connections(MAX_IDLE_CONNECTIONS)
        .max_idle_connections_per_host(MAX_IDLE_PER_HOST)
        .proxy(ureq::Proxy::try_from_env())
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .user_agent(concat!("kairos/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(config.new_agent())
}

/// The certificates of a PEM bundle: the web's roots and these, as a curl user who adds a
/// bundle for an internal CA expects public hosts to keep working.
fn read_bundle(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, NetError> {
    use ureq::tls::{Certificate, PemItem, parse_pem};
    let error = |reason: String| NetError::CaBundle {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect();
    let before = certs.len();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(cert) = item.map_err(|e| error(e.to_string()))? {
            certs.push(cert);
        }
    }
    if certs.len() == before {
        return Err(error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// One request, no redirect followed.
fn send_once(
    agent: &Agent,
    method: &str,
    target: &Target,
    headers: &[(String, String)],
    body: &Option<Vec<u8>>,
    deadline: &Deadline,
) -> Result<ureq::http::Response<ureq::Body>, NetError> {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(target.as_str());
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(body.clone().unwrap_or_default())
        .map_err(|e| NetError::BadUrl(format!("cannot build the request: {e}")))?;
    let request = agent
        .configure_request(request)
        .timeout_global(Some(deadline.left()?))
        .allow_non_standard_methods(true)
        .build();
    agent.run(request).map_err(|e| transport(e, deadline))
}

fn transport(error: ureq::Error, deadline: &Deadline) -> NetError {
    match error {
        ureq::Error::Timeout(_) => NetError::Timeout(deadline.total),
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            NetError::Timeout(deadline.total)
        }
        // The client counts what it had read when it stopped, not what the server sent.
        ureq::Error::LargeResponseHeader(..) => NetError::Transport(format!(
            "the response's headers are larger than {} KiB",
            MAX_HEADER_BYTES / 1024
        )),
        e => NetError::Transport(e.to_string()),
    }
}

fn streaming(
    response: ureq::http::Response<ureq::Body>,
    target: Target,
    hops: Vec<Hop>,
    timeout: Duration,
) -> Streaming {
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let head = Head {
        status: response.status().as_u16(),
        headers,
        final_url: target.as_str().to_string(),
        hops,
    };
    let body = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    Streaming {
        head,
        body: Box::new(Timed {
            inner: body,
            timeout,
        }),
    }
}

/// A streamed body whose reads, once the exchange's time is up, fail with the message a
/// timeout gives everywhere else (the client's own says only `timeout: global`).
struct Timed<R> {
    inner: R,
    timeout: Duration,
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let ureq_timeout = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
            if ureq_timeout || e.kind() == std::io::ErrorKind::TimedOut {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    NetError::Timeout(self.timeout).to_string(),
                )
            } else {
                e
            }
        })
    }
}

/// Reads a body to its end: the first `cap` bytes kept, the rest counted and hashed.
fn read_capped(
    mut body: Box<dyn Read + Send>,
    cap: usize,
    deadline: &Deadline,
) -> Result<Body, NetError> {
    let mut out = Capped::new(cap);
    match out.read_from(&mut body) {
        Ok(()) => Ok(out.finish()),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(NetError::Timeout(deadline.total))
        }
        Err(e) => Err(match deadline.left() {
            Err(timeout) => timeout,
            Ok(_) => NetError::Transport(format!("reading the body: {e}")),
        }),
    }
}

#[cfg(test)]
mod tests;
