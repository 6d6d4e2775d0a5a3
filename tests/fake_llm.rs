//! In-process fake model servers for tests: an OpenAI-compatible one and an Anthropic one are
//! the same HTTP/1.1 server on `127.0.0.1:0`, answering each request from a script (one reply
//! per request, in order; the last repeats) or from a function of the request. Every request
//! is kept (method, path, headers, JSON body) and every connection counted, so a test can say
//! what a workflow sent and that a replay sent nothing.
//!
//! Replies: JSON with any status and headers, a raw body (malformed JSON), server-sent events,
//! and a delay before any of them (timeouts, latency). The builders below write the
//! responses of both dialects, so a test (or an agent loop's) scripts a conversation in a few
//! lines.

#![allow(dead_code)] // A toolbox: each test file uses part of it.

use serde_json::{Value, json};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON body with this status and extra headers.
    Json(u16, Vec<(String, String)>, Value),
    /// A body as it is (not JSON, or cut short), status 200.
    Raw(u16, String),
    /// `text/event-stream`: each item is one event's text (`event: x\ndata: {...}`), blank
    /// lines added between them.
    Sse(Vec<String>),
    /// Waits, then gives the reply.
    Slow(Duration, Box<Reply>),
    /// `text/event-stream` that sends these events, then nothing for this long (a stream
    /// that stalls), then closes.
    Stalled(Vec<String>, Duration),
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply::Json(200, Vec::new(), body)
    }

    pub fn status(status: u16, headers: &[(&str, &str)], body: Value) -> Reply {
        Reply::Json(
            status,
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body,
        )
    }

    pub fn after(self, delay: Duration) -> Reply {
        Reply::Slow(delay, Box::new(self))
    }
}

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A running fake server; stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    /// Answers request `k` with `script[k]`, and every later one with the last reply.
    pub fn script(script: Vec<Reply>) -> Self {
        assert!(!script.is_empty(), "a script needs a reply");
        Self::with(move |_, k| script[k.min(script.len() - 1)].clone())
    }

    /// Answers each request with `handler(request, its index)`.
    pub fn with(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (seen, connections, stop) = (seen.clone(), connections.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (seen, handler) = (seen.clone(), handler.clone());
                    std::thread::spawn(move || serve(stream, &seen, &*handler));
                }
            })
        };
        FakeServer {
            addr,
            seen,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the `base_url` of both dialects.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The requests answered so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the requests of one connection (keep-alive) until the client closes it.
fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let Some(request) = read_request(&mut reader) else {
            return;
        };
        let index = {
            let mut seen = seen.lock().unwrap();
            seen.push(request.clone());
            seen.len() - 1
        };
        let reply = handler(&request, index);
        if write_reply(&mut out, reply).is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Seen> {
    let request = crate::fake_http::read_request(reader)?;
    Some(Seen {
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
    })
}

fn write_reply(out: &mut TcpStream, reply: Reply) -> std::io::Result<()> {
    let (status, headers, body, kind) = match reply {
        Reply::Stalled(events, stall) => {
            // No length: the body ends when the connection closes.
            let body: String = events.iter().map(|e| format!("{e}\n\n")).collect();
            out.write_all(
                format!("HTTP/1.1 200 X\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}")
                    .as_bytes(),
            )?;
            out.flush()?;
            std::thread::sleep(stall);
            return Err(std::io::Error::other("stalled"));
        }
        Reply::Slow(delay, reply) => {
            std::thread::sleep(delay);
            return write_reply(out, *reply);
        }
        Reply::Json(status, headers, body) => {
            (status, headers, body.to_string(), "application/json")
        }
        Reply::Raw(status, body) => (status, Vec::new(), body, "application/json"),
        Reply::Sse(events) => {
            let body: String = events.iter().map(|e| format!("{e}\n\n")).collect();
            (200, Vec::new(), body, "text/event-stream")
        }
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

// --- OpenAI Chat Completions ---

/// A completion answering `text`, with these token counts.
pub fn openai_text(text: &str, input: u64, output: u64) -> Value {
    openai_message(
        json!({"role": "assistant", "content": text}),
        "stop",
        input,
        output,
    )
}

/// A completion whose message is `message`, ending with `finish`.
pub fn openai_message(message: Value, finish: &str, input: u64, output: u64) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "fake-gpt",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    })
}

/// A completion calling one tool with `arguments` (as the model wrote them).
pub fn openai_tool_call(id: &str, name: &str, arguments: &str) -> Value {
    openai_message(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ]}),
        "tool_calls",
        20,
        10,
    )
}

/// `text` streamed in pieces, then usage, then `[DONE]`.
pub fn openai_stream(pieces: &[&str], input: u64, output: u64) -> Reply {
    let mut events: Vec<String> = pieces
        .iter()
        .map(|p| {
            format!(
                "data: {}",
                json!({"id": "c", "model": "fake-gpt", "choices": [{"index": 0, "delta": {"content": p}}]})
            )
        })
        .collect();
    events.push(format!(
        "data: {}",
        json!({"id": "c", "model": "fake-gpt", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    events.push(format!(
        "data: {}",
        json!({"id": "c", "model": "fake-gpt", "choices": [],
               "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}})
    ));
    events.push("data: [DONE]".into());
    Reply::Sse(events)
}

// --- Anthropic Messages ---

/// A message answering `text`.
pub fn anthropic_text(text: &str, input: u64, output: u64) -> Value {
    anthropic_message(
        json!([{"type": "text", "text": text}]),
        "end_turn",
        input,
        output,
    )
}

pub fn anthropic_message(content: Value, stop: &str, input: u64, output: u64) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "fake-claude",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": output},
    })
}

/// A message calling one tool with `input`.
pub fn anthropic_tool_use(id: &str, name: &str, input: Value) -> Value {
    anthropic_message(
        json!([{"type": "tool_use", "id": id, "name": name, "input": input}]),
        "tool_use",
        20,
        10,
    )
}

/// `text` streamed in pieces as Anthropic sends it.
pub fn anthropic_stream(pieces: &[&str], input: u64, output: u64) -> Reply {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}");
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "fake-claude", "content": [], "stop_reason": null,
                "usage": {"input_tokens": input, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for p in pieces {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": output}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    Reply::Sse(events)
}

/// The text of the last user message of a request in either dialect (for handlers that
/// answer according to the prompt).
pub fn last_user_text(seen: &Seen) -> String {
    let messages = seen.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    match last.map(|m| &m["content"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}
