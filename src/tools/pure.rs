//! The tiny pure tools: `noop`, `echo`, `template` and `assert`. Each is a unit struct with its
//! own impl; they share a file because each is a few lines and none touches the world.

use super::{Args, CallCx, KeyKind, Outcome, Placement, Resource, Tool, ToolSpec, key, text};
use serde_json::Value;

/// Does nothing: structure and benchmarks.
pub struct Noop;

static NOOP: ToolSpec = ToolSpec {
    name: "noop",
    summary: "does nothing",
    keys: &[],
    one_of: &[],
    capabilities: &[],
};

impl Tool for Noop {
    fn spec(&self) -> &'static ToolSpec {
        &NOOP
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, _: &Args, _: &mut CallCx<'_>) -> Outcome {
        Outcome::default()
    }
}

/// Outputs its rendered `message`.
pub struct Echo;

static ECHO: ToolSpec = ToolSpec {
    name: "echo",
    summary: "output = rendered message",
    keys: &[key("message", KeyKind::Template, true, "text to output")],
    one_of: &[],
    capabilities: &[],
};

impl Tool for Echo {
    fn spec(&self) -> &'static ToolSpec {
        &ECHO
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        Outcome::value(Value::String(text(args, "message")))
    }
}

/// Outputs its rendered `text`.
pub struct Template;

static TEMPLATE: ToolSpec = ToolSpec {
    name: "template",
    summary: "output = rendered text",
    keys: &[key("text", KeyKind::Template, true, "template to render")],
    one_of: &[],
    capabilities: &[],
};

impl Tool for Template {
    fn spec(&self) -> &'static ToolSpec {
        &TEMPLATE
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        Outcome::value(Value::String(text(args, "text")))
    }
}

/// Fails the node unless `that` is true.
pub struct Assert;

static ASSERT: ToolSpec = ToolSpec {
    name: "assert",
    summary: "fails the node unless `that` is true",
    keys: &[
        key(
            "that",
            KeyKind::Expression,
            true,
            "expression that must be true",
        ),
        key(
            "message",
            KeyKind::Template,
            false,
            "message when it is not",
        ),
    ],
    one_of: &[],
    capabilities: &[],
};

impl Tool for Assert {
    fn spec(&self) -> &'static ToolSpec {
        &ASSERT
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }

    fn resources<'a>(&self, _: &'a Args) -> Vec<Resource<'a>> {
        Vec::new()
    }

    fn call(&self, args: &Args, _: &mut CallCx<'_>) -> Outcome {
        // `that` arrives evaluated; its truth is the expression language's.
        let holds = match args.get("that") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Null) | None => false,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
        };
        if holds {
            return Outcome::value(Value::Bool(true));
        }
        let message = text(args, "message");
        Outcome::failed(if message.is_empty() {
            "assertion failed".to_string()
        } else {
            format!("assertion failed: {message}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testing::{args, call};
    use serde_json::json;

    #[test]
    fn noop_succeeds_with_nothing() {
        assert_eq!(call(&Noop, &args(json!({}))), Outcome::default());
    }

    #[test]
    fn echo_and_template_output_their_text() {
        assert_eq!(
            call(&Echo, &args(json!({ "message": "hi" }))).output,
            json!("hi")
        );
        assert_eq!(
            call(&Template, &args(json!({ "text": "a\nb" }))).output,
            json!("a\nb")
        );
        // A value that is not a string is output as JSON text.
        assert_eq!(
            call(&Echo, &args(json!({ "message": [1, 2] }))).output,
            json!("[1,2]")
        );
    }

    #[test]
    fn assert_follows_truthiness() {
        for that in [
            json!(true),
            json!(1),
            json!("x"),
            json!([0]),
            json!({"a": 1}),
        ] {
            let outcome = call(&Assert, &args(json!({ "that": that })));
            assert_eq!(outcome.error, None, "{that}");
            assert_eq!(outcome.output, json!(true));
        }
        for that in [
            json!(false),
            json!(0),
            json!(""),
            json!([]),
            json!({}),
            json!(null),
        ] {
            let outcome = call(&Assert, &args(json!({ "that": that })));
            assert_eq!(outcome.error.as_deref(), Some("assertion failed"), "{that}");
        }
        let outcome = call(
            &Assert,
            &args(json!({ "that": false, "message": "n is odd" })),
        );
        assert_eq!(outcome.error.as_deref(), Some("assertion failed: n is odd"));
    }
}
