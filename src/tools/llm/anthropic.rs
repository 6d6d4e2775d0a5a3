//! The Anthropic Messages dialect (`POST {base_url}/messages`), spoken natively: Anthropic's
//! OpenAI-compatible layer ignores `response_format`, `seed` and strict tools.
//!
//! A call's messages are written in the OpenAI form whatever the dialect (so a workflow, or an
//! agent loop feeding back `output.message`, does not change with it) and mapped here: system
//! messages become the `system` parameter, an assistant's `tool_calls` become `tool_use`
//! blocks, and `tool` messages become `tool_result` blocks of a user turn. A `response_format`
//! is a tool the model is made to call (`tool_choice: {type: tool}`), whose input is the
//! structured answer (docs/llm.md, "Structured output").

use super::{Ask, Call, Choice, Format, Reply, Usage};
use serde_json::{Value, json};

/// `max_tokens` when a call sets none: Anthropic requires one. 4096 is the largest value every
/// current Claude model accepts.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The API version sent as `anthropic-version`.
pub const VERSION: &str = "2023-06-01";

/// The name of the forced tool of a `response_format` given without one.
const FORMAT_TOOL: &str = "output";

/// The request body; `Err` when the call asks for something this dialect cannot do.
pub fn body(ask: &Ask) -> Result<Value, String> {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &ask.messages {
        match m["role"].as_str().unwrap_or_default() {
            "system" | "developer" => system.push(text_of(&m["content"])),
            "tool" => {
                let result = json!({
                    "type": "tool_result",
                    "tool_use_id": m["tool_call_id"],
                    "content": text_of(&m["content"]),
                });
                // Results of one turn's calls go back in one user turn.
                match messages.last_mut() {
                    Some(last) if last["role"] == "user" && is_results(&last["content"]) => {
                        push(&mut last["content"], result)
                    }
                    _ => messages.push(json!({ "role": "user", "content": [result] })),
                }
            }
            "assistant" => messages.push(assistant(m)),
            role => messages.push(json!({ "role": role, "content": user_content(&m["content"]) })),
        }
    }
    let mut body = json!({
        "model": ask.model,
        "max_tokens": ask.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = system.join("\n\n").into();
    }
    for (key, value) in &ask.sampling {
        match key.as_str() {
            "stop" => {
                body["stop_sequences"] = match value {
                    Value::String(_) => json!([value]),
                    _ => value.clone(),
                }
            }
            // Anthropic has no seed, and refuses fields it does not know.
            "seed" => {}
            _ => body[key] = value.clone(),
        }
    }
    let mut tools: Vec<Value> = ask
        .tools
        .iter()
        .map(|f| {
            let mut t = json!({ "name": f.name, "input_schema": f.parameters });
            if let Some(d) = &f.description {
                t["description"] = d.clone().into();
            }
            t
        })
        .collect();
    if let Some(format) = &ask.format {
        if !ask.tools.is_empty() || ask.tool_choice.is_some() {
            return Err(
                "dialect `anthropic` answers `response_format` through a tool of its own, so it \
                 cannot be combined with `tools` or `tool_choice`"
                    .into(),
            );
        }
        let (name, schema) = format_tool(format);
        tools.push(json!({
            "name": name,
            "description": "Give the answer as this tool's input.",
            "input_schema": schema,
        }));
        body["tool_choice"] = json!({ "type": "tool", "name": name });
    }
    if !tools.is_empty() {
        body["tools"] = tools.into();
    }
    if let Some(choice) = &ask.tool_choice {
        body["tool_choice"] = match choice {
            Choice::Auto => json!({ "type": "auto" }),
            Choice::None => json!({ "type": "none" }),
            Choice::Required => json!({ "type": "any" }),
            Choice::Named(name) => json!({ "type": "tool", "name": name }),
        };
    }
    if ask.stream {
        body["stream"] = true.into();
    }
    Ok(body)
}

/// The forced tool that stands for a `response_format`: its name and input schema.
fn format_tool(format: &Format) -> (&str, Value) {
    match format {
        Format::JsonObject => (FORMAT_TOOL, json!({ "type": "object" })),
        Format::Schema { name, schema, .. } => (name.as_str(), schema.clone()),
    }
}

fn is_results(content: &Value) -> bool {
    content
        .as_array()
        .is_some_and(|a| a.iter().all(|b| b["type"] == "tool_result"))
}

fn push(list: &mut Value, item: Value) {
    if let Some(a) = list.as_array_mut() {
        a.push(item);
    }
}

/// The text of an OpenAI message's content: a string, or its text parts joined.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A user message's content: text as it is; OpenAI text parts as text blocks; any other part
/// (an image, a block already in Anthropic's form) as given.
fn user_content(content: &Value) -> Value {
    match content {
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text"), Some(t)) => json!({ "type": "text", "text": t }),
                _ => p.clone(),
            })
            .collect(),
        Value::String(_) => content.clone(),
        other => Value::String(text_of(other)),
    }
}

