//! The `http` tool: one HTTP request through the run's network access (`net/`), which checks
//! the URL and every redirect hop against `hosts`. The call's arguments are read into a
//! [`Plan`] (the same reading checks a `with:` written without templates before the run), sent,
//! and the response becomes the output; a status the call does not expect fails the node with
//! the response still recorded. Credential values are masked in what the ledger records of the
//! request (docs/tools.md, "http").

use super::{
    Args, CAPTURE_LIMIT, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, open,
    str_arg,
};
use crate::net::{self, MASK, NetError, Request, Response, Target, is_credential, mask_url};
use crate::policy::Capability;
use crate::policy::paths::Access;
use crate::syntax::diag::{WorkflowError, ss};
use crate::syntax::duration;
use crate::syntax::yaml;
use crate::workflow::expr::has_template;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// An HTTP request.
pub struct Http;

/// `max_response_bytes` accepted at most: the kept body is held in memory and recorded.
pub const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// The keys that give a request body; at most one of them.
const BODY_KEYS: [&str; 3] = ["json", "body", "form"];

static HTTP: ToolSpec = ToolSpec {
    name: "http",
    summary: "makes an HTTP request",
    keys: &[
        key(
            "method",
            KeyKind::Template,
            false,
            "GET (default), POST, PUT, PATCH, DELETE, HEAD, ...",
        ),
        key("url", KeyKind::Template, true, "http:// or https:// URL"),
        key(
            "query",
            KeyKind::Value,
            false,
            "mapping of parameters appended to the URL, URL-encoded",
        ),
        key(
            "headers",
            KeyKind::Value,
            false,
            "mapping of header names to values",
        ),
        key("json", KeyKind::Value, false, "a value sent as JSON"),
        key("body", KeyKind::Value, false, "text sent as it is"),
        key(
            "form",
            KeyKind::Value,
            false,
            "mapping sent as application/x-www-form-urlencoded",
        ),
        key(
            "timeout",
            KeyKind::Duration,
            false,
            "the whole exchange, redirects and body included (default 300s)",
        ),
        key(
            "follow_redirects",
            KeyKind::Value,
            false,
            "true (default: up to 10), false, or how many to follow (0-10)",
        ),
        key(
            "expect_status",
            KeyKind::Value,
            false,
            "statuses that succeed: 200, \"2xx\" (default), [200, 404], \"any\"",
        ),
        key(
            "max_response_bytes",
            KeyKind::Value,
            false,
            "body bytes kept (default 1 MiB, at most 64 MiB); past it, size and SHA-256",
        ),
        key(
            "ca_bundle",
            KeyKind::Template,
            false,
            "PEM file of extra trusted CA certificates",
        ),
    ],
    one_of: &[],
    capabilities: &[Capability::Net],
};

impl Tool for Http {
    fn spec(&self) -> &'static ToolSpec {
        &HTTP
    }

    fn placement(&self) -> Placement {
        Placement::Network
    }

    fn resources<'a>(&self, args: &'a Args) -> Vec<Resource<'a>> {
        let mut touched = vec![Resource::Url(str_arg(args, "url").unwrap_or_default())];
        // The bundle is a file the call reads: `paths.read` applies to it.
        if let Some(bundle) = str_arg(args, "ca_bundle") {
            touched.push(Resource::Read(bundle));
        }
        touched
    }

    fn call(&self, args: &Args, cx: &mut CallCx<'_>) -> Outcome {
        let plan = match Plan::read(args, cx.timeout) {
            Ok(plan) => plan,
            Err(e) => return Outcome::failed(e),
        };
        if let Some(bundle) = &plan.request.ca_bundle {
            // Checked again as it is opened, as `file.read` does; a link swapped in after the
            // gate's check fails here.
            let path = bundle.to_string_lossy();
            if let Err(e) = open::open_read(&path, cx.paths) {
                return Outcome::failed(format!("`ca_bundle`: {}", e.message(Access::Read, &path)));
            }
        }
        match cx.net.send(&plan.request) {
            Ok(response) => plan.outcome(&response),
            Err(e) => Outcome::failed(failure(&plan.request, e)),
        }
    }

    fn check_with(&self, with: &[(yaml::Node, yaml::Node)], errors: &mut Vec<WorkflowError>) {
        let invalid = |span: yaml::Span, message: String| WorkflowError::InvalidValue {
            message,
            span: ss(span),
            label: "invalid argument".into(),
            help: Some("see docs/tools.md, \"http\"".into()),
        };
        let mut bodies: Vec<(String, yaml::Span)> = Vec::new();
        for (k, v) in with {
            let key = k.scalar_text();
            let value = v.to_json();
            let text = serde_json::to_string(&value).unwrap_or_default();
            // A `timeout` that is not a duration is reported by the check of the key's kind.
            let reported =
                key == "timeout" && value.as_str().is_some_and(|t| duration::check(t).is_err());
            if !has_template(&text)
                && !reported
                && let Err(e) = check(&key, &value)
            {
                errors.push(invalid(v.span, e));
            } else if let Some(name) = literal_credential(&key, &value) {
                errors.push(invalid(v.span, format!(
                    "`{key}` gives `{name}` a value written in the workflow: the workflow's text is \
                     recorded in the ledger, so a credential must come from an input or a node \
                     (`{{{{ inputs.NAME }}}}`) and be listed under the policy's `secrets` \
                     (docs/tools.md, \"Credentials are not recorded\")"
                )));
            }
            if BODY_KEYS.contains(&key.as_str()) {
                bodies.push((key, k.span));
            }
        }
        if let [_, (_, second), ..] = bodies[..] {
            let given: Vec<&str> = bodies.iter().map(|(k, _)| k.as_str()).collect();
            errors.push(invalid(
                second,
                format!(
                    "tool `http` takes only one of `json`, `body`, `form` (given: {})",
                    given.join(", ")
                ),
            ));
        }
    }

    fn conceal(&self, args: &mut Args) -> usize {
        let mut masked = 0;
        for key in ["headers", "query", "form"] {
            if let Some(Value::Object(map)) = args.get_mut(key) {
                masked += crate::net::mask_credentials(map);
            }
        }
        if let Some(Value::String(url)) = args.get_mut("url") {
            let (text, n) = mask_url(url);
            *url = text;
            masked += n;
        }
        masked
    }
}

