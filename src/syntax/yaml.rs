//! Stage one of parsing: YAML text to a tree of values that remember where they came from.
//!
//! serde-saphyr parses the document into [`Node`]s, each carrying the byte span of its source
//! text. Nothing here knows what a workflow is; `workflow::raw` reads the tree, so that every
//! problem in a file (unknown keys, wrong types, duplicate keys) can be collected and reported
//! together instead of stopping at the first serde error.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A byte range in the workflow source. Offsets are 32-bit: [`parse`] refuses larger input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    offset: u32,
    len: u32,
}

impl Span {
    /// A span; offsets past 4 GiB saturate (such input never reaches a span).
    pub fn new(offset: usize, len: usize) -> Self {
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        let len = u32::try_from(len)
            .unwrap_or(u32::MAX)
            .min(u32::MAX - offset);
        Self { offset, len }
    }

    pub const fn offset(self) -> usize {
        self.offset as usize
    }

    pub const fn len(self) -> usize {
        self.len as usize
    }

    pub const fn is_empty(self) -> bool {
        self.len == 0
    }

    pub const fn end(self) -> usize {
        self.offset as usize + self.len as usize
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.offset(), span.len()).into()
    }
}

/// The largest workflow source that spans can address.
pub const MAX_SOURCE: usize = u32::MAX as usize;

/// A YAML value with its span.
///
/// Trees of large workflows hold millions of these, so the layout is kept small: 32 bytes a
/// node, short strings (ids, keys) inline, collections as boxed slices.
#[derive(Clone, Debug)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Str),
    Seq(Box<[Node]>),
    /// Entries in source order. Duplicate keys are kept so that validation can report them.
    Map(Box<[(Node, Node)]>),
}

const _: () = assert!(std::mem::size_of::<Node>() == 32);

/// An immutable string that keeps up to 22 bytes inline, without an allocation.
#[derive(Clone)]
pub enum Str {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

const INLINE: usize = 22;

impl Str {
    pub fn new(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Str::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Str::Heap(s.into())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // The bytes were copied from a `&str` and cut at its length: valid UTF-8.
            Str::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Str::Heap(s) => s,
        }
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str::new(s)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            Str::new(&s)
        } else {
            Str::Heap(s.into_boxed_str())
        }
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Value {
    /// What a user would call this kind of value, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts the tree to JSON (keys as strings, later duplicates win).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.scalar_text(), v.to_json());
                }
                J::Object(map)
            }
        }
    }

    /// The text of a scalar key, borrowed when it is a string.
    pub fn key_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.value {
            Value::Str(s) => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(self.scalar_text()),
        }
    }

    /// The text of a scalar as a key or a string would use it.
    pub fn scalar_text(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.to_string(),
            Value::Seq(_) | Value::Map(_) => String::new(),
        }
    }
}

/// The part of a YAML syntax error that diagnostics need.
#[derive(Debug)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    if source.len() > MAX_SOURCE {
        return Err(SyntaxError {
            message: "the file is larger than 4 GiB".into(),
            span: Span::default(),
        });
    }
    // The default budget caps a document at 250,000 YAML nodes; workflows of a million
    // nodes are legitimate. Anything that is not an alias costs at least a byte of input, so
    // limits that grow with the input keep the protection against alias bombs (whose limits
    // stay at their defaults) without capping honest files.
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_events = source.len().saturating_mul(2).max(budget.max_events);
    budget.max_nodes = source.len().max(budget.max_nodes);
    budget.max_total_scalar_bytes = source.len().max(budget.max_total_scalar_bytes);
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        budget: Some(budget),
    };
    match serde_saphyr::from_str_with_options::<Spanned<Value>>(source, options) {
        Ok(spanned) => Ok(node_from(spanned, source.len())),
        Err(err) => {
            let inner = err.without_snippet();
            // Parser errors carry line and column but not always a byte offset.
            let span = inner
                .location()
                .map(|loc| {
                    let span = loc.span();
                    let len = span
                        .byte_len()
                        .filter(|&l| l != u64::from(u32::MAX))
                        .unwrap_or(1) as usize;
                    match span.byte_offset().filter(|&o| o != u64::from(u32::MAX)) {
                        Some(o) => Span::new(o as usize, len),
                        None => Span::new(offset_of(source, loc.line(), loc.column()), 1),
                    }
                })
                .map(|s| clamp(s, source.len()))
                .unwrap_or_default();
            let message = strip_location_suffix(&inner.to_string());
            // serde-saphyr's advice names its own functions; a workflow or policy file is one document.
            let message = if message.starts_with("multiple YAML documents") {
                "the file holds more than one YAML document (`---`); kairos reads one".into()
            } else {
                message
            };
            Err(SyntaxError { message, span })
        }
    }
}

