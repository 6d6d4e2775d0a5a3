//! `stream: true`: the server-sent events of a streamed completion, read as they arrive and
//! put back together into the one response the same request without streaming would have
//! returned (docs/llm.md, "Streaming"). The ledger records that response's normalised form, so
//! a streamed call and a plain one record the same thing.

use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Read};

/// Bytes of a stream read at most: past it the call fails rather than fill memory.
pub const MAX_STREAM_BYTES: u64 = 16 << 20;

/// One event: its `event:` name (if any) and its `data:` lines joined.
#[derive(Debug, PartialEq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// Reads the events of a stream to its end (or to `[DONE]`).
pub fn events(body: impl Read) -> Result<Vec<Event>, String> {
    let mut reader = BufReader::new(body.take(MAX_STREAM_BYTES + 1));
    let (mut out, mut name, mut data) = (Vec::new(), None, Vec::<String>::new());
    let mut line = String::new();
    let mut read = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the event stream: {e}"))?;
        read += n as u64;
        if read > MAX_STREAM_BYTES {
            return Err(format!(
                "the event stream is longer than {MAX_STREAM_BYTES} bytes"
            ));
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if n == 0 || text.is_empty() {
            if !data.is_empty() {
                let event = Event {
                    name: name.take(),
                    data: data.join("\n"),
                };
                if event.data == "[DONE]" {
                    break;
                }
                out.push(event);
                data.clear();
            }
            name = None;
            if n == 0 {
                break;
            }
            continue;
        }
        if text.starts_with(':') {
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_string()),
            "data" => data.push(value.to_string()),
            _ => {}
        }
    }
    Ok(out)
}

fn parse(event: &Event) -> Result<Value, String> {
    serde_json::from_str(&event.data)
        .map_err(|e| format!("a streamed event is not JSON ({e}): {}", clip(&event.data)))
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// An OpenAI Chat Completions stream as the `chat.completion` object it stands for.
pub fn openai(events: &[Event]) -> Result<Value, String> {
    let (mut id, mut model) = (Value::Null, Value::Null);
    let (mut content, mut refusal) = (None::<String>, None::<String>);
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    // Tool calls by their `index`, arguments appended as they arrive.
    let mut calls: Vec<(Value, String, String)> = Vec::new();
    for event in events {
        let chunk = parse(event)?;
        if let Some(error) = chunk.get("error") {
            return Err(format!("the stream reported an error: {error}"));
        }
        for (slot, key) in [(&mut id, "id"), (&mut model, "model")] {
            if slot.is_null() {
                *slot = chunk.get(key).cloned().unwrap_or(Value::Null);
            }
        }
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            usage = chunk["usage"].clone();
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            continue;
        };
        let delta = &choice["delta"];
        if let Some(s) = delta["content"].as_str() {
            content.get_or_insert_default().push_str(s);
        }
        if let Some(s) = delta["refusal"].as_str() {
            refusal.get_or_insert_default().push_str(s);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(calls.len() as u64) as usize;
            if index > 1024 {
                return Err("a streamed tool call has an index over 1024".into());
            }
            while calls.len() <= index {
                calls.push((Value::Null, String::new(), String::new()));
            }
            let slot = &mut calls[index];
            if let Some(v) = call.get("id").filter(|v| !v.is_null()) {
                slot.0 = v.clone();
            }
            if let Some(s) = call.pointer("/function/name").and_then(Value::as_str) {
                slot.1.push_str(s);
            }
            if let Some(s) = call.pointer("/function/arguments").and_then(Value::as_str) {
                slot.2.push_str(s);
            }
        }
        if let Some(f) = choice.get("finish_reason").filter(|f| !f.is_null()) {
            finish = f.clone();
        }
    }
    let mut message = json!({ "role": "assistant", "content": content, "refusal": refusal });
    if !calls.is_empty() {
        message["tool_calls"] = calls
            .into_iter()
            .map(|(id, name, arguments)| {
                json!({ "id": id, "type": "function",
                        "function": { "name": name, "arguments": arguments } })
            })
            .collect();
    }
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        "usage": usage,
    }))
}