/// The name of a credential given a value written in the workflow without a template: a
/// header, query or form entry [`is_credential`] names, or a password or credential parameter
/// in the URL.
fn literal_credential(key: &str, value: &Value) -> Option<String> {
    let written = |v: &Value| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty() && !has_template(s),
        other => !has_template(&other.to_string()),
    };
    match (key, value) {
        ("headers" | "query" | "form", Value::Object(map)) => map
            .iter()
            .find(|(name, v)| is_credential(name) && written(v))
            .map(|(name, _)| name.clone()),
        ("url", Value::String(url)) if !has_template(url) && mask_url(url).1 > 0 => {
            Some("a credential in the URL".into())
        }
        _ => None,
    }
}

/// A call read from its arguments: the request, and the statuses that succeed.
#[derive(Debug)]
struct Plan {
    request: Request,
    expect: Vec<StatusRule>,
}

impl Plan {
    /// Reads the rendered arguments; `node_timeout` bounds the request's own `timeout`.
    fn read(args: &Args, node_timeout: Option<Duration>) -> Result<Plan, String> {
        for key in args.keys() {
            check(key, &args[key])?;
        }
        let given: Vec<&str> = BODY_KEYS
            .into_iter()
            .filter(|k| args.contains_key(*k))
            .collect();
        if given.len() > 1 {
            return Err(format!(
                "takes only one of `json`, `body`, `form` (given: {})",
                given.join(", ")
            ));
        }
        let mut headers = args
            .get("headers")
            .map(pairs)
            .transpose()?
            .unwrap_or_default();
        let has_type = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        let (body, content_type) = match (args.get("json"), args.get("body"), args.get("form")) {
            (Some(v), _, _) => (
                serde_json::to_vec(v).map_err(|e| format!("`json`: {e}"))?,
                "application/json",
            ),
            (_, Some(v), _) => (
                v.as_str().unwrap_or_default().as_bytes().to_vec(),
                "text/plain; charset=utf-8",
            ),
            (_, _, Some(v)) => (
                encode_pairs(&pairs(v)?).into_bytes(),
                "application/x-www-form-urlencoded",
            ),
            _ => (Vec::new(), ""),
        };
        let has_body = given.len() == 1;
        if has_body && !has_type {
            headers.push(("content-type".into(), content_type.into()));
        }
        let mut url = str_arg(args, "url").unwrap_or_default().to_string();
        if let Some(query) = args.get("query") {
            url = with_query(&url, &encode_pairs(&pairs(query)?));
        }
        let own = args
            .get("timeout")
            .and_then(Value::as_str)
            .and_then(duration::parse);
        let timeout = match (own, node_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Plan {
            request: Request {
                method: args
                    .get("method")
                    .map_or(Ok("GET".into()), method)?
                    .to_string(),
                url,
                headers,
                body: has_body.then_some(body),
                timeout,
                follow_redirects: args
                    .get("follow_redirects")
                    .map_or(Ok(net::MAX_REDIRECTS), redirects)?,
                max_response_bytes: args
                    .get("max_response_bytes")
                    .map_or(Ok(CAPTURE_LIMIT as u64), max_bytes)?
                    as usize,
                ca_bundle: str_arg(args, "ca_bundle").map(PathBuf::from),
            },
            expect: args
                .get("expect_status")
                .map_or(Ok(vec![StatusRule::Class(2)]), expect)?,
        })
    }

