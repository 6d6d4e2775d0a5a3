//! The network layer against a scripted server on loopback: `127.0.0.1` and `localhost` are
//! the same server but two hosts, which is what redirects across hosts need.

use super::*;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// A request as the server saw it.
#[derive(Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

/// Serves one scripted response per connection, in order, and reports each request.
fn server(responses: Vec<String>) -> (u16, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for response in responses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (n, v) = h.split_once(':').unwrap();
                let (n, v) = (n.to_ascii_lowercase(), v.trim().to_string());
                if n == "content-length" {
                    length = v.parse().unwrap();
                }
                headers.push((n, v));
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = tx.send(Seen {
                line: line.trim_end().into(),
                headers,
            });
            let mut stream = stream;
            let _ = stream.write_all(response.replace("{port}", &port.to_string()).as_bytes());
        }
    });
    (port, rx)
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Test: yes\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn redirect(status: u16, to: &str) -> String {
    format!(
        "HTTP/1.1 {status} Moved\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn get(url: &str) -> Request {
    Request {
        method: "GET".into(),
        url: url.into(),
        follow_redirects: MAX_REDIRECTS,
        max_response_bytes: 1 << 20,
        timeout: Some(Duration::from_secs(10)),
        ..Request::default()
    }
}

fn only(hosts: &[&str]) -> Net {
    Net::new(HostRules::new(vec![
        hosts
            .iter()
            .map(|h| crate::policy::host_matcher(h).unwrap())
            .collect(),
    ]))
}

#[test]
fn a_response_keeps_status_lowercased_headers_and_body() {
    let (port, _seen) = server(vec![ok("hello")]);
    let r = Net::default()
        .send(&get(&format!("http://127.0.0.1:{port}/x")))
        .unwrap();
    assert_eq!(r.head.status, 200);
    assert_eq!(r.head.header("x-test"), Some("yes"));
    assert_eq!(r.body.kept, b"hello");
    assert_eq!(r.body.bytes, 5);
    assert!(!r.body.truncated());
    assert_eq!(r.head.final_url, format!("http://127.0.0.1:{port}/x"));
}

#[test]
fn a_redirect_to_a_host_outside_hosts_is_denied_before_it_is_reached() {
    let (port, seen) = server(vec![
        redirect(302, "http://localhost:{port}/secret"),
        ok("x"),
    ]);
    let err = only(&["127.0.0.1"])
        .send(&get(&format!("http://127.0.0.1:{port}/start")))
        .unwrap_err();
    assert!(matches!(err, NetError::Denied(_)), "{err:?}");
    assert!(err.to_string().contains("localhost"), "{err}");
    assert_eq!(seen.recv().unwrap().line, "GET /start HTTP/1.1");
    assert!(
        seen.recv_timeout(Duration::from_millis(300)).is_err(),
        "the denied hop was requested"
    );
}

#[test]
fn credentials_are_dropped_when_a_redirect_leaves_the_host() {
    let (port, seen) = server(vec![
        redirect(307, "/same"),
        redirect(302, "http://localhost:{port}/other"),
        ok("done"),
    ]);
    let mut request = get(&format!("http://127.0.0.1:{port}/start"));
    request.headers = vec![
        ("Authorization".into(), "Bearer k".into()),
        ("Cookie".into(), "s=1".into()),
        ("X-Keep".into(), "1".into()),
    ];
    let r = Net::default().send(&request).unwrap();
    assert_eq!(r.body.kept, b"done");
    assert_eq!(r.head.hops.len(), 2);
    assert_eq!(r.head.final_url, format!("http://localhost:{port}/other"));
    let first = seen.recv().unwrap();
    let same = seen.recv().unwrap();
    let other = seen.recv().unwrap();
    let has = |s: &Seen, n: &str| s.headers.iter().any(|(h, _)| h == n);
    assert!(has(&first, "authorization") && has(&same, "authorization"));
    assert!(has(&same, "cookie"));
    assert!(!has(&other, "authorization") && !has(&other, "cookie"));
    assert!(has(&other, "x-keep"));
}

#[test]
fn redirects_are_not_followed_without_leave_and_stop_at_the_limit() {
    let (port, _seen) = server(vec![redirect(302, "/next")]);
    let mut request = get(&format!("http://127.0.0.1:{port}/"));
    request.follow_redirects = 0;
    let r = Net::default().send(&request).unwrap();
    assert_eq!(r.head.status, 302);

    let (port, _seen) = server(vec![redirect(302, "/a"), redirect(302, "/b")]);
    let mut request = get(&format!("http://127.0.0.1:{port}/"));
    request.follow_redirects = 1;
    let err = Net::default().send(&request).unwrap_err();
    assert!(matches!(err, NetError::TooManyRedirects(1)), "{err:?}");
}

#[test]
fn a_303_becomes_a_get_without_a_body() {
    let (port, seen) = server(vec![redirect(303, "/result"), ok("r")]);
    let mut request = get(&format!("http://127.0.0.1:{port}/post"));
    request.method = "POST".into();
    request.body = Some(b"payload".to_vec());
    request.headers = vec![("Content-Type".into(), "text/plain".into())];
    Net::default().send(&request).unwrap();
    assert_eq!(seen.recv().unwrap().line, "POST /post HTTP/1.1");
    let second = seen.recv().unwrap();
    assert_eq!(second.line, "GET /result HTTP/1.1");
    assert!(!second.headers.iter().any(|(n, _)| n == "content-type"));
}

#[test]
fn a_body_past_the_cap_keeps_its_size_and_digest() {
    let big = "a".repeat(100_000);
    let (port, _seen) = server(vec![ok(&big)]);
    let mut request = get(&format!("http://127.0.0.1:{port}/"));
    request.max_response_bytes = 1000;
    let r = Net::default().send(&request).unwrap();
    assert_eq!(r.body.kept.len(), 1000);
    assert_eq!(r.body.bytes, 100_000);
    assert_eq!(
        r.body.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(big.as_bytes())).as_str())
    );
}

#[test]
fn headers_past_the_limit_are_refused_with_the_limit_named() {
    let huge = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "b".repeat(MAX_HEADER_BYTES + 10)
    );
    let (port, _seen) = server(vec![huge]);
    let err = Net::default()
        .send(&get(&format!("http://127.0.0.1:{port}/")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the response's headers are larger than 64 KiB",
        "{err:?}"
    );
}

#[test]
fn a_server_that_does_not_answer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut request = get(&format!("http://127.0.0.1:{port}/"));
    request.timeout = Some(Duration::from_millis(200));
    let err = Net::default().send(&request).unwrap_err();
    assert!(matches!(err, NetError::Timeout(_)), "{err:?}");
    drop(listener);
}

#[test]
fn a_refused_first_url_is_never_connected_to() {
    let (port, seen) = server(vec![ok("x")]);
    let err = only(&["api.example.com"])
        .send(&get(&format!("http://127.0.0.1:{port}/")))
        .unwrap_err();
    assert!(matches!(err, NetError::Denied(_)));
    assert!(seen.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn a_ca_bundle_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let mut request = get("https://127.0.0.1:1/");
    request.ca_bundle = Some(path);
    let err = Net::default().send(&request).unwrap_err();
    assert!(matches!(err, NetError::CaBundle { .. }), "{err:?}");
}