/// An assistant turn: its text, then a `tool_use` block per tool call.
fn assistant(m: &Value) -> Value {
    let calls = m["tool_calls"].as_array().filter(|c| !c.is_empty());
    let Some(calls) = calls else {
        return json!({ "role": "assistant", "content": user_content(&m["content"]) });
    };
    let mut blocks = Vec::new();
    let text = text_of(&m["content"]);
    if !text.is_empty() {
        blocks.push(json!({ "type": "text", "text": text }));
    }
    for c in calls {
        let input = match &c["function"]["arguments"] {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!({})),
            Value::Object(_) => c["function"]["arguments"].clone(),
            _ => json!({}),
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": c["id"],
            "name": c["function"]["name"],
            "input": input,
        }));
    }
    json!({ "role": "assistant", "content": blocks })
}

/// A `message` object as a [`Reply`]; `format` is the call's `response_format`, whose forced
/// tool's input becomes the parsed answer.
pub fn reply(response: &Value, format: Option<&Format>) -> Result<Reply, String> {
    let blocks = response["content"]
        .as_array()
        .ok_or("the response has no `content`")?;
    let format_name = format.map(|f| format_tool(f).0);
    let (mut text, mut tool_calls, mut parsed) = (String::new(), Vec::new(), None);
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => {
                let name = block["name"].as_str().unwrap_or_default();
                let input = &block["input"];
                if format_name == Some(name) && parsed.is_none() && input.is_object() {
                    parsed = Some(input.clone());
                    continue;
                }
                tool_calls.push(Call {
                    id: block["id"].as_str().unwrap_or_default().to_string(),
                    name: name.to_string(),
                    arguments_raw: match input {
                        // A streamed input that was not JSON (see `sse.rs`).
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                })
            }
            _ => {}
        }
    }
    if let Some(p) = &parsed {
        text = p.to_string();
    }
    let stop = response["stop_reason"].as_str().unwrap_or("end_turn");
    let finish_reason = match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" if parsed.is_some() && tool_calls.is_empty() => "stop",
        "tool_use" => "tool_calls",
        other => other,
    }
    .to_string();
    let refusal = (stop == "refusal").then(|| {
        if text.is_empty() {
            "the model declined to answer".to_string()
        } else {
            text.clone()
        }
    });
    let usage = &response["usage"];
    let count = |k: &str| usage[k].as_u64().unwrap_or(0);
    // Cached prompt tokens are reported apart from `input_tokens`; all of them were read.
    let input = count("input_tokens")
        + count("cache_creation_input_tokens")
        + count("cache_read_input_tokens");
    let output = count("output_tokens");
    Ok(Reply {
        text,
        tool_calls,
        finish_reason,
        refusal,
        usage: Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
        },
        model: response["model"].as_str().unwrap_or_default().to_string(),
        parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Function;
    use super::*;

    fn ask(messages: Vec<Value>) -> Ask {
        Ask {
            model: "claude".into(),
            messages,
            sampling: [
                ("seed".to_string(), json!(7)),
                ("stop".to_string(), json!("END")),
            ]
            .into_iter()
            .collect(),
            max_tokens: None,
            format: None,
            tools: Vec::new(),
            tool_choice: None,
            stream: false,
        }
    }

    #[test]
    fn openai_messages_map_to_anthropic_turns() {
        let b = body(&ask(vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "weather?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}},
                {"id": "t2", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ]}),
            json!({"role": "tool", "tool_call_id": "t1", "content": "sunny"}),
            json!({"role": "tool", "tool_call_id": "t2", "content": "rain"}),
        ]))
        .unwrap();
        assert_eq!(b["system"], "be brief");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert!(b.get("seed").is_none());
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1]["content"][0]["input"], json!({"c": "P"}));
        assert_eq!(m[2]["content"][1]["tool_use_id"], "t2");
    }

    #[test]
    fn a_response_format_is_a_forced_tool_whose_input_is_parsed() {
        let mut a = ask(vec![json!({"role": "user", "content": "x"})]);
        a.format = Some(Format::Schema {
            name: "person".into(),
            schema: json!({"type": "object"}),
            strict: None,
        });
        let b = body(&a).unwrap();
        assert_eq!(b["tool_choice"], json!({"type": "tool", "name": "person"}));
        assert_eq!(b["tools"][0]["name"], "person");
        let r = reply(
            &json!({"model": "claude", "stop_reason": "tool_use",
                "content": [{"type": "tool_use", "id": "x", "name": "person", "input": {"n": 1}}],
                "usage": {"input_tokens": 3, "cache_read_input_tokens": 2, "output_tokens": 4}}),
            a.format.as_ref(),
        )
        .unwrap();
        assert_eq!(r.parsed, Some(json!({"n": 1})));
        assert_eq!(r.finish_reason, "stop");
        assert!(r.tool_calls.is_empty());
        assert_eq!(r.usage.input_tokens, 5);
        assert_eq!(r.usage.total_tokens, 9);
        a.tools = vec![Function {
            name: "f".into(),
            description: None,
            parameters: json!({}),
            strict: None,
        }];
        assert!(body(&a).is_err());
    }

    #[test]
    fn stop_reasons_are_normalised() {
        let r = |stop: &str| {
            reply(
                &json!({"stop_reason": stop, "content": [{"type": "text", "text": "t"}]}),
                None,
            )
            .unwrap()
        };
        assert_eq!(r("end_turn").finish_reason, "stop");
        assert_eq!(r("max_tokens").finish_reason, "length");
        assert_eq!(r("refusal").finish_reason, "refusal");
        assert_eq!(r("refusal").refusal.as_deref(), Some("t"));
    }
}
