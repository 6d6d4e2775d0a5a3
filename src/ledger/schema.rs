//! The JSON Schema of one ledger line (`schemas/ledger-line.schema.json`), for checkers outside
//! kairos.
//!
//! It is derived from the event types of [`super::event`]: schemars describes [`Event`] with
//! `event` as the tag (one subschema per kind, with the kind's fields, their types and which are
//! required), and this module turns that into the schema of a whole line: each kind becomes a
//! definition of its own under its name, with the fields every line has (`seq`, `prev`, `clock`)
//! and nothing else allowed, and the line's `event` selects the definition. A field added to an
//! event type changes the schema; a test in `event.rs` checks that each kind's properties are
//! the fields [`Event::write`] writes, and `tests/schema.rs` runs an independent validator on
//! the golden ledgers.
//!
//! What a schema cannot say is left to the reader and `kairos verify`: the chain (`prev` is the
//! digest of the line before), `seq` counting from 0, the order of the fields and of the lines.

use super::event::Event;
use serde_json::{Map, Value, json};

/// The fields every line has before the event's own, in the order they are written.
const COMMON: [&str; 4] = ["seq", "prev", "event", "clock"];

/// The schema of one ledger line as pretty JSON with a trailing newline.
pub fn ledger_line_schema() -> String {
    let mut text = serde_json::to_string_pretty(&line_schema()).expect("schemas serialize");
    text.push('\n');
    text
}

fn line_schema() -> Value {
    let generated = schemars::schema_for!(Event).to_value();
    let mut defs = match &generated["$defs"] {
        Value::Object(defs) => defs.clone(),
        _ => Map::new(),
    };
    for def in defs.values_mut() {
        plain_enum(def);
    }
    for (name, def) in [
        (
            "Seq",
            json!({
                "description": "The line's position: 0, 1, 2, ...",
                "type": "integer",
                "minimum": 0
            }),
        ),
        (
            "Prev",
            json!({
                "description": "SHA-256 (lowercase hex) of the bytes of the line before, without its `\\n`; 64 zeros on line 0.",
                "type": "string",
                "pattern": "^[0-9a-f]{64}$"
            }),
        ),
        (
            "Clock",
            json!({
                "description": "The logical clock: 0 on `RunStart`; not a time.",
                "type": "integer",
                "minimum": 0
            }),
        ),
        (
            "Node",
            json!({
                "description": "The node id, or the instance id of one of its runs (`fetch[2]`).",
                "type": "string"
            }),
        ),
    ] {
        defs.insert(name.to_string(), def);
    }
    let Some(Value::Array(variants)) = generated.get("oneOf") else {
        panic!("schemars describes an internally tagged enum as `oneOf`")
    };
    let mut kinds = Vec::new();
    let mut select = Vec::new();
    for variant in variants {
        let kind = variant["properties"]["event"]["const"]
            .as_str()
            .expect("each variant's `event` is a constant")
            .to_string();
        select.push(json!({
            "if": { "required": ["event"], "properties": { "event": { "const": kind } } },
            "then": { "$ref": format!("#/$defs/{kind}") }
        }));
        let previous = defs.insert(kind.clone(), kind_schema(&kind, variant));
        assert!(previous.is_none(), "`{kind}` names a kind and a type");
        kinds.push(kind);
    }
    json!({
        "$schema": generated["$schema"],
        "title": "kairos ledger line",
        "description": "One line of a `kairos.ledger/1` ledger: `seq`, `prev`, `event` and `clock`, `node` for a node's event, then the fields of the event's kind, which `event` selects among the definitions of the same name. The chain, the numbering and the order of fields and lines are checked by `kairos verify`, not by this schema.",
        "type": "object",
        "required": COMMON,
        "properties": {
            "seq": { "$ref": "#/$defs/Seq" },
            "prev": { "$ref": "#/$defs/Prev" },
            "event": { "description": "The event kind.", "type": "string", "enum": kinds },
            "clock": { "$ref": "#/$defs/Clock" }
        },
        "allOf": select,
        "$defs": defs
    })
}

/// A whole line of event `kind`, from schemars' subschema of its variant: the common fields
/// added, optional fields absent rather than `null`, and no other field allowed.
fn kind_schema(kind: &str, variant: &Value) -> Value {
    let Some(Value::Object(derived)) = variant.get("properties") else {
        panic!("`{kind}` has no properties")
    };
    let derived_required: Vec<&str> = variant["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut properties = Map::new();
    for (name, def) in [("seq", "Seq"), ("prev", "Prev"), ("clock", "Clock")] {
        properties.insert(name.into(), json!({ "$ref": format!("#/$defs/{def}") }));
    }
    for (name, schema) in derived {
        let mut schema = schema.clone();
        if !derived_required.contains(&name.as_str()) {
            absent_not_null(&mut schema);
        }
        if name == "node" {
            assert_eq!(schema, json!({ "type": "string" }), "`{kind}.node` is text");
            schema = json!({ "$ref": "#/$defs/Node" });
        }
        properties.insert(name.clone(), schema);
    }
    let mut required: Vec<&str> = COMMON.to_vec();
    required.extend(derived_required.iter().filter(|r| !COMMON.contains(r)));
    let mut schema = Map::new();
    if let Some(description) = variant.get("description") {
        schema.insert("description".into(), description.clone());
    }
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties.into());
    schema.insert("required".into(), required.into());
    schema.insert("additionalProperties".into(), false.into());
    schema.into()
}

/// An optional field is left out when it has no value, never written `null`: schemars' `null`
/// (and the `default: null` of `#[serde(default)]`) are taken out of its schema.
fn absent_not_null(schema: &mut Value) {
    let Value::Object(p) = schema else { return };
    p.remove("default");
    if let Some(Value::Array(types)) = p.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            p.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = p.get_mut("anyOf") {
        any.retain(|s| s != &json!({ "type": "null" }));
        if let [only] = any.as_slice()
            && let Value::Object(only) = only.clone()
        {
            p.remove("anyOf");
            p.extend(only);
        }
    }
}

/// A typed value (`Status`, `RunOutcome`, ...) as one `enum` of its names: schemars writes a
/// `oneOf` of constants when some of its variants have doc comments.
fn plain_enum(def: &mut Value) {
    let Some(Value::Array(variants)) = def.get("oneOf") else {
        return;
    };
    let mut names = Vec::new();
    for v in variants {
        if v["type"] != "string" {
            return;
        }
        match (v.get("const"), v.get("enum")) {
            (Some(name), None) => names.push(name.clone()),
            (None, Some(Value::Array(more))) => names.extend(more.iter().cloned()),
            _ => return,
        }
    }
    if let Value::Object(def) = def {
        def.remove("oneOf");
        def.insert("type".into(), "string".into());
        def.insert("enum".into(), names.into());
    }
}