    /// The outcome of a response: its output, and a failure when its status is not expected.
    fn outcome(&self, response: &Response) -> Outcome {
        let output = output(response);
        let status = response.head.status;
        if self.expect.iter().any(|r| r.allows(status)) {
            return Outcome::value(output);
        }
        let wanted: Vec<String> = self.expect.iter().map(StatusRule::to_string).collect();
        Outcome {
            output,
            error: Some(format!(
                "status {status}, expected {} (`expect_status`)",
                wanted.join(" or ")
            )),
            ..Outcome::default()
        }
    }
}

/// The output of a response: `{status, headers, body, json, final_url, redirects}`, and
/// `body_bytes` and `body_sha256` when the body outgrew `max_response_bytes`.
fn output(response: &Response) -> Value {
    let mut headers = Map::new();
    for (name, value) in &response.head.headers {
        let value = if is_credential(name) { MASK } else { value };
        match headers.get_mut(name) {
            // A repeated header is one field whose values are joined (RFC 9110, 5.3).
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.to_string()));
            }
        }
    }
    let body = &response.body;
    let json = if body.truncated() {
        Value::Null
    } else {
        serde_json::from_slice(&body.kept).unwrap_or(Value::Null)
    };
    let redirects: Vec<Value> = response
        .head
        .hops
        .iter()
        .map(|h| json!({ "status": h.status, "location": mask_url(&h.location).0 }))
        .collect();
    let mut out = json!({
        "status": response.head.status,
        "headers": headers,
        "body": String::from_utf8_lossy(&body.kept),
        "json": json,
        "final_url": mask_url(&response.head.final_url).0,
        "redirects": redirects,
    });
    if let (Some(sha), Value::Object(map)) = (&body.sha256, &mut out) {
        map.insert("body_bytes".into(), json!(body.bytes));
        map.insert("body_sha256".into(), json!(sha));
    }
    out
}

/// A call's error for a request that got no response.
fn failure(request: &Request, error: NetError) -> String {
    let url = mask_url(&request.url).0;
    match error {
        NetError::Denied(denial) => format!(
            "{}: {} (every URL a request reaches, each redirect too, is checked against `hosts`)",
            denial.reason.as_str(),
            mask_quoted(&denial.detail)
        ),
        NetError::Timeout(after) => format!(
            "request to `{url}` timed out after {}",
            duration::format(after)
        ),
        NetError::TooManyRedirects(n) => {
            format!("request to `{url}`: more than {n} redirects (`follow_redirects`)")
        }
        NetError::BadUrl(why) => mask_quoted(&why),
        NetError::CaBundle { .. } => error.to_string(),
        NetError::Transport(why) => format!("request to `{url}` failed: {why}"),
    }
}

/// A message quoting a URL (`host of `URL` is not permitted`) with the URL's credentials
/// masked: a redirect's URL may carry a token in its query.
fn mask_quoted(message: &str) -> String {
    match message
        .split_once('`')
        .and_then(|(pre, rest)| rest.rsplit_once('`').map(|(url, post)| (pre, url, post)))
    {
        Some((pre, url, post)) => format!("{pre}`{}`{post}", mask_url(url).0),
        None => message.to_string(),
    }
}

/// Checks one argument's value (any key the tool knows; others pass).
fn check(key: &str, value: &Value) -> Result<(), String> {
    let checked = match key {
        "method" => method(value).map(drop),
        "url" => match value.as_str() {
            Some(url) => Target::parse(url).map(drop).map_err(|e| e.to_string()),
            None => Err("must be a string".into()),
        },
        "query" | "form" => pairs(value).map(drop),
        "headers" => pairs(value).and_then(|h| h.iter().try_for_each(|(n, v)| header(n, v))),
        "body" => match value {
            Value::String(_) => Ok(()),
            _ => Err("is sent as text: give a string (`json` sends a value as JSON)".into()),
        },
        "timeout" => match value.as_str().map(duration::check) {
            Some(Ok(limit)) if limit.is_zero() => {
                Err("is 0: the call would time out before it starts".into())
            }
            Some(Ok(_)) => Ok(()),
            _ => Err(format!("is not a duration: {value}")),
        },
        "follow_redirects" => redirects(value).map(drop),
        "expect_status" => expect(value).map(drop),
        "max_response_bytes" => max_bytes(value).map(drop),
        "ca_bundle" => match value.as_str() {
            Some(path) if !path.is_empty() => Ok(()),
            _ => Err("must be the path of a PEM file".into()),
        },
        _ => Ok(()),
    };
    checked.map_err(|e| format!("`{key}` {e}"))
}

