//! A server reached over Streamable HTTP: each JSON-RPC message is a `POST` to the server's
//! URL, and the answer is one JSON object or a stream of server-sent events that carries it
//! (docs/tools.md, "mcp"). Every request goes through the run's [`Net`], so the URL is
//! checked against `hosts` at every hop.
//!
//! In the stateless revision every request carries `MCP-Protocol-Version`, `Mcp-Method` and,
//! for a tool call, `Mcp-Name`, and a request is cancelled by closing its stream. In the
//! handshake revisions, requests after `initialize` carry `MCP-Protocol-Version` and, when the
//! server gave one, `Mcp-Session-Id`; stopping the server ends its session with a `DELETE`.

use super::Connection;
use super::protocol::{self, Era, Incoming, McpError};
use crate::cancel::Cancel;
use crate::net::{Net, NetError, Request};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The largest answer read, JSON body or one event.
const MAX_MESSAGE: usize = 64 << 20;

/// How long a notification or the closing `DELETE` may take.
const SHORT: Duration = Duration::from_secs(5);

/// What reaches an HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

pub struct HttpConnection {
    net: Net,
    endpoint: Endpoint,
    /// `Mcp-Session-Id` and `MCP-Protocol-Version`, once `initialize` gave them.
    session: Mutex<Session>,
    next_id: AtomicU64,
}

#[derive(Default, Clone)]
struct Session {
    id: Option<String>,
    /// The era, once known (the `server/discover` probe is sent as the stateless revision).
    era: Option<Era>,
    closed: Option<McpError>,
}

impl HttpConnection {
    pub fn new(net: Net, endpoint: Endpoint) -> Self {
        HttpConnection {
            net,
            endpoint,
            session: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn post(&self, message: &Value, timeout: Duration) -> Request {
        let session = self.session().clone();
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                "Accept".to_string(),
                "application/json, text/event-stream".to_string(),
            ),
        ];
        if let Some(era) = &session.era {
            headers.push(("MCP-Protocol-Version".into(), era.version().to_string()));
        }
        if session.era == Some(Era::Modern)
            && let Some(method) = message.get("method").and_then(Value::as_str)
        {
            headers.push(("Mcp-Method".into(), method.to_string()));
            // The tool's name, when a header can carry it as it is.
            if method == "tools/call"
                && let Some(name) = message["params"]["name"].as_str()
                && name.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            {
                headers.push(("Mcp-Name".into(), name.to_string()));
            }
        }
        if let Some(id) = session.id {
            headers.push(("Mcp-Session-Id".into(), id));
        }
        headers.extend(self.endpoint.headers.iter().cloned());
        Request {
            method: "POST".into(),
            url: self.endpoint.url.clone(),
            headers,
            body: Some(serde_json::to_vec(message).unwrap_or_default()),
            timeout: Some(timeout),
            follow_redirects: 0,
            max_response_bytes: MAX_MESSAGE,
            ca_bundle: None,
        }
    }

    /// Posts a message that has no answer (a notification, or an answer to the server).
    fn post_only(&self, message: &Value) -> Result<(), McpError> {
        let response = self
            .net
            .send(&self.post(message, SHORT))
            .map_err(net_error)?;
        match response.head.status {
            200..=299 => Ok(()),
            status => Err(McpError::Status(
                status,
                "(the answer to a notification)".into(),
            )),
        }
    }

    fn exchange(&self, id: u64, message: &Value, timeout: Duration) -> Result<Value, McpError> {
        let deadline = Instant::now() + timeout;
        let streaming = self
            .net
            .open(&self.post(message, timeout))
            .map_err(|e| match e {
                NetError::Timeout(_) => McpError::Timeout(timeout),
                e => net_error(e),
            })?;
        let head = &streaming.head;
        if let Some(session) = head.header("mcp-session-id") {
            self.session().id = Some(session.to_string());
        }
        let content_type = head.header("content-type").unwrap_or_default().to_string();
        match head.status {
            200..=299 => {}
            404 if self.session().id.is_some() => {
                let e = McpError::Closed("the server ended the session (HTTP 404)".into());
                self.session().closed = Some(e.clone());
                return Err(e);
            }
            status => {
                let mut body = Vec::new();
                let _ = streaming.body.take(4096).read_to_end(&mut body);
                return Err(McpError::Status(
                    status,
                    protocol::excerpt(&String::from_utf8_lossy(&body)),
                ));
            }
        }
        let mut body = streaming.body;
        if content_type.starts_with("text/event-stream") {
            return self.read_events(id, BufReader::new(body), deadline, timeout);
        }
        let mut text = Vec::new();
        body.by_ref()
            .take(MAX_MESSAGE as u64)
            .read_to_end(&mut text)
            .map_err(|e| read_error(e, deadline, timeout))?;
        let text = String::from_utf8_lossy(&text);
        match Incoming::parse(&text)? {
            Incoming::Response { id: got, outcome } if got.as_u64() == Some(id) => outcome,
            _ => Err(McpError::Protocol(format!(
                "the answer is not the response to request {id}: {}",
                protocol::excerpt(&text)
            ))),
        }
    }

