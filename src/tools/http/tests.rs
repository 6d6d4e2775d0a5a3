//! The `http` tool's reading of its arguments, its output and what it masks. Live exchanges
//! are tested in `net/tests.rs` and `tests/http.rs`.

use super::*;
use crate::net::{Body, Head, Hop};
use crate::policy::effective::{Effective, Reason};
use crate::syntax::diag::WorkflowError;
use crate::tools::testing::args;
use serde_json::json;

fn plan(with: Value) -> Result<Plan, String> {
    Plan::read(&args(with), None)
}

#[test]
fn the_url_is_checked_against_hosts() {
    let policy = Effective::of_workflow("preset: permissive\nhosts: [\"*.example.com\"]\n");
    let allowed = args(json!({ "url": "https://api.example.com/v1/x" }));
    let denied = args(json!({ "url": "https://evil.test/" }));
    assert_eq!(
        Http.resources(&allowed),
        [Resource::Url("https://api.example.com/v1/x")]
    );
    assert_eq!(policy.check(&Http.resources(&allowed)[0]).1, Ok(()));
    let (check, verdict) = policy.check(&Http.resources(&denied)[0]);
    assert_eq!(check.name(), "host");
    assert_eq!(verdict.unwrap_err().reason, Reason::HostNotPermitted);
}

#[test]
fn a_ca_bundle_is_a_file_the_call_reads() {
    let with = args(json!({ "url": "https://a.test/", "ca_bundle": "certs/ca.pem" }));
    assert_eq!(
        Http.resources(&with),
        [
            Resource::Url("https://a.test/"),
            Resource::Read("certs/ca.pem")
        ]
    );
}

#[test]
fn defaults_are_a_get_following_ten_redirects_keeping_a_mebibyte_expecting_2xx() {
    let p = plan(json!({ "url": "http://a.test/" })).unwrap();
    assert_eq!(p.request.method, "GET");
    assert_eq!(p.request.follow_redirects, 10);
    assert_eq!(p.request.max_response_bytes, 1 << 20);
    assert_eq!(p.request.body, None);
    assert_eq!(p.request.timeout, None);
    assert_eq!(p.expect, [StatusRule::Class(2)]);
}

#[test]
fn query_parameters_are_appended_url_encoded_before_the_fragment() {
    let p = plan(json!({
        "url": "http://a.test/s?x=1#top",
        "query": { "q": "a b&c/é", "n": 3, "tag": ["x", "y"], "skip": null }
    }))
    .unwrap();
    assert_eq!(
        p.request.url,
        "http://a.test/s?x=1&n=3&q=a%20b%26c%2F%C3%A9&tag=x&tag=y#top"
    );
    assert_eq!(with_query("http://a.test/", "a=1"), "http://a.test/?a=1");
    assert_eq!(with_query("http://a.test/?", "a=1"), "http://a.test/?a=1");
}

