//! Expressions (`if:`, `branch.if`, `for_each`, `assert.that`) and templates (`{{ ... }}` in
//! strings): the shared minijinja environment, and the static checks validation runs on them
//! (syntax, and references to nodes, inputs and loop variables).

use crate::syntax::diag::{WorkflowError, did_you_mean, ss};
use crate::syntax::read::{Errors, Sp};
use crate::syntax::yaml::Span;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The fields of `nodes.ID` that expressions may read.
pub const NODE_FIELDS: &[&str] = &["output", "stdout", "stderr", "exit_code", "status"];

/// The fields of `run`.
pub const RUN_FIELDS: &[&str] = &["seed", "name"];

/// The environment every expression and template is compiled in: undefined values are errors
/// (SPEC 2), and the extra filters workflows use are registered.
pub fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("lines", |s: String| -> Vec<String> {
            s.lines().map(str::to_string).collect()
        });
        env
    })
}

/// The environment for `run:` lines: like [`environment`], but every value interpolated
/// with `{{ }}` is shell-quoted, so a node's output can never inject a command (SPEC 2).
pub fn shell_environment() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = environment().clone();
        env.set_formatter(|out, _state, value| {
            let text = value.to_string();
            out.write_str(&crate::sh::quote(&text)).map_err(|_| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write")
            })
        });
        env
    })
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
}

/// Compiles `text` and checks its references; returns the nodes it reads, in first-use order.
pub fn check(
    text: &Sp<String>,
    form: Form,
    scope: &Scope<'_>,
    source: &str,
    errors: &mut Errors,
) -> Vec<u32> {
    if form == Form::Template
        && !text.contains("{{")
        && !text.contains("{%")
        && !text.contains("{#")
    {
        return Vec::new();
    }
    let env = environment();
    let vars = match form {
        Form::Expression => env
            .compile_expression(text)
            .map(|e| e.undeclared_variables(true)),
        Form::Template => env
            .template_from_str(text)
            .map(|t| t.undeclared_variables(true)),
    };
    let vars = match vars {
        Ok(vars) => vars,
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
                help: (form == Form::Expression && text.contains("{{"))
                    .then(|| "this is a bare expression: write it without `{{ }}`".to_string()),
            });
            return Vec::new();
        }
    };
    // Sorted so that diagnostics and dependency lists do not depend on hash order.
    let mut vars: Vec<String> = vars.into_iter().collect();
    vars.sort();
    let mut used = Vec::new();
    for var in &vars {
        let mut parts = var.split('.');
        let root = parts.next().unwrap_or_default();
        let field = parts.next();
        let attr = parts.next();
        match root {
            "nodes" => match field {
                Some(id) => {
                    if let Some(&idx) = scope.nodes.get(id) {
                        used.push(idx);
                        if let Some(attr) = attr.filter(|a| !NODE_FIELDS.contains(a)) {
                            errors.push(WorkflowError::UnknownReference {
                                what: "node field",
                                name: attr.to_string(),
                                span: ss(field_span(text, source, id, attr)),
                                help: did_you_mean(attr, NODE_FIELDS.iter().copied()).or_else(
                                    || Some(format!("a node has: {}", NODE_FIELDS.join(", "))),
                                ),
                            });
                        }
                    } else {
                        errors.push(unknown_node(id, text, source, scope));
                    }
                }
                None => {
                    let subscripts = subscripted_ids(text);
                    if subscripts.is_empty() {
                        errors.push(WorkflowError::InvalidValue {
                            message: "`nodes` is used without naming a node".into(),
                            span: ss(find_in(text, source, "nodes")),
                            label: "which node?".into(),
                            help: Some("name the node: `nodes.ID.output`, or `nodes[\"ID\"].output` for ids with `-`; kairos orders nodes by the references it can see".into()),
                        });
                    }
                    for id in subscripts {
                        match scope.nodes.get(id.as_str()) {
                            Some(&idx) => used.push(idx),
                            None => errors.push(unknown_node(&id, text, source, scope)),
                        }
                    }
                }
            },
            "inputs" => {
                if let Some(name) = field.filter(|n| !scope.inputs.contains(n)) {
                    errors.push(WorkflowError::UnknownReference {
                        what: "input",
                        name: name.to_string(),
                        span: ss(find_in(text, source, &format!("inputs.{name}"))),
                        help: did_you_mean(name, scope.inputs.iter().copied()).or_else(|| {
                            Some("declare it under `inputs:` at the top of the workflow".into())
                        }),
                    });
                }
            }
            "item" | "index" if scope.loop_vars => {}
            "item" | "index" => errors.push(WorkflowError::UnknownReference {
                what: "variable",
                name: root.to_string(),
                span: ss(find_in(text, source, root)),
                help: Some(format!(
                    "`{root}` is defined only in a node with `for_each`"
                )),
            }),
            "run" => {
                if let Some(f) = field.filter(|f| !RUN_FIELDS.contains(f)) {
                    errors.push(WorkflowError::UnknownReference {
                        what: "run field",
                        name: f.to_string(),
                        span: ss(find_in(text, source, &format!("run.{f}"))),
                        help: Some(format!("`run` has: {}", RUN_FIELDS.join(", "))),
                    });
                }
            }
            other => {
                let mut names = vec!["nodes", "inputs", "run"];
                if scope.loop_vars {
                    names.extend(["item", "index"]);
                }
                errors.push(WorkflowError::UnknownReference {
                    what: "variable",
                    name: other.to_string(),
                    span: ss(find_in(text, source, other)),
                    help: did_you_mean(other, names.iter().copied())
                        .or_else(|| Some(format!("expressions can use: {}", names.join(", ")))),
                });
            }
        }
    }
    used.dedup();
    used
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

/// Ids used as `nodes["ID"]` or `nodes['ID']`.
fn subscripted_ids(text: &str) -> Vec<String> {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"nodes\s*\[\s*["']([^"']+)["']\s*\]"#).expect("valid regex")
    });
    re.captures_iter(text).map(|c| c[1].to_string()).collect()
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
