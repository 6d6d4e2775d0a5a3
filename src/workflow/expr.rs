//! Expressions (`if:`, `branch.if`, `for_each`, `assert.that`) and templates (`{{ ... }}` in
//! strings): the shared minijinja environment, and the static checks validation runs on them
//! (syntax, and references to nodes, inputs and loop variables).

use super::limits;
use crate::syntax::diag::{WorkflowError, did_you_mean, ss};
use crate::syntax::read::{Errors, Sp};
use crate::syntax::yaml::Span;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The fields of `nodes.ID` that expressions may read.
pub const NODE_FIELDS: &[&str] = &["output", "stdout", "stderr", "exit_code", "status"];

/// The fields of `run`.
pub const RUN_FIELDS: &[&str] = &["seed", "name"];

/// How `{{ value }}` writes a value that is not a string.
///
/// A run's rules revision (`engine::Rules`, recorded in its ledger) decides the style, so a
/// replay or a resume renders as the recorded run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextStyle {
    /// A string as it is, anything else as JSON (see [`display`]).
    #[default]
    Json,
    /// minijinja's own writing (`None`, `True`, `['a']`), as the first release rendered.
    Legacy,
}

/// The environment shared by every style: undefined values are errors (never an empty
/// string), and the extra filters workflows use are registered.
fn base() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // Every evaluation runs on a budget: fuel bounds both its time and the memory it may
    // allocate, deterministically (the same template runs out at the same point every time).
    env.set_fuel(Some(limits::TEMPLATE_FUEL));
    env.add_filter("lines", |s: String| -> Vec<String> {
        s.lines().map(str::to_string).collect()
    });
    // What an `agent:` turn needs and a template cannot say (docs/agents.md).
    env.add_filter("function_names", |defs: minijinja::Value| {
        minijinja::Value::from(minijinja::value::Serde(agent::function_names(&json(&defs))))
    });
    env.add_filter(
        "tool_messages",
        |calls: minijinja::Value, results: minijinja::Value| {
            minijinja::Value::from(minijinja::value::Serde(agent::tool_messages(
                &json(&calls),
                &json(&results),
            )))
        },
    );
    env
}

