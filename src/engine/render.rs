//! Evaluating expressions and rendering templates at run time.
//!
//! The `nodes` variable is a lazy object over the results committed so far, so building a
//! context costs the same for a node in a 10-node and a 1,000,000-node workflow. Validation
//! has already checked that every reference names a node this one waits for.

use crate::syntax::yaml::{Node as Yaml, Value as YamlValue};
use crate::workflow::{expr, limits};
use minijinja::value::{Object, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The values of `nodes.ID`, filled in as nodes resolve.
#[derive(Debug)]
///
/// Only the nodes that some expression reads have a slot: in a large workflow that is usually
/// a small part of the graph.
pub struct NodeValues {
    /// Id to slot.
    ids: HashMap<Box<str>, u32>,
    /// Node index to slot.
    slot_of: HashMap<u32, u32>,
    slots: Vec<OnceLock<Value>>,
    /// The values of the enclosing level, for a loop body's reads of nodes outside it.
    parent: Option<Arc<NodeValues>>,
}

impl NodeValues {
    /// Slots for the given nodes: (node index, id).
    pub fn new<'a>(read: impl IntoIterator<Item = (u32, &'a str)>) -> Self {
        let mut ids = HashMap::new();
        let mut slot_of = HashMap::new();
        for (slot, (node, id)) in read.into_iter().enumerate() {
            ids.insert(id.into(), slot as u32);
            slot_of.insert(node, slot as u32);
        }
        let slots = (0..ids.len()).map(|_| OnceLock::new()).collect();
        Self {
            ids,
            slot_of,
            slots,
            parent: None,
        }
    }

    /// Reads what this level lacks from `parent` (a loop body reading nodes outside it).
    pub fn with_parent(mut self, parent: Option<Arc<NodeValues>>) -> Self {
        self.parent = parent;
        self
    }

    /// Node `id`'s value, if it has one here.
    pub fn get(&self, id: &str) -> Option<Value> {
        match self.ids.get(id) {
            Some(&i) => self.slots[i as usize].get().cloned(),
            None => self.parent.as_ref()?.get(id),
        }
    }

    /// Records node `i`'s value (once); ignored for a node without a slot.
    pub fn set(&self, i: u32, value: &serde_json::Value) {
        if let Some(&slot) = self.slot_of.get(&i) {
            let _ = self.slots[slot as usize].set(Value::from(minijinja::value::Serde(value)));
        }
    }
}

impl Object for NodeValues {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get(key.as_str()?)
    }
}

/// Loop variables of a `for_each` instance.
#[derive(Clone, Debug)]
pub struct Locals {
    pub item: serde_json::Value,
    pub index: usize,
}

/// Renders against one run's inputs and node values.
pub struct Renderer {
    style: expr::TextStyle,
    inputs: Value,
    run: Value,
    nodes: Value,
    /// `loop` inside a loop's body and its loop-level expressions.
    loop_var: Option<Value>,
}

impl Renderer {
    pub fn new(
        inputs: &serde_json::Value,
        name: &str,
        seed: u64,
        nodes: Arc<NodeValues>,
        style: expr::TextStyle,
    ) -> Self {
        Self {
            style,
            inputs: Value::from(minijinja::value::Serde(inputs)),
            run: Value::from(minijinja::value::Serde(
                serde_json::json!({ "seed": seed, "name": name }),
            )),
            nodes: Value::from_dyn_object(nodes),
            loop_var: None,
        }
    }

    /// The renderer of a sub-graph: the same run, `nodes` read from `nodes`, and `inputs`
    /// replaced when given (a called workflow's).
    pub fn nested(
        &self,
        nodes: Arc<NodeValues>,
        inputs: Option<&serde_json::Value>,
        loop_var: Option<Value>,
    ) -> Self {
        Self {
            style: self.style,
            inputs: inputs.map_or_else(
                || self.inputs.clone(),
                |i| Value::from(minijinja::value::Serde(i)),
            ),
            run: self.run.clone(),
            nodes: Value::from_dyn_object(nodes),
            loop_var,
        }
    }

