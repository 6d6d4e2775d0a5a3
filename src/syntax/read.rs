//! Helpers that read typed values out of the [`yaml`](super::yaml) tree.
//!
//! Each helper records a [`WorkflowError`] and returns `None` when the value has the wrong
//! shape, so reading goes on and later problems are reported too.

use super::diag::{WorkflowError, did_you_mean, ss};
use super::yaml::{Node, Span, Value};

/// A value with the span of its source text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Collected errors of one file.
pub type Errors = Vec<WorkflowError>;

/// Reads a mapping key by key; keys that nobody asked for are reported as unknown.
pub struct Fields<'n> {
    node: &'n Node,
    entries: &'n [(Node, Node)],
    known: &'static [&'static str],
    context: &'static str,
}

impl<'n> Fields<'n> {
    /// Starts reading `node` as a mapping with the given known keys; reports unknown keys
    /// at once. `context` names the mapping in messages ("node", "policy", ...).
    pub fn new(
        node: &'n Node,
        context: &'static str,
        known: &'static [&'static str],
        errors: &mut Errors,
    ) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            errors.push(wrong_type(node, &format!("a mapping ({context})")));
            return None;
        };
        for (key, _) in entries {
            // A list or a mapping as a key (`? [a, b]`) has no name to look up.
            if matches!(key.value, Value::Seq(_) | Value::Map(_)) {
                errors.push(wrong_type(key, &format!("a key of {context}")));
                continue;
            }
            let name = key.key_text();
            if !known.contains(&name.as_ref()) {
                errors.push(WorkflowError::UnknownKey {
                    help: did_you_mean(&name, known.iter().copied())
                        .or_else(|| Some(format!("known keys: {}", known.join(", ")))),
                    key: name.into_owned(),
                    context: context.to_string(),
                    span: ss(key.span),
                });
            }
        }
        Self::checked(node, context, known)
    }

    /// Reads a mapping that [`new`](Self::new) has already checked, without reporting again.
    pub fn checked(
        node: &'n Node,
        context: &'static str,
        known: &'static [&'static str],
    ) -> Option<Self> {
        let Value::Map(entries) = &node.value else {
            return None;
        };
        Some(Self {
            node,
            entries,
            known,
            context,
        })
    }

    pub fn span(&self) -> Span {
        self.node.span
    }

    /// The value of `key` (the first, if duplicated: duplicates are reported separately).
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        debug_assert!(self.known.contains(&key), "{key} is not declared as known");
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }

    /// The key node of `key`, for labels that point at the key rather than the value.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(k, _)| k.span)
    }

    /// Like [`get`](Self::get) but reports a missing key.
    pub fn require(&self, key: &'static str, errors: &mut Errors) -> Option<&'n Node> {
        let value = self.get(key);
        if value.is_none() {
            errors.push(WorkflowError::MissingKey {
                key: key.to_string(),
                context: self.context.to_string(),
                span: ss(self.node.span),
                help: None,
            });
        }
        value
    }

    pub fn entries(&self) -> &'n [(Node, Node)] {
        self.entries
    }
}

pub fn wrong_type(node: &Node, expected: &str) -> WorkflowError {
    WorkflowError::WrongType {
        expected: expected.to_string(),
        found: node.value.kind(),
        span: ss(node.span),
        help: None,
    }
}

pub fn string(node: &Node, errors: &mut Errors) -> Option<Sp<String>> {
    str(node, errors).map(|s| Sp::new(s.value.to_string(), s.span))
}

/// A string, borrowed from the tree.
pub fn str<'n>(node: &'n Node, errors: &mut Errors) -> Option<Sp<&'n str>> {
    match &node.value {
        Value::Str(s) => Some(Sp::new(s.as_str(), node.span)),
        _ => {
            errors.push(wrong_type(node, "a string"));
            None
        }
    }
}

/// A scalar read as text: strings as they are, numbers and booleans as written.
pub fn scalar_text(node: &Node, errors: &mut Errors) -> Option<Sp<String>> {
    match &node.value {
        Value::Seq(_) | Value::Map(_) | Value::Null => {
            errors.push(wrong_type(node, "a string"));
            None
        }
        _ => Some(Sp::new(node.scalar_text(), node.span)),
    }
}