fn json(v: &minijinja::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The pure steps of an agent's turn, as filters of its expanded loop (docs/agents.md).
pub mod agent {
    use serde_json::{Value, json};

    /// The names of a list of function definitions (`{type: function, function: {name}}`).
    pub fn function_names(defs: &Value) -> Vec<String> {
        defs.as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_string)
            .collect()
    }

    /// The `tool` messages answering the model's `calls`, in the order it asked: `results`
    /// holds, for each server's call node, its outputs by call (null where that node did not
    /// make the call). A call no node made (a tool the agent may not use, or whose call
    /// failed or was refused) is answered with an error message, so the model can go on.
    pub fn tool_messages(calls: &Value, results: &Value) -> Vec<Value> {
        let lists: Vec<&Vec<Value>> = results
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .collect();
        calls
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(k, call)| {
                let name = call["name"].as_str().unwrap_or_default();
                let made = lists.iter().find_map(|l| l.get(k).filter(|o| o.is_object()));
                let content = match made {
                    Some(o) if o["is_error"] == true => {
                        format!("error: {}", o["text"].as_str().unwrap_or_default())
                    }
                    Some(o) => o["text"].as_str().unwrap_or_default().to_string(),
                    None => format!(
                        "error: the tool `{name}` gave no result: it is not one this agent may use, the policy refused the call, or the call failed"
                    ),
                };
                json!({ "role": "tool", "tool_call_id": call["id"], "content": content })
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn tool_messages_answer_every_call_in_the_order_asked() {
            let calls = json!([{"id": "a", "name": "add"}, {"id": "b", "name": "rm"},
                               {"id": "c", "name": "read"}, {"id": "d", "name": "echo"}]);
            // Two servers' call nodes: `add` and `echo` went to the first, `read` to the
            // second (and failed as a tool), `rm` to neither.
            let results = json!([
                [{"text": "5", "is_error": false}, null, null, {"text": "hi", "is_error": false}],
                [null, null, {"text": "no such file", "is_error": true}, null],
            ]);
            let m = tool_messages(&calls, &results);
            let contents: Vec<&str> = m.iter().map(|m| m["content"].as_str().unwrap()).collect();
            assert_eq!(contents[0], "5");
            assert!(contents[1].starts_with("error: the tool `rm` gave no result"));
            assert_eq!(contents[2], "error: no such file");
            assert_eq!(contents[3], "hi");
            let ids: Vec<&str> = m
                .iter()
                .map(|m| m["tool_call_id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["a", "b", "c", "d"]);
            assert!(m.iter().all(|m| m["role"] == "tool"));
        }

        #[test]
        fn function_names_read_openai_definitions() {
            let defs = json!([{"type": "function", "function": {"name": "add"}}, {"x": 1}]);
            assert_eq!(function_names(&defs), ["add"]);
            assert!(function_names(&Value::Null).is_empty());
        }
    }
}

/// The environment every expression and template is compiled in, writing values JSON-style
/// (see [`display`]).
pub fn environment() -> &'static minijinja::Environment<'static> {
    styled(TextStyle::Json)
}

/// The environment that renders templates in `style`.
pub fn styled(style: TextStyle) -> &'static minijinja::Environment<'static> {
    static JSON: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    static LEGACY: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    match style {
        TextStyle::Json => JSON.get_or_init(|| {
            let mut env = base();
            env.set_formatter(|out, _state, value| write(out, &display(value)));
            env
        }),
        TextStyle::Legacy => LEGACY.get_or_init(base),
    }
}

/// The environment for `run:` lines in `style`: every value interpolated with `{{ }}` is
/// shell-quoted, so a node's output can never inject a command.
pub fn shell_styled(style: TextStyle) -> &'static minijinja::Environment<'static> {
    static JSON: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    static LEGACY: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    match style {
        TextStyle::Json => JSON.get_or_init(|| {
            let mut env = base();
            env.set_formatter(|out, _state, value| write(out, &crate::sh::quote(&display(value))));
            env
        }),
        TextStyle::Legacy => LEGACY.get_or_init(|| {
            let mut env = base();
            env.set_formatter(|out, _state, value| {
                write(out, &crate::sh::quote(&value.to_string()))
            });
            env
        }),
    }
}

/// The environment for `run:` lines, JSON-style.
pub fn shell_environment() -> &'static minijinja::Environment<'static> {
    shell_styled(TextStyle::Json)
}

/// The text `{{ value }}` writes: a string as it is, anything else as JSON (`null`, `true`,
/// `[1, "a"]`, `{"k": null}`), the notation of the ledger and of `--format json`, rather
/// than minijinja's Python words (`None`, `True`, `['a']`). A missing `else` of an inline
/// `if` writes nothing, as in Jinja.
pub fn display(value: &minijinja::Value) -> String {
    if let Some(s) = value.as_str() {
        return s.to_string();
    }
    if value.is_undefined() {
        return String::new();
    }
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

fn write(out: &mut minijinja::Output<'_>, text: &str) -> Result<(), minijinja::Error> {
    out.write_str(text)
        .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write"))
}

/// Whether a string is an expression or a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Expression,
    Template,
}

/// What names are in scope where an expression sits.
pub struct Scope<'a> {
    pub nodes: &'a HashMap<&'a str, u32>,
    pub inputs: &'a [&'a str],
    /// `item` and `index` are defined (inside a `for_each` node).
    pub loop_vars: bool,
    /// `loop` is defined (inside a loop's body, and in its `until`, `update` and `output`).
    pub in_loop: bool,
}

/// The fields of `loop` inside a loop (`docs/workflow.md#loops`).
pub const LOOP_FIELDS: &[&str] = &["iteration", "state", "previous"];

/// What opens the code of a template: `{{ value }}`, `{% statement %}`, `{# comment #}`. A
/// template without any of them is plain text.
const TEMPLATE_OPENERS: [&str; 3] = [VALUE_OPENER, "{%", "{#"];

/// What opens a value in a template (and is out of place in a bare expression).
const VALUE_OPENER: &str = "{{";

/// Whether `text` holds template code: without any, it renders as itself.
pub fn has_template(text: &str) -> bool {
    TEMPLATE_OPENERS.iter().any(|o| text.contains(o))
}

/// Compiles `text` and checks its references; returns the nodes it reads, in first-use order.
pub fn check(
    text: &Sp<String>,
    form: Form,
    scope: &Scope<'_>,
    source: &str,
    errors: &mut Errors,
) -> Vec<u32> {
    if form == Form::Template && !TEMPLATE_OPENERS.iter().any(|o| text.contains(o)) {
        return Vec::new();
    }
    let Some(vars) = compile(text, form, source, errors) else {
        return Vec::new();
    };
    // minijinja reports `nodes["ID"]` as a bare `nodes` and misses what a slice is taken of,
    // so references to `nodes`, `inputs` and `run` are also read as written (see
    // `written_references`); nodes only that way, since its reading covers minijinja's.
    // Sorted so that diagnostics and dependency lists do not depend on hash order.
    let mut vars: std::collections::BTreeSet<String> = vars
        .into_iter()
        .filter(|v| v != "nodes" && !v.starts_with("nodes."))
        .collect();
    vars.extend(written_references(text, form));
    let mut used = Vec::new();
    for var in &vars {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        let field = parts.next();
        let attr = parts.next();
        match root {
            "nodes" => used.extend(node_reference(field, attr, text, source, scope, errors)),
            "inputs" => errors.extend(input_reference(field, text, source, scope)),
            "item" | "index" if scope.loop_vars => {}
            "item" | "index" => errors.push(WorkflowError::UnknownReference {
                what: "variable",
                name: root.to_string(),
                span: ss(find_in(text, source, root)),
                help: Some(format!(
                    "`{root}` is defined only in a node with `for_each`"
                )),
            }),
            "run" => errors.extend(run_reference(field, text, source)),
            "loop" if scope.in_loop => {
                if let Some(f) = field.filter(|f| !LOOP_FIELDS.contains(f)) {
                    errors.push(WorkflowError::UnknownReference {
                        what: "loop field",
                        name: f.to_string(),
                        span: ss(find_in(text, source, &format!("loop.{f}"))),
                        help: Some(format!("`loop` has: {}", LOOP_FIELDS.join(", "))),
                    });
                }
            }
            "loop" => errors.push(WorkflowError::UnknownReference {
                what: "variable",
                name: root.to_string(),
                span: ss(find_in(text, source, root)),
                help: Some("`loop` is defined only inside a `loop:` node".into()),
            }),
            other => errors.push(unknown_variable(other, text, source, scope)),
        }
    }
    used.dedup();
    used
}

/// Compiles `text` as `form`; returns the variables it uses, or adds the syntax error.
fn compile(
    text: &Sp<String>,
    form: Form,
    source: &str,
    errors: &mut Errors,
) -> Option<std::collections::HashSet<String>> {
    let env = environment();
    let vars = match form {
        Form::Expression => env
            .compile_expression(text)
            .map(|e| e.undeclared_variables(true)),
        Form::Template => env
            .template_from_str(text)
            .map(|t| t.undeclared_variables(true)),
    };
    match vars {
        Ok(vars) => Some(vars),
        Err(err) => {
            let message = err
                .detail()
                .map_or_else(|| err.kind().to_string(), str::to_string);
            let span = err
                .range()
                .map_or(text.span, |r| locate_range(text, source, r.start, r.end));
            errors.push(WorkflowError::ExpressionSyntax {
                what: if form == Form::Expression {
                    "expression"
                } else {
                    "template"
                },
                message,
                span: ss(span),
                help: (form == Form::Expression && text.contains(VALUE_OPENER))
                    .then(|| "this is a bare expression: write it without `{{ }}`".to_string()),
            });
            None
        }
    }
}

/// Checks a reference to `nodes.ID.FIELD` (`id` and `attr` as far as written); returns the
/// node it reads, when there is one.
fn node_reference(
    id: Option<&str>,
    attr: Option<&str>,
    text: &Sp<String>,
    source: &str,
    scope: &Scope<'_>,
    errors: &mut Errors,
) -> Option<u32> {
    match id {
        Some(id) => {
            if let Some(&idx) = scope.nodes.get(id) {
                if let Some(attr) = attr.filter(|a| !NODE_FIELDS.contains(a)) {
                    errors.push(WorkflowError::UnknownReference {
                        what: "node field",
                        name: attr.to_string(),
                        span: ss(field_span(text, source, id, attr)),
                        help: did_you_mean(attr, NODE_FIELDS.iter().copied())
                            .or_else(|| Some(format!("a node has: {}", NODE_FIELDS.join(", ")))),
                    });
                }
                Some(idx)
            } else {
                errors.push(unknown_node(id, text, source, scope));
                None
            }
        }
        None => {
            errors.push(WorkflowError::InvalidValue {
                message: "`nodes` is used without naming a node".into(),
                span: ss(find_in(text, source, "nodes")),
                label: "which node?".into(),
                help: Some("name the node: `nodes.ID.output`, or `nodes[\"ID\"].output` for ids with `-`; kairos orders nodes by the references it can see".into()),
            });
            None
        }
    }
}

/// The error of a reference to `inputs.NAME` for an input the workflow does not declare.
fn input_reference(
    name: Option<&str>,
    text: &Sp<String>,
    source: &str,
    scope: &Scope<'_>,
) -> Option<WorkflowError> {
    let name = name.filter(|n| !scope.inputs.contains(n))?;
    Some(WorkflowError::UnknownReference {
        what: "input",
        name: name.to_string(),
        span: ss(find_in(text, source, &format!("inputs.{name}"))),
        help: did_you_mean(name, scope.inputs.iter().copied())
            .or_else(|| Some("declare it under `inputs:` at the top of the workflow".into())),
    })
}

/// The error of a reference to a field `run` does not have.
fn run_reference(field: Option<&str>, text: &Sp<String>, source: &str) -> Option<WorkflowError> {
    let f = field.filter(|f| !RUN_FIELDS.contains(f))?;
    Some(WorkflowError::UnknownReference {
        what: "run field",
        name: f.to_string(),
        span: ss(find_in(text, source, &format!("run.{f}"))),
        help: Some(format!("`run` has: {}", RUN_FIELDS.join(", "))),
    })
}

/// The error of a variable expressions do not have, with the names they can use.
fn unknown_variable(
    other: &str,
    text: &Sp<String>,
    source: &str,
    scope: &Scope<'_>,
) -> WorkflowError {
    let mut names = vec!["nodes", "inputs", "run"];
    if scope.loop_vars {
        names.extend(["item", "index"]);
    }
    if scope.in_loop {
        names.push("loop");
    }
    WorkflowError::UnknownReference {
        what: "variable",
        name: other.to_string(),
        span: ss(find_in(text, source, other)),
        help: did_you_mean(other, names.iter().copied())
            .or_else(|| Some(format!("expressions can use: {}", names.join(", ")))),
    }
}

fn unknown_node(id: &str, text: &Sp<String>, source: &str, scope: &Scope<'_>) -> WorkflowError {
    WorkflowError::UnknownReference {
        what: "node",
        name: id.to_string(),
        span: ss(find_in(text, source, id)),
        help: did_you_mean(id, scope.nodes.keys().copied()),
    }
}

/// The span of `attr` in `ID.attr`, or of the whole value.
fn field_span(text: &Sp<String>, source: &str, id: &str, attr: &str) -> Span {
    let whole = find_in(text, source, &format!("{id}.{attr}"));
    if whole == text.span {
        whole
    } else {
        Span::new(whole.offset() + id.len() + 1, attr.len())
    }
}

/// The variables whose references are read as written.
const WRITTEN_ROOTS: &[&str] = &["nodes", "inputs", "run"];

/// The references to `nodes`, `inputs` and `run` in the expression parts of `text` (all of an
/// expression; what is inside `{{ }}` and `{% %}` of a template, outside string literals and
/// `raw` blocks): `ROOT`, `ROOT.NAME` or `ROOT.NAME.FIELD`, with `nodes["ID"]` read as
/// `nodes.ID`. A bare `nodes` is one used without a literal name (`nodes[x]`, `nodes | ...`).
///
/// minijinja's `undeclared_variables` does not look at the value a slice is taken of:
/// `(nodes.a.output | list)[:2]` reports nothing of `nodes.a`, and a reference missed here
/// gives the node no ordering edge and no value at run time.
fn written_references(text: &str, form: Form) -> Vec<String> {
    let mut out = Vec::new();
    if form == Form::Expression {
        scan_expression(text, &mut out);
        return out;
    }
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let tag = &rest[open..];
        let close = match tag.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            Some("{#") => {
                rest = tag.find("#}").map_or("", |end| &tag[end + 2..]);
                continue;
            }
            _ => {
                rest = &tag[1..];
                continue;
            }
        };
        let body = &tag[2..];
        let end = code_end(body, close);
        let inner = &body[..end];
        rest = body.get(end + 2..).unwrap_or_default();
        let statement = inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if close == "%}" && statement == "raw" {
            // Up to the end of `{% endraw %}`.
            rest = rest
                .find("endraw")
                .and_then(|i| rest[i..].find("%}").map(|j| &rest[i + j + 2..]))
                .unwrap_or_default();
            continue;
        }
        scan_expression(inner, &mut out);
    }
    out
}

