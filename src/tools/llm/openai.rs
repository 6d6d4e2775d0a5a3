//! The OpenAI Chat Completions dialect (`POST {base_url}/chat/completions`), spoken by OpenAI
//! and by vLLM, llama.cpp's `llama-server`, Ollama, LiteLLM, OpenRouter and Azure's v1
//! endpoint: the request a call makes, and its response read into a [`Reply`].

use super::{Ask, Call, Choice, Format, Reply, Usage};
use serde_json::{Value, json};

/// The request body.
///
/// `max_tokens` is sent as `max_completion_tokens` to OpenAI itself, which deprecated
/// `max_tokens` and refuses it for its reasoning models, and as `max_tokens` to every other
/// server, which is the name llama.cpp, Ollama and vLLM read (docs/llm.md, "Keys").
pub fn body(ask: &Ask, openai_itself: bool) -> Value {
    let mut body = json!({ "model": ask.model, "messages": ask.messages });
    for (key, value) in &ask.sampling {
        body[key] = value.clone();
    }
    if let Some(n) = ask.max_tokens {
        let key = if openai_itself {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[key] = n.into();
    }
    match &ask.format {
        None => {}
        Some(Format::JsonObject) => body["response_format"] = json!({ "type": "json_object" }),
        Some(Format::Schema {
            name,
            schema,
            strict,
        }) => {
            let mut spec = json!({ "name": name, "schema": schema });
            if let Some(strict) = strict {
                spec["strict"] = (*strict).into();
            }
            body["response_format"] = json!({ "type": "json_schema", "json_schema": spec });
        }
    }
    if !ask.tools.is_empty() {
        body["tools"] = ask
            .tools
            .iter()
            .map(|f| {
                let mut function = json!({ "name": f.name, "parameters": f.parameters });
                if let Some(d) = &f.description {
                    function["description"] = d.clone().into();
                }
                if let Some(s) = f.strict {
                    function["strict"] = s.into();
                }
                json!({ "type": "function", "function": function })
            })
            .collect();
    }
    if let Some(choice) = &ask.tool_choice {
        body["tool_choice"] = match choice {
            Choice::Auto => "auto".into(),
            Choice::None => "none".into(),
            Choice::Required => "required".into(),
            Choice::Named(name) => json!({ "type": "function", "function": { "name": name } }),
        };
    }
    if ask.stream {
        body["stream"] = true.into();
        // Without it a stream reports no token counts.
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

/// A `chat.completion` object as a [`Reply`].
pub fn reply(response: &Value) -> Result<Reply, String> {
    let choice = response
        .pointer("/choices/0")
        .ok_or("the response has no `choices`")?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or("the response's choice has no `message`")?;
    let text = match &message["content"] {
        Value::String(s) => s.clone(),
        // Some servers send content as a list of parts.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
        _ => String::new(),
    };
    let refusal = message["refusal"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let tool_calls = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Call {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            arguments_raw: match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                // A server that sends the arguments as an object already.
                other => other.to_string(),
            },
        })
        .collect();
    let finish_reason = match choice["finish_reason"].as_str() {
        _ if refusal.is_some() => "refusal".to_string(),
        Some("function_call") => "tool_calls".to_string(),
        Some(other) => other.to_string(),
        None => "stop".to_string(),
    };
    let usage = &response["usage"];
    let count = |k: &str| usage[k].as_u64().unwrap_or(0);
    let (input, output) = (count("prompt_tokens"), count("completion_tokens"));
    Ok(Reply {
        text,
        tool_calls,
        finish_reason,
        refusal,
        usage: Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: usage["total_tokens"].as_u64().unwrap_or(input + output),
        },
        model: response["model"].as_str().unwrap_or_default().to_string(),
        parsed: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Function;
    use super::*;

    fn ask() -> Ask {
        Ask {
            model: "m".into(),
            messages: vec![json!({"role": "user", "content": "hi"})],
            sampling: [("temperature".to_string(), json!(0))]
                .into_iter()
                .collect(),
            max_tokens: Some(50),
            format: None,
            tools: Vec::new(),
            tool_choice: None,
            stream: false,
        }
    }

    #[test]
    fn max_tokens_takes_the_name_each_server_reads() {
        assert_eq!(body(&ask(), true)["max_completion_tokens"], 50);
        assert!(body(&ask(), true).get("max_tokens").is_none());
        assert_eq!(body(&ask(), false)["max_tokens"], 50);
    }

    #[test]
    fn tools_schemas_and_streams_take_the_wire_form() {
        let mut a = ask();
        a.tools = vec![Function {
            name: "get".into(),
            description: Some("gets".into()),
            parameters: json!({"type": "object"}),
            strict: None,
        }];
        a.tool_choice = Some(Choice::Named("get".into()));
        a.format = Some(Format::Schema {
            name: "out".into(),
            schema: json!({"type": "object"}),
            strict: Some(true),
        });
        a.stream = true;
        let b = body(&a, false);
        assert_eq!(b["tools"][0]["function"]["description"], "gets");
        assert_eq!(b["tool_choice"]["function"]["name"], "get");
        assert_eq!(b["response_format"]["json_schema"]["strict"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["temperature"], 0);
    }

    #[test]
    fn a_completion_reads_into_a_reply() {
        let r = reply(&json!({
            "model": "gpt-x",
            "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}
        }))
        .unwrap();
        assert_eq!(r.text, "");
        assert_eq!(r.tool_calls[0].arguments_raw, "{\"a\":1}");
        assert_eq!(r.finish_reason, "tool_calls");
        assert_eq!(r.usage.total_tokens, 15);
        let refused = reply(
            &json!({"choices": [{"message": {"content": null, "refusal": "no"},
            "finish_reason": "stop"}]}),
        )
        .unwrap();
        assert_eq!(refused.finish_reason, "refusal");
        assert!(reply(&json!({"choices": []})).is_err());
    }
}