/// The byte offset of a 1-based line and character column.
fn offset_of(source: &str, line: u64, column: u64) -> usize {
    let line_start: usize = source
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let rest = &source[line_start.min(source.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1) as usize)
            .map_or(rest.len(), |(i, _)| i)
}

fn strip_location_suffix(msg: &str) -> String {
    // serde-saphyr appends " at line X, column Y", and for an alias also where its anchor is
    // defined and used; diagnostics show the location themselves.
    match msg.find(" at line ") {
        Some(i) => msg[..i].trim_end().to_string(),
        None => msg.trim_end().to_string(),
    }
}

fn clamp(span: Span, len: usize) -> Span {
    let offset = span.offset().min(len);
    Span::new(offset, span.len().min(len - offset))
}

fn node_from(spanned: Spanned<Value>, source_len: usize) -> Node {
    let loc = spanned.referenced.span();
    let span = Span::new(
        loc.byte_offset().unwrap_or(0) as usize,
        loc.byte_len().unwrap_or(0) as usize,
    );
    Node {
        span: clamp(span, source_len),
        value: spanned.value,
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .or(Ok(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Str::new(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(node_from(item, usize::MAX));
        }
        Ok(Value::Seq(items.into_boxed_slice()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            entries.push((node_from(key, usize::MAX), node_from(value, usize::MAX)));
        }
        Ok(Value::Map(entries.into_boxed_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_keep_their_text_inline_or_on_the_heap() {
        for text in [
            "",
            "t1",
            "é",
            &"x".repeat(INLINE),
            &"y".repeat(INLINE + 1),
            "ünïcødé ünïcødé ü",
        ] {
            let s = Str::new(text);
            assert_eq!(s.as_str(), text);
            assert_eq!(Str::from(text.to_string()), s);
            assert_eq!(
                matches!(s, Str::Inline { .. }),
                text.len() <= INLINE,
                "{text}"
            );
        }
    }

    #[test]
    fn an_alias_bomb_is_a_syntax_error_without_locations_in_its_message() {
        let mut source = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (p, c) in ('a'..='i').zip('b'..='j') {
            source.push_str(&format!(
                "{c}: &{c} [{}]\n",
                vec![format!("*{p}"); 9].join(", ")
            ));
        }
        let err = parse(&source).unwrap_err();
        assert!(
            err.message.starts_with("budget breached"),
            "{}",
            err.message
        );
        assert!(!err.message.contains(" at line"), "{}", err.message);
    }

    #[test]
    fn spans_and_scalars_survive_the_compact_tree() {
        let source = "a: [1, two, \"a string longer than twenty-two bytes\"]\nb: {c: true}\n";
        let root = parse(source).unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("a mapping")
        };
        assert_eq!(entries[0].0.as_str(), Some("a"));
        let Value::Seq(items) = &entries[0].1.value else {
            panic!("a list")
        };
        let texts: Vec<&str> = items
            .iter()
            .map(|n| &source[n.span.offset()..n.span.end()])
            .collect();
        assert_eq!(
            texts,
            ["1", "two", "\"a string longer than twenty-two bytes\""]
        );
        assert_eq!(
            items[2].as_str(),
            Some("a string longer than twenty-two bytes")
        );
        assert_eq!(entries[1].1.to_json(), serde_json::json!({"c": true}),);
    }
}