/// An Anthropic Messages stream as the `message` object it stands for. A tool call's input,
/// streamed as pieces of JSON text, is parsed once whole; text that is not JSON is kept as a
/// string, which the caller reports as invalid tool arguments.
pub fn anthropic(events: &[Event]) -> Result<Value, String> {
    let mut message = Map::new();
    let mut blocks: Vec<(Value, String)> = Vec::new();
    let mut usage = Map::new();
    for event in events {
        let body = parse(event)?;
        let kind = event
            .name
            .as_deref()
            .or_else(|| body["type"].as_str())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                if let Some(m) = body["message"].as_object() {
                    message = m.clone();
                }
                merge(&mut usage, &body["message"]["usage"]);
            }
            "content_block_start" => {
                let index = index(&body)?;
                while blocks.len() <= index {
                    blocks.push((Value::Null, String::new()));
                }
                blocks[index].0 = body["content_block"].clone();
            }
            "content_block_delta" => {
                let index = index(&body)?;
                let Some((block, json)) = blocks.get_mut(index) else {
                    return Err(format!("a delta for content block {index}, never started"));
                };
                let delta = &body["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => append(block, "text", &delta["text"]),
                    Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
                    Some("input_json_delta") => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default())
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                for (k, v) in body["delta"].as_object().into_iter().flatten() {
                    message.insert(k.clone(), v.clone());
                }
                merge(&mut usage, &body["usage"]);
            }
            "error" => return Err(format!("the stream reported an error: {}", body["error"])),
            _ => {}
        }
    }
    let content: Vec<Value> = blocks
        .into_iter()
        .map(|(mut block, json)| {
            if block["type"] == "tool_use" {
                let trimmed = json.trim();
                block["input"] = if trimmed.is_empty() {
                    block.get("input").cloned().unwrap_or_else(|| json!({}))
                } else {
                    serde_json::from_str(trimmed).unwrap_or(Value::String(json))
                };
            }
            block
        })
        .collect();
    message.insert("content".into(), Value::Array(content));
    message.insert("usage".into(), Value::Object(usage));
    Ok(Value::Object(message))
}

fn index(body: &Value) -> Result<usize, String> {
    body["index"]
        .as_u64()
        .filter(|&i| i <= 1024)
        .map(|i| i as usize)
        .ok_or_else(|| format!("a streamed content block has no usable index: {body}"))
}

fn append(block: &mut Value, key: &str, piece: &Value) {
    let mut text = block[key].as_str().unwrap_or_default().to_string();
    text.push_str(piece.as_str().unwrap_or_default());
    block[key] = Value::String(text);
}

/// Usage counts reported later replace earlier ones (Anthropic sends the input tokens at the
/// start and the output tokens, cumulative, at the end).
fn merge(usage: &mut Map<String, Value>, more: &Value) {
    for (k, v) in more.as_object().into_iter().flatten() {
        if !v.is_null() {
            usage.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_on_blank_lines_and_stop_at_done() {
        let text = ": comment\nevent: a\ndata: {\"x\":\ndata: 1}\n\ndata: two\r\n\r\ndata: [DONE]\n\ndata: after\n\n";
        let got = events(text.as_bytes()).unwrap();
        assert_eq!(
            got,
            [
                Event {
                    name: Some("a".into()),
                    data: "{\"x\":\n1}".into()
                },
                Event {
                    name: None,
                    data: "two".into()
                },
            ]
        );
    }

    #[test]
    fn an_openai_stream_becomes_one_completion() {
        let text = [
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"lo","tool_calls":[{"index":0,"id":"t1","function":{"name":"get","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        ]
        .map(|d| format!("data: {d}\n\n"))
        .concat()
            + "data: [DONE]\n\n";
        let got = openai(&events(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(got["choices"][0]["message"]["content"], "Hello");
        assert_eq!(
            got["choices"][0]["message"]["tool_calls"][0]["function"],
            json!({"name": "get", "arguments": "{\"a\":1}"})
        );
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["usage"]["total_tokens"], 5);
        assert_eq!(got["model"], "m");
    }

    #[test]
    fn an_anthropic_stream_becomes_one_message() {
        let text = [
            ("message_start", r#"{"type":"message_start","message":{"id":"m1","model":"claude","role":"assistant","content":[],"stop_reason":null,"usage":{"input_tokens":7,"output_tokens":1}}}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ("ping", r#"{"type":"ping"}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"there"}}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu1","name":"get","input":{}}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":12}}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .concat();
        let got = anthropic(&events(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(got["content"][0]["text"], "Hi there");
        assert_eq!(got["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(got["stop_reason"], "tool_use");
        assert_eq!(
            got["usage"],
            json!({"input_tokens": 7, "output_tokens": 12})
        );
    }

    #[test]
    fn a_stream_error_fails_the_call() {
        let text = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n";
        let err = anthropic(&events(text.as_bytes()).unwrap()).unwrap_err();
        assert!(err.contains("overloaded_error"), "{err}");
    }
}