/// Where `close` ends a tag's code (outside string literals), or the end of `body`.
fn code_end(body: &str, close: &str) -> usize {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = string_end(bytes, i),
            _ if body[i..].starts_with(close) => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the string literal that starts at `start`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    (i + 1).min(bytes.len())
}

/// Adds the references of [`WRITTEN_ROOTS`] in one piece of code.
fn scan_expression(code: &str, out: &mut Vec<String>) {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    // Whether the last token was a `.`: `x.nodes` is an attribute, not the variable.
    let mut after_dot = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' || b == b'"' {
            i = string_end(bytes, i);
            after_dot = false;
        } else if ident(b) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &code[start..i];
            if !after_dot && WRITTEN_ROOTS.contains(&word) {
                let mut path = word.to_string();
                for _ in 0..2 {
                    match accessor(code, i) {
                        Some((name, end)) => {
                            path.push('.');
                            path.push_str(name);
                            i = end;
                        }
                        None => break,
                    }
                }
                out.push(path);
            }
            after_dot = false;
        } else {
            if !b.is_ascii_whitespace() {
                after_dot = b == b'.';
            }
            i += 1;
        }
    }
}

/// A literal accessor at `at`: `.NAME` or `["NAME"]` (spaces allowed); the name and the index
/// past it.
fn accessor(code: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = code.as_bytes();
    let skip = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let i = skip(at);
    match bytes.get(i)? {
        b'.' => {
            let start = skip(i + 1);
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            (end > start).then(|| (&code[start..end], end))
        }
        b'[' => {
            let start = skip(i + 1);
            let quote = *bytes.get(start)?;
            if quote != b'\'' && quote != b'"' {
                return None;
            }
            let end = string_end(bytes, start);
            let close = skip(end);
            (bytes.get(close) == Some(&b']') && end >= start + 2)
                .then(|| (&code[start + 1..end - 1], close + 1))
        }
        _ => None,
    }
}

