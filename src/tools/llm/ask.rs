//! A call's rendered arguments read into what it asks the model ([`Ask`]), whichever the
//! dialect: the messages, sampling, structured output and the functions it may call.

use super::{Ask, Choice, Format, Function};
use crate::tools::{Args, str_arg, word};
use serde_json::{Map, Value, json};

/// The model's question from the arguments, dialect aside.
pub(super) fn ask(args: &Args) -> Result<Ask, String> {
    let model = str_arg(args, "model")
        .filter(|m| !m.is_empty())
        .ok_or("`model` is empty")?
        .to_string();
    let mut messages = Vec::new();
    if let Some(system) = args.get("system").filter(|s| !s.is_null()) {
        messages.push(json!({ "role": "system", "content": word(system) }));
    }
    match (args.get("messages"), args.get("prompt")) {
        (Some(Value::Array(list)), _) => {
            for m in list {
                if !m["role"].is_string() {
                    return Err(format!("a message has no `role`: {m}"));
                }
                messages.push(m.clone());
            }
        }
        (Some(other), _) if !other.is_null() => {
            return Err("`messages` is a list of {role, content}".into());
        }
        (_, Some(prompt)) => messages.push(json!({ "role": "user", "content": word(prompt) })),
        _ => return Err("one of `messages` or `prompt` is needed".into()),
    }
    let mut sampling = Map::new();
    for key in ["temperature", "top_p", "seed", "stop"] {
        if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
            sampling.insert(key.into(), v.clone());
        }
    }
    let max_tokens = match args.get("max_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| format!("`max_tokens` is {v}, not a whole number"))?,
        ),
    };
    let stream = match args.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(v) => return Err(format!("`stream` is {v}, not true or false")),
    };
    Ok(Ask {
        model,
        messages,
        sampling,
        max_tokens,
        format: format(args.get("response_format"))?,
        tools: functions(args.get("tools"))?,
        tool_choice: choice(args.get("tool_choice"))?,
        stream,
    })
}

/// `response_format`: `{type: json_object}`, OpenAI's `{type: json_schema, json_schema:
/// {name, schema, strict}}`, or a JSON schema itself (named `output`).
fn format(value: Option<&Value>) -> Result<Option<Format>, String> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let obj = v.as_object().ok_or("`response_format` is a mapping")?;
    Ok(Some(match obj.get("type").and_then(Value::as_str) {
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => {
            let spec = &v["json_schema"];
            let schema = spec
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or("`response_format.json_schema.schema` is needed (a JSON schema mapping)")?;
            Format::Schema {
                name: spec["name"].as_str().unwrap_or("output").to_string(),
                schema: schema.clone(),
                strict: spec["strict"].as_bool(),
            }
        }
        Some("text") => return Ok(None),
        _ => Format::Schema {
            name: "output".into(),
            schema: v.clone(),
            strict: None,
        },
    }))
}

/// `tools`: OpenAI's `{type: function, function: {...}}` or the function itself
/// (`{name, description, parameters}`).
fn functions(value: Option<&Value>) -> Result<Vec<Function>, String> {
    let Some(v) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or("`tools` is a list of functions")?;
    list.iter()
        .map(|t| {
            let f = if t["type"] == "function" {
                &t["function"]
            } else {
                t
            };
            let name = f["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("a tool has no `name`: {t}"))?;
            Ok(Function {
                name: name.to_string(),
                description: f["description"].as_str().map(str::to_string),
                parameters: match &f["parameters"] {
                    Value::Null => json!({ "type": "object", "properties": {} }),
                    p => p.clone(),
                },
                strict: f["strict"].as_bool(),
            })
        })
        .collect()
}

/// `tool_choice`: `auto`, `none`, `required`, a function's name, or OpenAI's
/// `{type: function, function: {name}}`.
fn choice(value: Option<&Value>) -> Result<Option<Choice>, String> {
    Ok(match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" | "any" => Choice::Required,
            name => Choice::Named(name.to_string()),
        }),
        Some(v) => Some(Choice::Named(
            v.pointer("/function/name")
                .or_else(|| v.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`tool_choice` {v} names no function"))?
                .to_string(),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_formats_in_three_forms() {
        assert_eq!(
            format(Some(&json!({"type": "json_object"}))).unwrap(),
            Some(Format::JsonObject)
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert_eq!(
            format(Some(&schema)).unwrap(),
            Some(Format::Schema {
                name: "output".into(),
                schema: schema.clone(),
                strict: None
            })
        );
        let wrapped = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": true}});
        assert!(matches!(
            format(Some(&wrapped)).unwrap(),
            Some(Format::Schema {
                strict: Some(true),
                ..
            })
        ));
    }
}