/// A method: a token (RFC 9110, 9.1), upper-cased.
fn method(value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(m) if !m.is_empty() && m.bytes().all(is_token_byte) => Ok(m.to_ascii_uppercase()),
        _ => Err(format!("is not an HTTP method: {value}")),
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A header's name must be a token and its value a line (no CR, LF or NUL).
fn header(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("has a header name that is not a token: {name:?}"));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(format!("`{name}` has a line break or NUL in its value"));
    }
    Ok(())
}

/// A mapping of names to values: scalars as text, a list as the name repeated, null left out.
fn pairs(value: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Object(map) = value else {
        return Err(format!("must be a mapping of names to values, not {value}"));
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let items = match value {
            Value::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        for item in items {
            match item {
                Value::Null => {}
                Value::String(s) => out.push((name.clone(), s.clone())),
                Value::Bool(_) | Value::Number(_) => out.push((name.clone(), item.to_string())),
                _ => return Err(format!("`{name}` must be text, a number or a list of them")),
            }
        }
    }
    Ok(out)
}

/// `true` (the most, 10), `false` (none), or a count up to 10; a number in text is read too,
/// as a template gives one.
fn redirects(value: &Value) -> Result<u32, String> {
    let n = match value {
        Value::Bool(true) => return Ok(net::MAX_REDIRECTS),
        Value::Bool(false) => return Ok(0),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= u64::from(net::MAX_REDIRECTS) => Ok(n as u32),
        _ => Err(format!(
            "must be true, false or a count from 0 to {}, not {value}",
            net::MAX_REDIRECTS
        )),
    }
}

fn max_bytes(value: &Value) -> Result<u64, String> {
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=MAX_RESPONSE_BYTES).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a number of bytes from 1 to {MAX_RESPONSE_BYTES} (64 MiB), not {value}"
        )),
    }
}

/// Which statuses a call expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusRule {
    /// This status.
    Exact(u16),
    /// Any status of this class: 2 for `2xx`.
    Class(u16),
    /// Any status at all.
    Any,
}

impl StatusRule {
    fn allows(self, status: u16) -> bool {
        match self {
            StatusRule::Exact(s) => s == status,
            StatusRule::Class(c) => status / 100 == c,
            StatusRule::Any => true,
        }
    }
}

impl std::fmt::Display for StatusRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusRule::Exact(s) => write!(f, "{s}"),
            StatusRule::Class(c) => write!(f, "{c}xx"),
            StatusRule::Any => f.write_str("any"),
        }
    }
}

/// `expect_status`: a status, a class (`"2xx"`), `"any"`, or a non-empty list of them.
fn expect(value: &Value) -> Result<Vec<StatusRule>, String> {
    let one = |v: &Value| -> Option<StatusRule> {
        let text = match v {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.trim().to_ascii_lowercase(),
            _ => return None,
        };
        if text == "any" {
            return Some(StatusRule::Any);
        }
        if let Some(class) = text.strip_suffix("xx")
            && let Ok(c @ 1..=5) = class.parse::<u16>()
            && class.len() == 1
        {
            return Some(StatusRule::Class(c));
        }
        match text.parse::<u16>() {
            Ok(s @ 100..=599) if text.len() == 3 => Some(StatusRule::Exact(s)),
            _ => None,
        }
    };
    let items = match value {
        Value::Array(items) if !items.is_empty() => items.as_slice(),
        Value::Array(_) => &[],
        one => std::slice::from_ref(one),
    };
    let rules: Option<Vec<StatusRule>> = items.iter().map(one).collect();
    match rules {
        Some(rules) if !rules.is_empty() => Ok(rules),
        _ => Err(format!(
            "must be a status (200), a class (\"2xx\"), \"any\", or a list of them, not {value}"
        )),
    }
}

/// `name=value` pairs joined with `&`, each side percent-encoded.
fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode(name, &mut out);
        out.push('=');
        encode(value, &mut out);
    }
    out
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986, 2.3).
fn encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The URL with `query` appended to its query (before any fragment).
fn with_query(url: &str, query: &str) -> String {
    if query.is_empty() {
        return url.to_string();
    }
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let joiner = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{joiner}{query}");
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests;