    fn context(&self, locals: Option<&Locals>) -> Value {
        let mut ctx = std::collections::BTreeMap::new();
        ctx.insert("inputs", self.inputs.clone());
        ctx.insert("nodes", self.nodes.clone());
        ctx.insert("run", self.run.clone());
        if let Some(l) = &self.loop_var {
            ctx.insert("loop", l.clone());
        }
        if let Some(l) = locals {
            ctx.insert("item", Value::from(minijinja::value::Serde(&l.item)));
            ctx.insert("index", Value::from(l.index));
        }
        Value::from(ctx)
    }

    /// Evaluates a bare expression.
    pub fn expression(&self, text: &str, locals: Option<&Locals>) -> Result<Value, RenderError> {
        let env = expr::environment();
        let compiled = env.compile_expression(text).map_err(|e| describe(&e))?;
        compiled
            .eval(self.context(locals))
            .map_err(|e| describe(&e))
    }

    /// Evaluates a bare expression for its truth.
    pub fn condition(&self, text: &str, locals: Option<&Locals>) -> Result<bool, RenderError> {
        self.expression(text, locals).map(|v| v.is_true())
    }

    /// Renders a template to text.
    pub fn template(&self, text: &str, locals: Option<&Locals>) -> Result<String, RenderError> {
        if !has_markup(text) {
            return Ok(text.to_string());
        }
        let env = expr::styled(self.style);
        env.render_str(text, self.context(locals))
            .map_err(|e| describe(&e))
            .and_then(capped)
    }

    /// Renders a `run:` line: every interpolated value is shell-quoted.
    pub fn shell_line(&self, text: &str, locals: Option<&Locals>) -> Result<String, RenderError> {
        if !has_markup(text) {
            return Ok(text.to_string());
        }
        expr::shell_styled(self.style)
            .render_str(text, self.context(locals))
            .map_err(|e| describe(&e))
            .and_then(capped)
    }

    /// Renders a structured argument: every string inside is a template, and a string that
    /// is exactly one `{{ expression }}` keeps the expression's type (a list stays a list).
    pub fn value(
        &self,
        node: &Yaml,
        locals: Option<&Locals>,
    ) -> Result<serde_json::Value, RenderError> {
        Ok(match &node.value {
            YamlValue::Str(s) => match single_expression(s) {
                Some(inner) => to_json(&self.expression(inner, locals)?)?,
                None => serde_json::Value::String(self.template(s, locals)?),
            },
            YamlValue::Seq(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.value(i, locals))
                    .collect::<Result<_, _>>()?,
            ),
            YamlValue::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.scalar_text(), self.value(v, locals)?);
                }
                serde_json::Value::Object(map)
            }
            _ => node.to_json(),
        })
    }
}

/// Converts an evaluated value to JSON; a value whose JSON is longer than
/// [`limits::RENDERED_BYTES`] is refused.
pub fn to_json(value: &Value) -> Result<serde_json::Value, RenderError> {
    if let Some(s) = value.as_str() {
        return capped(s.to_string()).map(serde_json::Value::String);
    }
    let mut size = Counter(0);
    if serde_json::to_writer(&mut size, value).is_err() && size.0 > limits::RENDERED_BYTES {
        return Err(too_large("value is longer than", None));
    }
    serde_json::to_value(value).map_err(|e| format!("value cannot be recorded: {e}").into())
}

