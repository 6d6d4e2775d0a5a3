//! One key per object in a ledger line, at every depth.
//!
//! JSON leaves a repeated key to the reader: serde_json and jq keep the last value, other
//! readers the first, others refuse. A ledger line with `"status"` twice would say one thing to
//! kairos and another to a script reading the same signed file, so every reader of a ledger
//! refuses such a line ([`ReadError::DuplicateKey`](super::reader::ReadError)). The check is
//! made while the line's head is read ([`super::reader::Head`]): the values the head does not
//! need are walked by [`Unique`] instead of being skipped, so the line is still parsed once.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use super::reader::Head;

/// A key met twice in one object, and where that object is in the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub key: String,
    /// Where the object is, as a JSON Pointer (RFC 6901): empty for the line itself,
    /// `/counts`, `/output/items/0`, ...
    pub pointer: String,
}

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key comes from the file: escaped, so that it cannot drive the terminal.
        let key = self.key.escape_debug();
        if self.pointer.is_empty() {
            write!(f, "duplicate key `{key}`")
        } else {
            write!(
                f,
                "duplicate key `{key}` in `{}`",
                self.pointer.escape_debug()
            )
        }
    }
}

/// Where a value is: the chain of keys and indexes from the line down to it, kept on the stack
/// and spelled out only for a duplicate.
#[derive(Clone, Copy)]
pub(super) enum At<'p> {
    Line,
    Key(&'p str, &'p At<'p>),
    Index(usize, &'p At<'p>),
}

impl At<'_> {
    fn pointer(&self) -> String {
        match self {
            At::Line => String::new(),
            At::Key(key, parent) => {
                format!(
                    "{}/{}",
                    parent.pointer(),
                    key.replace('~', "~0").replace('/', "~1")
                )
            }
            At::Index(i, parent) => format!("{}/{i}", parent.pointer()),
        }
    }
}

/// Where the first duplicate found goes (the parse then fails with a generic error that the
/// reader replaces).
pub(super) type Found = RefCell<Option<Duplicate>>;

/// The keys of one object so far. Objects are small (a ledger line has a dozen keys), so the
/// first keys sit in an array on the stack, without allocating; a larger object goes on in a
/// hash set, so that a huge one is not quadratic. kairos writes the keys of the JSON values in
/// a line in order, so while each key sorts after the one before, it is new without a search.
pub(super) struct Keys<'de> {
    first: [&'de str; INLINE_KEYS],
    len: usize,
    /// Whether the keys so far came in ascending order (and are all in `first`).
    ascending: bool,
    /// Keys with escapes (decoded), and every key past the first [`INLINE_KEYS`].
    rest: Option<std::collections::HashSet<Cow<'de, str>>>,
}

/// Keys kept on the stack per object.
const INLINE_KEYS: usize = 16;

impl<'de> Keys<'de> {
    pub(super) fn new() -> Self {
        Keys {
            first: [""; INLINE_KEYS],
            len: 0,
            ascending: true,
            rest: None,
        }
    }

    /// Adds `key`; `false` when it was there already.
    pub(super) fn insert(&mut self, key: Cow<'de, str>) -> bool {
        let seen = &self.first[..self.len];
        match key {
            Cow::Borrowed(k) if self.len < INLINE_KEYS && self.rest.is_none() => {
                let after_last = seen.last().is_none_or(|last| k > *last);
                if !(self.ascending && after_last) {
                    self.ascending = false;
                    if seen.contains(&k) {
                        return false;
                    }
                }
                self.first[self.len] = k;
                self.len += 1;
                true
            }
            _ => {
                self.ascending = false;
                if seen.contains(&key.as_ref()) {
                    return false;
                }
                self.rest.get_or_insert_default().insert(key)
            }
        }
    }
}

/// Records a duplicate and gives the error that stops the parse.
pub(super) fn duplicate<E: de::Error>(found: &Found, key: &str, at: &At<'_>) -> E {
    *found.borrow_mut() = Some(Duplicate {
        key: key.to_string(),
        pointer: at.pointer(),
    });
    E::custom("duplicate key")
}

/// A key, borrowed from the line unless it has escapes (then decoded, so `"a"` and
/// `"\u0061"` are the same key, as for every JSON reader).
pub(super) struct Key<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Walks one value, refusing an object with a key twice, at any depth.
pub(super) struct Unique<'f, 'p> {
    pub found: &'f Found,
    pub at: At<'p>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Unique {
                found: self.found,
                at: At::Index(i, &self.at),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::new();
        while let Some(Key(key)) = map.next_key()? {
            if !keys.insert(key.clone()) {
                return Err(duplicate(self.found, &key, &self.at));
            }
            map.next_value_seed(Unique {
                found: self.found,
                at: At::Key(&key, &self.at),
            })?;
        }
        Ok(())
    }
}

/// The fields every line has, read with every other value walked by [`Unique`].
pub(super) struct HeadSeed<'f> {
    pub found: &'f Found,
}

impl<'de> DeserializeSeed<'de> for HeadSeed<'_> {
    type Value = Head<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Head<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeadSeed<'_> {
    type Value = Head<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ledger line (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head<'de>, A::Error> {
        let (mut seq, mut prev, mut event, mut node, mut clock) = (None, None, None, None, None);
        // The head's own keys are told apart by their slots; the event's keys by `keys`.
        let mut keys = Keys::new();
        while let Some(Key(key)) = map.next_key()? {
            let again = match key.as_ref() {
                "seq" => seq.replace(map.next_value::<u64>()?).is_some(),
                "prev" => prev.replace(map.next_value::<&'de str>()?).is_some(),
                "event" => event.replace(map.next_value::<&'de str>()?).is_some(),
                "node" => node
                    .replace(map.next_value::<Option<&'de str>>()?)
                    .is_some(),
                "clock" => clock.replace(map.next_value::<u64>()?).is_some(),
                _ => {
                    if !keys.insert(key.clone()) {
                        return Err(duplicate(self.found, &key, &At::Line));
                    }
                    map.next_value_seed(Unique {
                        found: self.found,
                        at: At::Key(&key, &At::Line),
                    })?;
                    false
                }
            };
            if again {
                return Err(duplicate(self.found, &key, &At::Line));
            }
        }
        Ok(Head {
            seq: seq.ok_or_else(|| de::Error::missing_field("seq"))?,
            prev: prev.ok_or_else(|| de::Error::missing_field("prev"))?,
            event: event.ok_or_else(|| de::Error::missing_field("event"))?,
            node: node.flatten(),
            clock: clock.unwrap_or(0),
        })
    }
}