/// An expression: a string, or a YAML boolean (`if: true`) taken as the literal.
pub fn expression(node: &Node, errors: &mut Errors) -> Option<Sp<String>> {
    match node.value {
        Value::Bool(b) => Some(Sp::new(b.to_string(), node.span)),
        _ => string(node, errors),
    }
}

pub fn boolean(node: &Node, errors: &mut Errors) -> Option<Sp<bool>> {
    match node.value {
        Value::Bool(b) => Some(Sp::new(b, node.span)),
        _ => {
            errors.push(wrong_type(node, "`true` or `false`"));
            None
        }
    }
}

pub fn integer(node: &Node, errors: &mut Errors) -> Option<Sp<i64>> {
    match node.value {
        Value::Int(i) => Some(Sp::new(i, node.span)),
        _ => {
            errors.push(wrong_type(node, "an integer"));
            None
        }
    }
}

pub fn non_negative(node: &Node, errors: &mut Errors) -> Option<Sp<u64>> {
    let i = integer(node, errors)?;
    match u64::try_from(i.value) {
        Ok(u) => Some(Sp::new(u, i.span)),
        Err(_) => {
            errors.push(WorkflowError::InvalidValue {
                message: format!("expected a non-negative integer, found {}", i.value),
                span: ss(i.span),
                label: "negative".into(),
                help: None,
            });
            None
        }
    }
}

pub fn number(node: &Node, errors: &mut Errors) -> Option<Sp<f64>> {
    match node.value {
        #[allow(clippy::cast_precision_loss)]
        Value::Int(i) => Some(Sp::new(i as f64, node.span)),
        Value::Float(f) => Some(Sp::new(f, node.span)),
        _ => {
            errors.push(wrong_type(node, "a number"));
            None
        }
    }
}

/// A list of strings; a single string is not accepted (lists are always written as lists).
pub fn string_list(node: &Node, errors: &mut Errors) -> Vec<Sp<String>> {
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(|i| string(i, errors)).collect(),
        Value::Str(s) => {
            errors.push(WorkflowError::WrongType {
                expected: "a list of strings".into(),
                found: node.value.kind(),
                span: ss(node.span),
                help: Some(format!("write a list, even of one item: `[{s}]`")),
            });
            Vec::new()
        }
        _ => {
            errors.push(wrong_type(node, "a list of strings"));
            Vec::new()
        }
    }
}

/// Reports every duplicate key anywhere in the tree. Iterative, so deep documents are fine;
/// small mappings (nearly all of them) are checked by scanning, without hashing.
pub fn check_duplicate_keys(root: &Node, errors: &mut Errors) {
    let mut stack = vec![root];
    let mut seen = std::collections::HashMap::new();
    while let Some(node) = stack.pop() {
        match &node.value {
            Value::Seq(items) => stack.extend(items.iter().rev()),
            Value::Map(entries) => {
                // Collection keys have no text to compare; `Fields` reports them.
                let scalar = |k: &Node| !matches!(k.value, Value::Seq(_) | Value::Map(_));
                if entries.len() <= 16 {
                    for (i, (key, _)) in entries.iter().enumerate().filter(|(_, (k, _))| scalar(k))
                    {
                        let text = key.key_text();
                        if let Some((first, _)) = entries[..i]
                            .iter()
                            .find(|(k, _)| scalar(k) && k.key_text() == text)
                        {
                            errors.push(duplicate(&text, first.span, key.span));
                        }
                    }
                } else {
                    seen.clear();
                    for (key, _) in entries.iter().filter(|(k, _)| scalar(k)) {
                        let text = key.key_text();
                        if let Some(first) = seen.get(&text) {
                            errors.push(duplicate(&text, *first, key.span));
                        } else {
                            seen.insert(text, key.span);
                        }
                    }
                }
                stack.extend(entries.iter().rev().map(|(_, v)| v));
            }
            _ => {}
        }
    }
}

fn duplicate(key: &str, first: Span, second: Span) -> WorkflowError {
    WorkflowError::DuplicateKey {
        key: key.to_string(),
        first: ss(first),
        second: ss(second),
    }
}
