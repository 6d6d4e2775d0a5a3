//! A small HTTP/1.1 server in the test process, for tests of the network tools: it answers
//! each request with what a handler returns, keeps the requests it saw, and counts the
//! connections it accepted and the most requests it was answering at once.
//!
//! ```ignore
//! let server = FakeServer::start(|req| Reply::json(200, &json!({ "path": req.path })));
//! let url = server.url("/x");                  // http://127.0.0.1:PORT/x
//! let other = server.url_on("localhost", "/"); // the same server, another host
//! ... run kairos ...
//! assert_eq!(server.requests()[0].method, "GET");
//! ```
//!
//! One request per connection (`Connection: close`), so the connection count is the request
//! count. With [`FakeServer::start_tls`] it speaks HTTPS with a certificate from
//! [`TestCa`].

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target: path and query, as sent.
    pub path: String,
    /// Names lower-cased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn text(body: &str) -> Self {
        Reply::new(200, body).header("Content-Type", "text/plain")
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply::new(status, value.to_string()).header("Content-Type", "application/json")
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Reply::new(status, "").header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// What the server's threads share.
#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    connections: AtomicUsize,
    /// Requests being answered now, and the most at once; with the condition `hold` waits on.
    in_flight: Mutex<(usize, usize)>,
    changed: Condvar,
    /// Each request waits until this many are in flight (or `hold_for` passes).
    hold: AtomicUsize,
    stopped: AtomicBool,
}

/// A server on `127.0.0.1`, stopped when dropped.
pub struct FakeServer {
    port: u16,
    scheme: &'static str,
    state: Arc<State>,
}

impl FakeServer {
    /// Serves plain HTTP.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::serve(handler, None)
    }

    /// Serves HTTPS with `ca`'s certificate for `localhost` and `127.0.0.1`.
    pub fn start_tls(
        ca: &TestCa,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::serve(handler, Some(ca.server_config()))
    }

    fn serve(
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let (state, handler, tls) =
                    (Arc::clone(&shared), Arc::clone(&handler), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        None => connection(stream, &state, &*handler),
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            let tls = rustls::StreamOwned::new(conn, stream);
                            connection(tls, &state, &*handler);
                        }
                    }
                });
            }
        });
        FakeServer {
            port,
            scheme,
            state,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        self.url_on("127.0.0.1", path)
    }

    /// The server's URL with another name for it as its host (`localhost`): another host to
    /// the policy, the same server.
    pub fn url_on(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme, self.port)
    }

    /// The requests seen so far, in the order they were read.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Connections accepted so far (a TLS handshake that failed counts too).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The most requests the server was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.in_flight.lock().unwrap().1
    }

    /// From now on each request waits, before it is answered, until `n` requests are in
    /// flight or `at_most` has passed: a client that sends `n` at once gets them answered
    /// together, one that sends them one by one waits `at_most` for each.
    pub fn hold_until(&self, n: usize) {
        self.state.hold.store(n, Ordering::SeqCst);
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// How long a held request waits for the others at most.
const HOLD_AT_MOST: Duration = Duration::from_secs(3);

fn connection(mut stream: impl Read + Write, state: &State, handler: &Handler) {
    let Some(request) = read_request(&mut BufReader::new(&mut stream)) else {
        return;
    };
    state.requests.lock().unwrap().push(request.clone());
    {
        let mut flight = state.in_flight.lock().unwrap();
        flight.0 += 1;
        flight.1 = flight.1.max(flight.0);
        state.changed.notify_all();
        let hold = state.hold.load(Ordering::SeqCst);
        let _ = state
            .changed
            .wait_timeout_while(flight, HOLD_AT_MOST, |f| f.0 < hold)
            .unwrap();
    }
    let reply = handler(&request);
    std::thread::sleep(reply.delay);
    let mut head = format!("HTTP/1.1 {} Reason\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
    let mut flight = state.in_flight.lock().unwrap();
    flight.0 -= 1;
}

/// Reads one request (line, headers, a `Content-Length` body); `None` at the end of the
/// connection or on anything else. A caller that keeps the connection open passes the same
/// reader each time, so that what it buffered of the next request is not lost.
pub fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A certificate authority made for a test with the `openssl` program, and a server
/// certificate it signed for `localhost` and `127.0.0.1`. Check
/// `common::require_program("openssl")` first.
pub struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=kairos test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        TestCa { dir }
    }

    /// The CA certificate (PEM): what a client trusts with `ca_bundle`.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs = certificates(&self.dir.path().join("server.pem"));
        let key = private_key(&self.dir.path().join("server.key"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

fn certificates(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn private_key(path: &Path) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_file(path).unwrap()
}

/// A server that answers as httpbin does on the two paths `workflows/http-fetch.yaml`
/// uses: `/get` echoes the query parameters under `args`, `/post` the JSON body under `json`.
pub fn httpbin() -> FakeServer {
    FakeServer::start(|req| {
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        match (req.method.as_str(), path) {
            ("GET", "/get") => {
                let args: serde_json::Map<String, serde_json::Value> = query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.into()))
                    .collect();
                Reply::json(200, &serde_json::json!({ "args": args }))
            }
            ("POST", "/post") => {
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                Reply::json(200, &serde_json::json!({ "json": body }))
            }
            _ => Reply::new(404, "not found"),
        }
    })
}