#[test]
fn bodies_get_their_content_type_unless_one_is_given() {
    let p =
        plan(json!({ "url": "http://a.test/", "method": "post", "json": { "a": [1] } })).unwrap();
    assert_eq!(p.request.method, "POST");
    assert_eq!(p.request.body.as_deref(), Some(&br#"{"a":[1]}"#[..]));
    assert_eq!(
        p.request.headers,
        [("content-type".to_string(), "application/json".to_string())]
    );
    let p = plan(json!({ "url": "http://a.test/", "form": { "a": "1 2", "b": true } })).unwrap();
    assert_eq!(p.request.body.as_deref(), Some(&b"a=1%202&b=true"[..]));
    assert_eq!(p.request.headers[0].1, "application/x-www-form-urlencoded");
    let p = plan(json!({
        "url": "http://a.test/",
        "body": "<x/>",
        "headers": { "Content-Type": "application/xml" }
    }))
    .unwrap();
    assert_eq!(p.request.body.as_deref(), Some(&b"<x/>"[..]));
    assert_eq!(
        p.request.headers,
        [("Content-Type".to_string(), "application/xml".to_string())]
    );
}

#[test]
fn the_shorter_of_the_call_timeout_and_the_node_timeout_applies() {
    let with = args(json!({ "url": "http://a.test/", "timeout": "2s" }));
    let p = Plan::read(&with, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(p.request.timeout, Some(Duration::from_secs(2)));
    let p = Plan::read(&with, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(p.request.timeout, Some(Duration::from_secs(1)));
}

#[test]
fn follow_redirects_takes_a_bool_or_a_count_up_to_ten() {
    for (value, n) in [
        (json!(true), 10),
        (json!(false), 0),
        (json!(3), 3),
        (json!("4"), 4),
    ] {
        let p = plan(json!({ "url": "http://a.test/", "follow_redirects": value })).unwrap();
        assert_eq!(p.request.follow_redirects, n, "{value}");
    }
    for value in [json!(11), json!(-1), json!("many"), json!([1])] {
        let e = plan(json!({ "url": "http://a.test/", "follow_redirects": value })).unwrap_err();
        assert!(e.starts_with("`follow_redirects` must be"), "{e}");
    }
}

#[test]
fn expect_status_takes_statuses_classes_any_and_lists() {
    use StatusRule::*;
    assert_eq!(expect(&json!(404)).unwrap(), [Exact(404)]);
    assert_eq!(expect(&json!("4XX")).unwrap(), [Class(4)]);
    assert_eq!(expect(&json!("any")).unwrap(), [Any]);
    assert_eq!(
        expect(&json!([200, "3xx", "404"])).unwrap(),
        [Exact(200), Class(3), Exact(404)]
    );
    for bad in [
        json!(99),
        json!(600),
        json!("6xx"),
        json!("20x"),
        json!([]),
        json!([200, true]),
        json!({}),
    ] {
        assert!(expect(&bad).is_err(), "{bad}");
    }
    assert!(Class(2).allows(204) && !Class(2).allows(301) && Any.allows(599));
}

#[test]
fn bad_values_are_refused_with_the_key() {
    for (with, start) in [
        (
            json!({ "url": "ftp://a.test/" }),
            "`url` `ftp://a.test/` is not http",
        ),
        (
            json!({ "url": "http://a.test/", "method": "GE T" }),
            "`method` is not",
        ),
        (
            json!({ "url": "http://a.test/", "headers": ["a"] }),
            "`headers` must be a mapping",
        ),
        (
            json!({ "url": "http://a.test/", "headers": { "a b": "x" } }),
            "`headers` has a header name",
        ),
        (
            json!({ "url": "http://a.test/", "headers": { "x": "a\r\nEvil: 1" } }),
            "`headers` `x` has a line break",
        ),
        (
            json!({ "url": "http://a.test/", "body": { "a": 1 } }),
            "`body` is sent as text",
        ),
        (
            json!({ "url": "http://a.test/", "max_response_bytes": 0 }),
            "`max_response_bytes` must be",
        ),
        (
            json!({ "url": "http://a.test/", "max_response_bytes": (64u64 << 20) + 1 }),
            "`max_response_bytes` must be",
        ),
        (
            json!({ "url": "http://a.test/", "json": 1, "form": {} }),
            "takes only one of `json`, `body`, `form`",
        ),
        (
            json!({ "url": "http://a.test/", "query": { "a": { "b": 1 } } }),
            "`query` `a` must",
        ),
    ] {
        let e = plan(with.clone()).unwrap_err();
        assert!(e.starts_with(start), "{with}: {e}");
    }
}

/// The problems `check_with` finds in a `with:` given as JSON (each entry a line of YAML),
/// as (the text the error points at, its message).
fn checked(entries: &[(&str, &Value)]) -> Vec<(String, String)> {
    let text: String = entries.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    let node = crate::syntax::yaml::parse(&text).unwrap();
    let crate::syntax::yaml::Value::Map(with) = &node.value else {
        panic!("a mapping")
    };
    let mut errors = Vec::new();
    Http.check_with(with, &mut errors);
    errors
        .into_iter()
        .map(|e| match e {
            WorkflowError::InvalidValue { message, span, .. } => {
                let (at, len) = (span.offset(), span.len());
                (text[at..at + len].to_string(), message)
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn check_with_points_at_the_value_or_the_second_body() {
    let problems = checked(&[
        ("url", &json!("http://a.test/")),
        ("expect_status", &json!(700)),
        ("json", &json!(1)),
        ("body", &json!("x")),
    ]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].0, "700");
    assert_eq!(problems[1].0, "body");
    assert!(problems[1].1.contains("only one of"), "{}", problems[1].1);
    assert!(
        checked(&[
            ("url", &json!("{{ inputs.url }}")),
            ("expect_status", &json!("{{ inputs.status }}"))
        ])
        .is_empty()
    );
}

/// The workflow's text is recorded (`RunStart.workflow_source`): a credential written in it
/// would be in the ledger whatever the call records.
#[test]
fn credentials_written_in_the_workflow_are_refused() {
    for (key, value) in [
        ("headers", json!({ "Authorization": "Bearer abc" })),
        (
            "headers",
            json!({ "Accept": "{{ inputs.a }}", "X-Api-Key": "k" }),
        ),
        ("query", json!({ "api_key": "k" })),
        ("form", json!({ "password": 1234 })),
        ("url", json!("https://u:p@a.test/")),
        ("url", json!("https://a.test/?token=t")),
    ] {
        let problems = checked(&[(key, &value)]);
        assert_eq!(problems.len(), 1, "{key}: {value}");
        assert!(problems[0].1.contains("`secrets`"), "{}", problems[0].1);
    }
    for (key, value) in [
        (
            "headers",
            json!({ "Authorization": "Bearer {{ inputs.token }}" }),
        ),
        ("headers", json!({ "Accept": "text/plain" })),
        ("query", json!({ "api_key": null })),
        ("url", json!("https://a.test/?q={{ inputs.q }}")),
    ] {
        assert!(checked(&[(key, &value)]).is_empty(), "{key}: {value}");
    }
}

#[test]
fn credentials_are_masked_in_the_recorded_arguments() {
    let mut with = args(json!({
        "url": "https://user:pw@a.test/x?api_key=k1&q=1",
        "headers": { "Authorization": "Bearer s3", "X-Api-Key": "k2", "Accept": "text/plain" },
        "query": { "access_token": "t", "page": 2 },
        "form": { "password": "p", "name": "n" },
        "json": { "token": "stays: json bodies are data; secrets: masks them" }
    }));
    assert_eq!(Http.conceal(&mut with), 6);
    assert_eq!(
        Value::Object(with.clone()),
        json!({
            "url": "https://user:[REDACTED]@a.test/x?api_key=[REDACTED]&q=1",
            "headers": { "Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]", "Accept": "text/plain" },
            "query": { "access_token": "[REDACTED]", "page": 2 },
            "form": { "password": "[REDACTED]", "name": "n" },
            "json": { "token": "stays: json bodies are data; secrets: masks them" }
        })
    );
    assert_eq!(Http.conceal(&mut with), 0, "masking twice changes nothing");
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
    Response {
        head: Head {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            final_url: "http://b.test/end?token=t".into(),
            hops: vec![Hop {
                status: 302,
                location: "http://b.test/end?token=t".into(),
            }],
        },
        body: Body {
            kept: body.to_vec(),
            bytes: body.len() as u64,
            sha256: None,
        },
    }
}

#[test]
fn the_output_has_status_headers_body_json_and_where_it_ended() {
    let r = response(
        200,
        &[
            ("content-type", "application/json"),
            ("vary", "a"),
            ("vary", "b"),
            ("set-cookie", "sid=1"),
        ],
        br#"{"ok":true}"#,
    );
    let p = plan(json!({ "url": "http://a.test/" })).unwrap();
    let o = p.outcome(&r);
    assert_eq!(o.error, None);
    assert_eq!(
        o.output,
        json!({
            "status": 200,
            "headers": { "content-type": "application/json", "vary": "a, b", "set-cookie": "[REDACTED]" },
            "body": "{\"ok\":true}",
            "json": { "ok": true },
            "final_url": "http://b.test/end?token=[REDACTED]",
            "redirects": [{ "status": 302, "location": "http://b.test/end?token=[REDACTED]" }],
        })
    );
}

#[test]
fn an_unexpected_status_fails_with_the_response_kept() {
    let r = response(404, &[], b"not json");
    let p = plan(json!({ "url": "http://a.test/" })).unwrap();
    let o = p.outcome(&r);
    assert_eq!(
        o.error.as_deref(),
        Some("status 404, expected 2xx (`expect_status`)")
    );
    assert_eq!(o.output["status"], 404);
    assert_eq!(o.output["json"], Value::Null);
    let p = plan(json!({ "url": "http://a.test/", "expect_status": [200, 404] })).unwrap();
    assert_eq!(p.outcome(&r).error, None);
}

#[test]
fn a_truncated_body_keeps_its_size_and_digest_and_no_json() {
    let mut r = response(200, &[], b"[1,");
    r.body.bytes = 10;
    r.body.sha256 = Some("ab".repeat(32));
    let o = plan(json!({ "url": "http://a.test/" }))
        .unwrap()
        .outcome(&r);
    assert_eq!(o.output["body"], "[1,");
    assert_eq!(o.output["json"], Value::Null);
    assert_eq!(o.output["body_bytes"], 10);
    assert_eq!(o.output["body_sha256"], "ab".repeat(32));
}

#[test]
fn urls_quoted_in_errors_have_their_credentials_masked() {
    assert_eq!(
        mask_quoted("host of `http://b.test/cb?access_token=t&x=1` is not permitted"),
        "host of `http://b.test/cb?access_token=[REDACTED]&x=1` is not permitted"
    );
    assert_eq!(mask_quoted("no url here"), "no url here");
}
