//! Per-call overhead of the `http` tool against a local keep-alive server in this process:
//! 1,000 GETs one at a time (`network.max_concurrent: 1`) and 1,000 with the network lane's
//! default concurrency, through the whole engine (policy, recording, commit), next to the same
//! 1,000 requests made with the network layer alone (`Net::send`), which is the client's own
//! cost. The server answers at once, so the numbers are kairos's and the client's overhead.
//! Numbers go into the README.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

const CALLS: usize = 1000;

/// Answers every request on every connection with a small JSON body, keeping connections open.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = "{\"ok\":true}";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if stream.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn workflow(port: u16, max_concurrent: Option<usize>) -> String {
    let items: Vec<String> = (0..CALLS).map(|i| i.to_string()).collect();
    let items = items.join(", ");
    let network = max_concurrent.map_or(String::new(), |n| {
        format!("network: {{ max_concurrent: {n} }}\n")
    });
    format!(
        "version: 1
name: bench
policy: {{ preset: restrictive, allow: [net], hosts: [\"127.0.0.1\"] }}
{network}nodes:
  - id: get
    for_each: [{items}]
    tool: http
    with: {{ url: \"http://127.0.0.1:{port}/item?i={{{{ item }}}}\" }}
"
    )
}

fn http(c: &mut Criterion) {
    let port = server();
    let mut group = c.benchmark_group("http");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CALLS as u64));
    let dir = tempfile::tempdir().unwrap();
    for (name, limit) in [("sequential", Some(1)), ("concurrent", None)] {
        let yaml = workflow(port, limit);
        let wf = kairos::workflow::load_str("bench.yaml", &yaml).expect("valid");
        let policy = kairos::policy::effective::Effective::new(kairos::plan::layers(&wf, None));
        group.bench_with_input(BenchmarkId::new("run", name), &wf, |b, wf| {
            b.iter(|| {
                let path = dir.path().join("ledger.jsonl");
                let _ = std::fs::remove_file(&path);
                let file = std::fs::File::create(&path).unwrap();
                let report =
                    kairos::engine::run(wf, &kairos::engine::RunOptions::default(), &policy, file)
                        .unwrap();
                assert_eq!(report.status, kairos::engine::RunStatus::Succeeded);
            });
        });
    }
    let net = kairos::net::Net::default();
    group.bench_function("net-send-sequential", |b| {
        b.iter(|| {
            for i in 0..CALLS {
                let request = kairos::net::Request {
                    method: "GET".into(),
                    url: format!("http://127.0.0.1:{port}/item?i={i}"),
                    follow_redirects: 10,
                    max_response_bytes: 1 << 20,
                    ..kairos::net::Request::default()
                };
                net.send(&request).unwrap();
            }
        });
    });
    group.finish();
}

criterion_group!(benches, http);
criterion_main!(benches);
