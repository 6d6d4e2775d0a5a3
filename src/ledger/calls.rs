//! Model calls as people compare them (`kairos diff`, `kairos replay --against`): the prompt as
//! text (`role: content` lines), the answer as text, the model, and the tokens spent, read
//! from an `llm` call's recorded input and output (docs/llm.md, "Diffs and replays"); and,
//! for any call, which keys of its rendered input changed.

use serde_json::Value;

/// The prompt of an `llm` call's rendered input: the system message, then each message as
/// `role: content` (a tool call as `role -> name(arguments)`), or the single prompt.
pub fn prompt_text(input: &Value) -> Option<String> {
    let mut lines = Vec::new();
    if let Some(system) = input.get("system").filter(|s| !s.is_null()) {
        lines.push(format!("system: {}", as_text(system)));
    }
    match (input.get("messages"), input.get("prompt")) {
        (Some(Value::Array(messages)), _) => {
            for m in messages {
                let role = m["role"].as_str().unwrap_or("?");
                if !m["content"].is_null() {
                    lines.push(format!("{role}: {}", content_text(&m["content"])));
                }
                for c in m["tool_calls"].as_array().into_iter().flatten() {
                    lines.push(format!(
                        "{role} -> {}({})",
                        c["function"]["name"].as_str().unwrap_or("?"),
                        as_text(&c["function"]["arguments"])
                    ));
                }
            }
        }
        (_, Some(prompt)) if !prompt.is_null() => lines.push(format!("user: {}", as_text(prompt))),
        _ => {}
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The answer of an `llm` call's output: its text, then a line per tool call.
pub fn answer_text(output: &Value) -> Option<String> {
    let text = output.get("text")?.as_str()?;
    let mut out = text.to_string();
    for c in output["tool_calls"].as_array().into_iter().flatten() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "-> {}({})",
            c["name"].as_str().unwrap_or("?"),
            c["arguments_raw"].as_str().unwrap_or_default()
        ));
    }
    Some(out)
}

/// The model that answered, or the one asked for when there is no answer.
pub fn model(input: Option<&Value>, output: Option<&Value>) -> Option<Value> {
    output
        .and_then(|o| o.get("model"))
        .filter(|m| m.as_str().is_some_and(|s| !s.is_empty()))
        .or_else(|| input.and_then(|i| i.get("model")))
        .cloned()
}

/// The tokens of an `llm` output: (input, output, total).
pub fn tokens(output: Option<&Value>) -> Option<[u64; 3]> {
    let usage = output?.get("usage")?;
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Some([n("input_tokens"), n("output_tokens"), n("total_tokens")])
}

/// Tokens as a cell: `15 (12 in, 3 out)`, and on the second side the change, `+5`.
pub fn tokens_text(t: [u64; 3], before: Option<[u64; 3]>) -> String {
    let mut s = format!("{} ({} in, {} out)", t[2], t[0], t[1]);
    if let Some(b) = before {
        let delta = t[2] as i128 - b[2] as i128;
        s.push_str(&format!(", {delta:+}"));
    }
    s
}

/// The keys of two rendered inputs that differ, in `recorded`'s order then `asked`'s, each
/// with both values as text (`None`: the key is absent on that side).
pub fn changed_keys(
    recorded: &Value,
    asked: &Value,
) -> Vec<(String, Option<String>, Option<String>)> {
    let (Some(a), Some(b)) = (recorded.as_object(), asked.as_object()) else {
        return vec![(String::new(), Some(pretty(recorded)), Some(pretty(asked)))];
    };
    let mut keys: Vec<&String> = a.keys().collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            (
                k.clone(),
                a.get(k).map(field_text),
                b.get(k).map(field_text),
            )
        })
        .collect()
}

/// A field's value as text to diff: messages as `role: content` lines, strings as they are,
/// anything else pretty-printed.
fn field_text(v: &Value) -> String {
    match v {
        Value::Array(items) if items.iter().all(|m| m.get("role").is_some()) => {
            prompt_text(&serde_json::json!({ "messages": v })).unwrap_or_default()
        }
        Value::String(s) => s.clone(),
        other => pretty(other),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A message's content: a string, or its text parts joined.
fn content_text(content: &Value) -> String {
    match content {
        Value::Array(parts) => parts
            .iter()
            .map(|p| {
                p["text"]
                    .as_str()
                    .map_or_else(|| p.to_string(), str::to_string)
            })
            .collect::<Vec<_>>()
            .join(""),
        other => as_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompts_read_as_role_lines() {
        let input = json!({"system": "Be brief.", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "1", "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": [{"type": "text", "text": "sunny"}]}
        ]});
        assert_eq!(
            prompt_text(&input).unwrap(),
            "system: Be brief.\nuser: weather?\nassistant -> w({\"c\":\"P\"})\ntool: sunny"
        );
        assert_eq!(prompt_text(&json!({"prompt": "hi"})).unwrap(), "user: hi");
        assert_eq!(prompt_text(&json!({"message": "x"})), None);
    }

    #[test]
    fn answers_tokens_and_models() {
        let out = json!({"text": "", "tool_calls": [{"name": "w", "arguments_raw": "{}"}],
            "model": "m2", "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}});
        assert_eq!(answer_text(&out).unwrap(), "-> w({})");
        assert_eq!(tokens(Some(&out)), Some([12, 3, 15]));
        assert_eq!(
            tokens_text([12, 3, 15], Some([10, 1, 11])),
            "15 (12 in, 3 out), +4"
        );
        assert_eq!(
            model(Some(&json!({"model": "m1"})), Some(&out)),
            Some(json!("m2"))
        );
        assert_eq!(
            model(Some(&json!({"model": "m1"})), None),
            Some(json!("m1"))
        );
    }

    #[test]
    fn changed_keys_are_listed_with_their_texts() {
        let a = json!({"model": "m", "prompt": "France?", "temperature": 0});
        let b = json!({"model": "m", "prompt": "Spain?", "seed": 1});
        let changes = changed_keys(&a, &b);
        let keys: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(keys, ["prompt", "temperature", "seed"]);
        assert_eq!(changes[0].1.as_deref(), Some("France?"));
        assert_eq!(changes[2].1, None);
    }
}
