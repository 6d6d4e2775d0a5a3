//! One exchange with the model's server, and its answer as an [`Outcome`]: the response read
//! whole or as a stream, a failure status turned into a recorded failure with its retry hint,
//! and the checks that fail a node on an answer it does not `allow`.

use super::{Dialect, MAX_RESPONSE_BYTES, Prepared, Reply, anthropic, openai, retry, sse};
use crate::net::NetError;
use crate::tools::{CallCx, Outcome, RetryHint};
use serde_json::{Value, json};

impl Prepared {
    /// One exchange, and its answer as an outcome.
    pub(super) fn run(self, cx: &mut CallCx<'_>) -> Outcome {
        let response = if self.stream {
            self.streamed(cx)
        } else {
            self.whole(cx)
        };
        let body = match response {
            Ok(body) => body,
            Err(outcome) => return *outcome,
        };
        let reply = match self.dialect {
            Dialect::OpenAi => openai::reply(&body),
            Dialect::Anthropic => anthropic::reply(&body, self.format.as_ref()),
        };
        match reply {
            Ok(reply) => self.outcome(reply),
            Err(why) => Outcome {
                output: json!({ "response": clip_json(&body) }),
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!("malformed response: {why}"))
            },
        }
    }

    /// The response read whole, as JSON.
    fn whole(&self, cx: &mut CallCx<'_>) -> Result<Value, Box<Outcome>> {
        let response = cx.net.send(&self.request).map_err(net_failure)?;
        let status = response.head.status;
        if !(200..300).contains(&status) {
            return Err(Box::new(http_failure(
                status,
                &response.head,
                &response.body.kept,
            )));
        }
        if response.body.truncated() {
            return Err(Box::new(Outcome {
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!(
                    "the response is longer than {MAX_RESPONSE_BYTES} bytes"
                ))
            }));
        }
        serde_json::from_slice(&response.body.kept).map_err(|e| {
            Box::new(Outcome {
                output: json!({ "status": status, "body": clip(&response.body.kept) }),
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!("malformed response: not JSON ({e})"))
            })
        })
    }

    /// The response read as server-sent events and put back together (`sse.rs`).
    fn streamed(&self, cx: &mut CallCx<'_>) -> Result<Value, Box<Outcome>> {
        let mut stream = cx.net.open(&self.request).map_err(net_failure)?;
        let status = stream.head.status;
        if !(200..300).contains(&status) {
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut stream.body, 64 * 1024),
                &mut body,
            );
            return Err(Box::new(http_failure(status, &stream.head, &body)));
        }
        let events = sse::events(&mut stream.body).map_err(|why| {
            // A stream cut short is a transport failure, worth another attempt.
            Box::new(Outcome {
                retry: Some(RetryHint::AFTER_BACKOFF),
                ..Outcome::failed(why)
            })
        })?;
        let joined = match self.dialect {
            Dialect::OpenAi => sse::openai(&events),
            Dialect::Anthropic => sse::anthropic(&events),
        };
        joined.map_err(|why| {
            Box::new(Outcome {
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(why)
            })
        })
    }

    /// The normalised output, failed where the answer is one a node must not take unless it
    /// `allow`s it.
    fn outcome(&self, reply: Reply) -> Outcome {
        let mut failures = Vec::new();
        let calls: Vec<Value> = reply
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = match c.arguments_raw.trim() {
                    "" => Some(json!({})),
                    raw => serde_json::from_str::<Value>(raw).ok(),
                };
                if arguments.is_none() {
                    failures.push((
                        "invalid_tool_arguments",
                        format!("the arguments of tool call `{}` are not JSON", c.name),
                    ));
                }
                json!({
                    "id": c.id,
                    "name": c.name,
                    "arguments": arguments,
                    "arguments_raw": c.arguments_raw,
                })
            })
            .collect();
        let parsed = match (&reply.parsed, &self.format) {
            (Some(p), _) => p.clone(),
            (None, Some(_)) if reply.refusal.is_none() => {
                match serde_json::from_str::<Value>(reply.text.trim()) {
                    Ok(v) => v,
                    Err(_) => {
                        failures.push((
                            "invalid_json",
                            "the answer to a `response_format` is not JSON".into(),
                        ));
                        Value::Null
                    }
                }
            }
            _ => Value::Null,
        };
        match reply.finish_reason.as_str() {
            "length" => failures.push((
                "length",
                "the answer was cut short at the token limit (finish_reason `length`)".into(),
            )),
            "content_filter" => failures.push((
                "content_filter",
                "the answer was withheld by a content filter (finish_reason `content_filter`)"
                    .into(),
            )),
            _ => {}
        }
        if let Some(r) = &reply.refusal {
            failures.push(("refusal", format!("the model refused: {r}")));
        }
        let mut message = json!({
            "role": "assistant",
            "content": if reply.text.is_empty() && !calls.is_empty() { Value::Null } else { reply.text.clone().into() },
        });
        if !calls.is_empty() {
            message["tool_calls"] = reply
                .tool_calls
                .iter()
                .map(|c| {
                    json!({ "id": c.id, "type": "function",
                            "function": { "name": c.name, "arguments": c.arguments_raw } })
                })
                .collect();
        }
        let output = json!({
            "text": reply.text,
            "message": message,
            "tool_calls": calls,
            "parsed": parsed,
            "finish_reason": reply.finish_reason,
            "refusal": reply.refusal,
            "usage": {
                "input_tokens": reply.usage.input_tokens,
                "output_tokens": reply.usage.output_tokens,
                "total_tokens": reply.usage.total_tokens,
            },
            "model": reply.model,
        });
        match failures
            .into_iter()
            .find(|(k, _)| !self.allow.iter().any(|a| a == k))
        {
            None => Outcome::value(output),
            Some((kind, why)) => Outcome {
                output,
                retry: Some(RetryHint::NEVER),
                ..Outcome::failed(format!(
                    "{why}; add `{kind}` to the node's `allow` to take it as an answer"
                ))
            },
        }
    }
}

/// A request that got no response.
fn net_failure(e: NetError) -> Box<Outcome> {
    let retry = if e.is_transient() {
        RetryHint::AFTER_BACKOFF
    } else {
        RetryHint::NEVER
    };
    Box::new(Outcome {
        retry: Some(retry),
        ..Outcome::failed(e.to_string())
    })
}

/// A response with a failure status: its status and error body recorded, and whether and when
/// to try again.
fn http_failure(status: u16, head: &crate::net::Head, body: &[u8]) -> Outcome {
    let hint = retry::of_status(status, head, body);
    let error = serde_json::from_slice::<Value>(body).unwrap_or_else(|_| clip(body).into());
    let message = error
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(|| clip(body), str::to_string);
    let mut output = json!({ "status": status, "error": error });
    if let Some(ms) = hint.after_ms {
        output["retry_after_ms"] = ms.into();
    }
    Outcome {
        output,
        retry: Some(hint),
        ..Outcome::failed(format!("HTTP {status}: {message}"))
    }
}

/// The first 4 KiB of a body, as text.
fn clip(body: &[u8]) -> String {
    let end = body.len().min(4096);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

fn clip_json(v: &Value) -> Value {
    let text = v.to_string();
    if text.len() <= 4096 {
        v.clone()
    } else {
        clip(text.as_bytes()).into()
    }
}