/// The span of `needle` inside the source text of `text`, or the whole value.
fn find_in(text: &Sp<String>, source: &str, needle: &str) -> Span {
    source
        .get(text.span.offset()..text.span.end())
        .and_then(|slice| slice.find(needle))
        .map_or(text.span, |i| {
            Span::new(text.span.offset() + i, needle.len())
        })
}

/// Maps a byte range inside the value to the source, when the source spells the value
/// literally (plain, or quoted without escapes); otherwise the whole value.
fn locate_range(text: &Sp<String>, source: &str, start: usize, end: usize) -> Span {
    let Some(slice) = source.get(text.span.offset()..text.span.end()) else {
        return text.span;
    };
    let shift = if slice == text.as_str() {
        0
    } else if slice.len() == text.len() + 2 && &slice[1..slice.len() - 1] == text.as_str() {
        1
    } else {
        return text.span;
    };
    let start = start.min(text.len());
    let end = end.clamp(start, text.len());
    Span::new(text.span.offset() + shift + start, end - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str, form: Form) -> Vec<String> {
        written_references(text, form)
    }

    #[test]
    fn references_are_read_where_minijinja_does_not_report_them() {
        assert_eq!(
            written("{{ (nodes.a.output | list)[:inputs.n] }}", Form::Template),
            ["nodes.a.output", "inputs.n"]
        );
        assert_eq!(
            written("nodes[\"b-c\"]['stdout'][1:] | length", Form::Expression),
            ["nodes.b-c.stdout"]
        );
        assert_eq!(
            written(
                "{% for x in nodes . d.output %}{{ run.seed }}{% endfor %}",
                Form::Template
            ),
            ["nodes.d.output", "run.seed"]
        );
    }

    #[test]
    fn literal_text_strings_comments_and_raw_blocks_are_not_references() {
        assert!(
            written(
                "nodes.a {{ 'nodes.b' ~ x.nodes.c }} {# nodes.d #}{% raw %}{{ nodes.e }}{% endraw %}",
                Form::Template
            )
            .is_empty()
        );
        assert_eq!(
            written("{{ \"}} nodes.a\" }}{{ nodes.f }}", Form::Template),
            ["nodes.f"]
        );
    }

    #[test]
    fn values_are_written_json_style() {
        let render = |t: &str| environment().render_str(t, ()).unwrap();
        assert_eq!(
            render("{{ none }}|{{ true }}|{{ 'x' }}|{{ 2.5 }}|{{ 3 }}"),
            "null|true|x|2.5|3"
        );
        assert_eq!(render("{{ [none, 'a', false] }}"), "[null,\"a\",false]");
        assert_eq!(render("{{ {'k': none} }}"), "{\"k\":null}");
        assert_eq!(render("<{{ 'x' if false }}>"), "<>");
        let shell = shell_environment().render_str("echo {{ none }} {{ ['a b'] }}", ());
        assert_eq!(shell.unwrap(), "echo null '[\"a b\"]'");
    }

    #[test]
    fn nodes_without_a_literal_name_is_bare() {
        assert_eq!(written("nodes[name].output", Form::Expression), ["nodes"]);
    }
}
