//! The byte encoder behind [`super::event::Event::write`]: event bodies written straight to
//! JSON text, without a JSON tree.
//!
//! A ledger line is `{"seq":N,"prev":"...",` + body + `}`. Bodies start with `"event"` and
//! `"clock"`, then `"node"` where the event is a node's, then the event's own fields in a
//! fixed order, so the same run always gives the same bytes. Bodies are appended to a batch
//! buffer, one per line (JSON strings escape newlines, so `\n` separates them safely).

use serde_json::Value;
use std::borrow::Cow;
use std::fmt::Write;

/// What must not reach a ledger line in clear (the run's redaction, `docs/policy.md`).
///
/// Every text field of every event passes through it on its way into a line (see [`Body`]):
/// a field added to an event is masked without anyone remembering to. Only names the format
/// itself gives meaning to (node ids, tool names, codes, hashes) are written as they are.
pub trait Mask {
    /// `text` with what must not be seen replaced.
    fn mask<'t>(&self, text: &'t str) -> Cow<'t, str>;
    /// Masks every string inside `value`.
    fn mask_json(&self, value: &mut Value);
}

/// Where event bodies are appended: a plain buffer (written as is), or one that masks every
/// text field on the way in (the engine's outbox).
pub trait Sink {
    fn parts(&mut self) -> (&mut String, Option<&dyn Mask>);
}

impl Sink for String {
    #[inline]
    fn parts(&mut self) -> (&mut String, Option<&dyn Mask>) {
        (self, None)
    }
}

/// An event body under construction, written straight into a batch buffer.
pub struct Body<'a> {
    body: &'a mut String,
    mask: Option<&'a dyn Mask>,
}

impl<'a> Body<'a> {
    #[inline]
    pub fn new(sink: &'a mut (impl Sink + ?Sized), kind: &str, clock: u64) -> Self {
        let (body, mask) = sink.parts();
        body.push_str("\"event\":\"");
        body.push_str(kind);
        body.push_str("\",\"clock\":");
        body.push_str(super::decimal(clock, &mut [0; 20]));
        Self { body, mask }
    }

    #[inline]
    pub fn node(self, id: &str) -> Self {
        self.name("node", id)
    }

    /// Text: masked.
    #[inline]
    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        match self.mask {
            Some(mask) => push_json_str(self.body, &mask.mask(value)),
            None => push_json_str(self.body, value),
        }
        self
    }

    /// A name the format gives meaning to (an id, a tool, a code, a hash, an enum value):
    /// written as it is, since a reader must find it again.
    #[inline]
    pub fn name(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_json_str(self.body, value);
        self
    }

    #[inline]
    pub fn opt_name(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.name(key, v),
            None => self,
        }
    }

    #[inline]
    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    #[inline]
    pub fn u64(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        self.body.push_str(super::decimal(value, &mut [0; 20]));
        self
    }

    #[inline]
    pub fn opt_u64(self, key: &str, value: Option<u64>) -> Self {
        match value {
            Some(v) => self.u64(key, v),
            None => self,
        }
    }

    #[inline]
    pub fn i64(mut self, key: &str, value: i64) -> Self {
        self.key(key);
        let _ = write!(self.body, "{value}");
        self
    }

    #[inline]
    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.body.push_str(if value { "true" } else { "false" });
        self
    }

    /// A JSON value, serialized compactly (object keys in their map's order); its strings are
    /// masked.
    pub fn json(mut self, key: &str, value: &Value) -> Self {
        self.key(key);
        let masked;
        let value = match self.mask {
            Some(mask) => {
                let mut copy = value.clone();
                mask.mask_json(&mut copy);
                masked = copy;
                &masked
            }
            None => value,
        };
        // Serializing a serde_json::Value into a String cannot fail.
        self.body
            .push_str(&serde_json::to_string(value).unwrap_or_default());
        self
    }

    /// Already-serialized JSON; its strings are masked (parsed and written again, when there
    /// is a mask: object keys keep their order, as `serde_json` sorts them both times).
    #[inline]
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        match self.mask {
            Some(_) => match serde_json::from_str::<Value>(json) {
                Ok(value) => return self.json(key, &value),
                // Text that is not JSON (never, from the engine) is masked as text.
                Err(_) => return self.str(key, json),
            },
            None => {
                self.key(key);
                self.body.push_str(json);
            }
        }
        self
    }

    /// A list of names (node ids, checks): written as they are, like [`Body::name`].
    pub fn strs<'v>(mut self, key: &str, values: impl IntoIterator<Item = &'v str>) -> Self {
        self.key(key);
        self.body.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.body.push(',');
            }
            push_json_str(self.body, v);
        }
        self.body.push(']');
        self
    }

    #[inline]
    fn key(&mut self, key: &str) {
        self.body.push_str(",\"");
        self.body.push_str(key);
        self.body.push_str("\":");
    }

    /// Ends the body (a newline separates it from the next in the batch).
    #[inline]
    pub fn finish(self) {
        self.body.push('\n');
    }
}

/// Appends `s` as a JSON string literal. Control characters other than `\n`, `\r` and `\t`
/// are written `\u00XX` (backspace and form feed too, unlike serde_json): ledger bytes never
/// change for the same content.
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs escaping (most of a workflow's source).
        if let Some(chunk) = bytes.get(i..i + 8)
            && !needs_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes")))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether any of the eight bytes is a control character, `"` or `\\`.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    // A byte below 0x20 (bytes of 0x80 and above, in UTF-8 sequences, never are).
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    control
        || has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "line\nbreak\r\t",
            "\u{1}\u{1f}",
            "ünï😀",
            "eight by\"tes and more \\ then\u{7f}\u{80}é \u{1f}x",
            "0123456789abcdef\n0123456789abcdef",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    /// The escaping the ledger format has always used: serde_json's, except that backspace
    /// and form feed are written `\u0008` and `\u000c` (ledgers stay byte-identical).
    fn reference(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn backspace_and_form_feed_keep_their_unicode_escapes() {
        let mut out = String::new();
        push_json_str(&mut out, "a\u{8}b\u{c}c");
        assert_eq!(out, "\"a\\u0008b\\u000cc\"");
    }

    proptest::proptest! {
        #[test]
        fn any_string_escapes_as_the_format_always_has(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            proptest::prop_assert_eq!(&out, &reference(&s));
            proptest::prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn body_is_a_json_object_fragment() {
        let mut body = String::new();
        Body::new(&mut body, "Start", 3)
            .node("a[1]")
            .u64("attempt", 1)
            .json("input", &serde_json::json!({"b": [1, "x"]}))
            .finish();
        let v: Value = serde_json::from_str(&format!("{{{}}}", body.trim_end())).unwrap();
        assert_eq!(v["event"], "Start");
        assert_eq!(v["clock"], 3);
        assert_eq!(v["node"], "a[1]");
        assert_eq!(v["input"]["b"][1], "x");
    }
}