    /// Reads server-sent events until the response to request `id`, answering the server's
    /// requests on the way.
    fn read_events(
        &self,
        id: u64,
        mut reader: impl BufRead,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Value, McpError> {
        let mut data = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .by_ref()
                .take(MAX_MESSAGE as u64)
                .read_line(&mut line)
                .map_err(|e| read_error(e, deadline, timeout))?;
            if n == 0 {
                return Err(McpError::Closed(format!(
                    "the event stream ended before the response to request {id}"
                )));
            }
            let field = line.trim_end_matches(['\r', '\n']);
            if !field.is_empty() {
                if let Some(value) = field.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    if data.len() > MAX_MESSAGE {
                        return Err(McpError::Protocol("an event larger than 64 MiB".into()));
                    }
                }
                continue;
            }
            // A blank line ends an event; one without data (a comment, a retry hint) is none.
            if data.is_empty() {
                continue;
            }
            let event = std::mem::take(&mut data);
            match Incoming::parse(&event)? {
                Incoming::Response { id: got, outcome } if got.as_u64() == Some(id) => {
                    return outcome;
                }
                Incoming::Request { id, method } => {
                    self.post_only(&protocol::answer(id, &method))?;
                }
                Incoming::Response { .. } | Incoming::Notification { .. } => {}
            }
        }
    }
}

fn net_error(e: NetError) -> McpError {
    McpError::Transport(e.to_string())
}

fn read_error(e: std::io::Error, deadline: Instant, timeout: Duration) -> McpError {
    if e.kind() == std::io::ErrorKind::TimedOut || Instant::now() >= deadline {
        McpError::Timeout(timeout)
    } else {
        McpError::Closed(format!("reading the answer: {e}"))
    }
}

impl Connection for HttpConnection {
    fn request(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Result<Value, McpError> {
        if let Some(e) = &self.session().closed {
            return Err(e.clone());
        }
        if cancel.killed() {
            return Err(McpError::Interrupted);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let result = self.exchange(id, &protocol::request(id, method, params), timeout);
        // In the stateless revision, the closed stream is the cancellation.
        let modern = self.session().era == Some(Era::Modern);
        if let (Err(McpError::Timeout(_)), false) = (&result, modern) {
            let _ = self.post_only(&protocol::cancelled(id, "timed out"));
        }
        result
    }

    fn notify(&self, method: &str, params: Value) -> Result<(), McpError> {
        self.post_only(&protocol::notification(method, params))
    }

    fn alive(&self) -> bool {
        self.session().closed.is_none()
    }

    fn set_era(&self, era: Option<&Era>) {
        self.session().era = era.cloned();
    }

    fn stop(&self) {
        let session = self.session().id.take();
        let Some(session) = session else { return };
        let mut headers = vec![("Mcp-Session-Id".to_string(), session)];
        headers.extend(self.endpoint.headers.iter().cloned());
        let _ = self.net.send(&Request {
            method: "DELETE".into(),
            url: self.endpoint.url.clone(),
            headers,
            timeout: Some(SHORT),
            ..Request::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> HttpConnection {
        HttpConnection::new(
            Net::default(),
            Endpoint {
                url: "http://127.0.0.1:1/mcp".into(),
                headers: Vec::new(),
            },
        )
    }

    #[test]
    fn events_are_read_until_the_matching_response() {
        let stream = concat!(
            ": a comment\n\n",
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
            "data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"other\":true}}\n\n",
            "id: 9\ndata: {\"jsonrpc\":\"2.0\",\n",
            "data: \"id\":7,\"result\":{\"ok\":1}}\r\n\r\n",
        );
        let got = connection().read_events(7, stream.as_bytes(), Instant::now() + SHORT, SHORT);
        assert_eq!(got.unwrap(), serde_json::json!({ "ok": 1 }));
    }

    #[test]
    fn a_stream_that_ends_early_is_an_error() {
        let got = connection().read_events(
            1,
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n".as_bytes(),
            Instant::now() + SHORT,
            SHORT,
        );
        assert!(matches!(got, Err(McpError::Closed(m)) if m.contains("ended")));
    }
}