/// Counts the bytes written to it, and refuses to go past [`limits::RENDERED_BYTES`].
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 > limits::RENDERED_BYTES {
            return Err(std::io::Error::other("too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A rendered text, unless it is longer than [`limits::RENDERED_BYTES`].
fn capped(text: String) -> Result<String, RenderError> {
    if text.len() > limits::RENDERED_BYTES {
        return Err(too_large("text is", Some(text.len())));
    }
    Ok(text)
}

/// The error for a rendering over the cap; `bytes` when its whole length is known (a value
/// serialised as JSON stops counting just past the cap).
fn too_large(what: &str, bytes: Option<usize>) -> RenderError {
    let limit = limits::RENDERED_BYTES;
    match bytes {
        Some(bytes) => format!(
            "the rendered {what} {bytes} bytes, more than the limit of {limit} bytes (docs/workflow.md#limits)"
        ),
        None => format!(
            "the rendered {what} the limit of {limit} bytes (docs/workflow.md#limits)"
        ),
    }
    .into()
}

fn has_markup(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The inner expression of a string that is exactly one `{{ ... }}`.
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// Why a template or expression could not be evaluated: the message the ledger records, and
/// where in the template's text it failed, when minijinja knows.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderError {
    pub message: String,
    /// Byte range in the template (or expression) text of the part that failed.
    pub range: Option<std::ops::Range<usize>>,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for RenderError {
    fn from(message: String) -> Self {
        RenderError {
            message,
            range: None,
        }
    }
}

fn describe(e: &minijinja::Error) -> RenderError {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return RenderError {
            message: format!(
                "evaluation ran out of fuel (its budget is {} units of work and memory; docs/workflow.md#limits)",
                limits::TEMPLATE_FUEL
            ),
            range: e.range(),
        };
    }
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    RenderError {
        message,
        range: e.range(),
    }
}

/// A template or expression that failed at run time, located in the workflow file so it can
/// be reported like a validation error.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TemplateFailure {
    /// The node (instance) whose template failed; `None` for the workflow's `outputs`.
    pub node: Option<String>,
    /// What was being evaluated: `` `with.text` ``, `` `if` ``, `` `for_each` ``, ...
    pub field: String,
    /// The byte range in the workflow source of the part that failed (the whole value when
    /// the part cannot be located).
    pub offset: usize,
    pub len: usize,
    /// The text of the part that failed, when minijinja says which.
    pub expression: Option<String>,
    pub message: String,
    /// The names in scope where it was evaluated.
    pub scope: String,
    /// The file `offset` is in, and its text, when known: a called workflow's failures are
    /// located in the called file, not the one the run was given.
    #[serde(skip)]
    pub file: Option<(String, std::sync::Arc<str>)>,
}

impl TemplateFailure {
    /// The failure with a secret that reached its texts (a message quoting a value) masked:
    /// it is printed for people.
    pub fn redacted(mut self, redactor: &crate::policy::redact::Redactor) -> Self {
        for text in [Some(&mut self.message), self.expression.as_mut()]
            .into_iter()
            .flatten()
        {
            if let (masked, 1..) = redactor.redact(text) {
                *text = masked.into_owned();
            }
        }
        self
    }

    /// The failure, located in `file` (whose text is `source`).
    pub fn in_file(mut self, file: &str, source: &std::sync::Arc<str>) -> Self {
        self.file = Some((file.to_string(), std::sync::Arc::clone(source)));
        self
    }

    /// Locates `error`, raised evaluating `text`, inside `span` of `source` (the YAML value
    /// that holds `text`).
    pub fn new(
        source: &str,
        span: crate::syntax::yaml::Span,
        text: &str,
        error: &RenderError,
        what: (Option<&str>, String, String),
    ) -> Self {
        let (node, field, scope) = what;
        let part = error.range.clone().filter(|r| {
            r.end <= text.len() && text.is_char_boundary(r.start) && text.is_char_boundary(r.end)
        });
        let written = source.get(span.offset()..span.end()).unwrap_or_default();
        // The template's text stands as it is in the file unless the YAML escaped or folded it.
        let (offset, len) = match (written.find(text), &part) {
            (Some(at), Some(r)) => (span.offset() + at + r.start, r.len()),
            _ => (span.offset(), span.len()),
        };
        TemplateFailure {
            node: node.map(str::to_string),
            field,
            offset,
            len,
            expression: part.map(|r| text[r].to_string()),
            message: error.message.clone(),
            scope,
            file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> (Renderer, Arc<NodeValues>) {
        let values = Arc::new(NodeValues::new([(0, "a"), (1, "b")]));
        values.set(
            0,
            &serde_json::json!({"output": "$(touch pwned)", "status": "succeeded"}),
        );
        (
            Renderer::new(
                &serde_json::json!({"n": 3}),
                "t",
                7,
                values.clone(),
                expr::TextStyle::Json,
            ),
            values,
        )
    }

    #[test]
    fn templates_read_nodes_inputs_and_run() {
        let (r, _) = renderer();
        assert_eq!(
            r.template("{{ nodes.a.status }} {{ inputs.n }} {{ run.seed }}", None)
                .unwrap(),
            "succeeded 3 7"
        );
    }

    #[test]
    fn evaluation_runs_on_fuel() {
        let (r, _) = renderer();
        let looping = "{% for a in 'ab' * 500 %}{% for b in 'ab' * 500 %}{% for c in 'ab' * 500 %}x{% endfor %}{% endfor %}{% endfor %}";
        for result in [
            r.template(looping, None).map(|_| ()),
            r.shell_line(looping, None).map(|_| ()),
            r.expression("('ab' * 100000000) | length", None)
                .map(|_| ()),
        ] {
            let e = result.unwrap_err();
            assert!(e.message.contains("ran out of fuel"), "{e}");
        }
    }

    #[test]
    fn rendered_values_are_capped() {
        let (r, _) = renderer();
        // Within the fuel, over the size: 6 MiB in one go.
        let e = r.template("{{ 'abcdef' * 1048576 }}", None).unwrap_err();
        assert!(
            e.message.contains("the rendered text is 6291456 bytes"),
            "{e}"
        );
        let big = r.expression("['abcdef' * 1048576]", None);
        match big {
            Ok(v) => assert!(
                to_json(&v)
                    .unwrap_err()
                    .message
                    .contains("rendered value is longer than the limit")
            ),
            Err(e) => assert!(e.message.contains("fuel"), "{e}"),
        }
        assert_eq!(r.template("{{ 'ab' * 1000 }}", None).unwrap().len(), 2000);
    }

    #[test]
    fn undefined_values_are_errors() {
        let (r, _) = renderer();
        assert!(r.template("{{ nodes.b.output }}", None).is_err());
        assert!(r.template("{{ inputs.missing }}", None).is_err());
    }

    #[test]
    fn shell_lines_quote_interpolated_values() {
        let (r, _) = renderer();
        assert_eq!(
            r.shell_line("echo {{ nodes.a.output }}", None).unwrap(),
            "echo '$(touch pwned)'"
        );
    }

    #[test]
    fn a_single_expression_keeps_its_type() {
        let (r, _) = renderer();
        let yaml =
            crate::syntax::yaml::parse("v: \"{{ [1, inputs.n] }}\"\nw: \"n={{ inputs.n }}\"")
                .unwrap();
        let YamlValue::Map(entries) = &yaml.value else {
            panic!()
        };
        assert_eq!(
            r.value(&entries[0].1, None).unwrap(),
            serde_json::json!([1, 3])
        );
        assert_eq!(
            r.value(&entries[1].1, None).unwrap(),
            serde_json::json!("n=3")
        );
    }

    #[test]
    fn a_failure_printed_for_people_has_its_secrets_masked() {
        let source = "text: \"{{ nodes.a.output[\"hunter22secret\"] }}\"";
        let error = RenderError {
            message: "no key hunter22secret".into(),
            range: Some(3..34),
        };
        let text = &source[7..source.len() - 1];
        let failure = TemplateFailure::new(
            source,
            crate::syntax::yaml::Span::new(6, source.len() - 6),
            text,
            &error,
            (
                Some("a"),
                "`with.text`".into(),
                "nodes: a (succeeded)".into(),
            ),
        );
        assert!(failure.message.contains("hunter22secret"));
        let redactor = crate::policy::redact::Redactor::with_values(
            &[],
            &[("TOK".into(), "hunter22secret".into())],
        )
        .unwrap();
        let masked = failure.redacted(&redactor);
        assert_eq!(masked.message, "no key [REDACTED:TOK]");
        assert!(!masked.expression.unwrap().contains("hunter22secret"));
    }
}
