//! Instance ids: what a node event belongs to.
//!
//! A node declared once may run many times: once per `for_each` item (`fetch[2]`), and, for
//! nodes inside a loop or a called workflow, once per iteration or call (`review#3/edit`,
//! `call/step`). An instance id is a path of segments separated by `/`; each segment is a
//! declared node id, optionally followed by `#N` (an iteration, from 1) and `[K]` (a
//! `for_each` item, from 0). The last segment names the node itself; the ones before it are
//! the loops and calls it runs inside.
//!
//! This module is the only place that builds or takes apart that text: the engine builds ids
//! with [`InstanceId`], and readers (resume, replay, diff) ask [`Segment`]s what they are
//! instead of searching the text for brackets.

use std::borrow::Cow;
use std::fmt;

/// The id of one node instance, as the ledger's `node` field holds it. A node that runs once
/// borrows its declared id (most nodes: no allocation per node).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId<'a>(Cow<'a, str>);

impl<'a> InstanceId<'a> {
    /// A top-level node that runs once.
    pub fn node(id: &'a str) -> Self {
        InstanceId(Cow::Borrowed(id))
    }

    /// Item `k` of a `for_each` node.
    pub fn item(id: &str, k: u32) -> Self {
        let mut text = String::with_capacity(id.len() + 4);
        text.push_str(id);
        push_item(&mut text, k);
        InstanceId(Cow::Owned(text))
    }

    /// Node `id` (item `item` of it, under `for_each`) inside the loops and calls `scope`
    /// names: `scope` is empty at the top level, else a path ending in `/`
    /// ([`InstanceId::scope`]).
    pub fn scoped(scope: &str, id: &'a str, item: Option<u32>) -> Self {
        if scope.is_empty() {
            return match item {
                Some(k) => Self::item(id, k),
                None => Self::node(id),
            };
        }
        let mut text = String::with_capacity(scope.len() + id.len() + 4);
        text.push_str(scope);
        text.push_str(id);
        if let Some(k) = item {
            push_item(&mut text, k);
        }
        InstanceId(Cow::Owned(text))
    }

    /// The scope of the nodes of iteration `iteration` of loop `id` (or of call `id` without
    /// one) inside `outer`: `outer` + `id#N/` (or `id/`).
    pub fn scope(outer: &str, id: &str, iteration: Option<u32>) -> String {
        let mut text = String::with_capacity(outer.len() + id.len() + 8);
        text.push_str(outer);
        text.push_str(id);
        if let Some(n) = iteration {
            text.push('#');
            text.push_str(crate::ledger::decimal(u64::from(n), &mut [0; 20]));
        }
        text.push('/');
        text
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

fn push_item(text: &mut String, k: u32) {
    text.push('[');
    text.push_str(crate::ledger::decimal(u64::from(k), &mut [0; 20]));
    text.push(']');
}

impl fmt::Display for InstanceId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceId<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// One segment of an instance id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The declared node id.
    pub node: &'a str,
    /// The iteration of a loop, from 1.
    pub iteration: Option<u32>,
    /// The `for_each` item, from 0.
    pub item: Option<u32>,
}

/// An instance id taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The loops and calls the node runs inside, outermost first.
    pub scopes: Vec<Segment<'a>>,
    /// The node itself.
    pub last: Segment<'a>,
}

impl Parsed<'_> {
    /// Whether this is a node's own record, not one of its `for_each` items' (a fan-out
    /// node's `End` commits the node; its items' `End`s do not).
    pub fn is_whole_node(&self) -> bool {
        self.last.item.is_none()
    }
}

/// Takes an instance id apart; `None` when the text is not one.
pub fn parse(text: &str) -> Option<Parsed<'_>> {
    let mut segments = text.split('/').map(segment).collect::<Option<Vec<_>>>()?;
    let last = segments.pop()?;
    Some(Parsed {
        scopes: segments,
        last,
    })
}

fn segment(text: &str) -> Option<Segment<'_>> {
    let (rest, item) = match text.strip_suffix(']') {
        Some(head) => {
            let (rest, k) = head.rsplit_once('[')?;
            (rest, Some(number(k)?))
        }
        None => (text, None),
    };
    let (node, iteration) = match rest.rsplit_once('#') {
        Some((node, n)) => (node, Some(number(n)?)),
        None => (rest, None),
    };
    (!node.is_empty() && !node.contains(['[', ']', '#'])).then_some(Segment {
        node,
        iteration,
        item,
    })
}

/// A decimal number without sign or leading zeros (so each id has one spelling).
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_ids_the_format_has() {
        assert_eq!(InstanceId::node("fetch").as_str(), "fetch");
        assert_eq!(InstanceId::item("fetch", 0).as_str(), "fetch[0]");
        assert_eq!(InstanceId::item("a-b_c", 12).as_str(), "a-b_c[12]");
    }

    #[test]
    fn parses_what_it_builds() {
        let id = InstanceId::item("fetch", 7);
        let p = parse(id.as_str()).unwrap();
        assert!(p.scopes.is_empty());
        assert_eq!(
            p.last,
            Segment {
                node: "fetch",
                iteration: None,
                item: Some(7)
            }
        );
        assert!(!p.is_whole_node());
        assert!(parse("fetch").unwrap().is_whole_node());
    }

    #[test]
    fn builds_scoped_ids_that_parse_back() {
        let outer = InstanceId::scope("", "review", Some(2));
        let inner = InstanceId::scope(&outer, "fix", Some(1));
        assert_eq!(inner, "review#2/fix#1/");
        let id = InstanceId::scoped(&inner, "edit", Some(3));
        assert_eq!(id.as_str(), "review#2/fix#1/edit[3]");
        let p = parse(id.as_str()).unwrap();
        assert_eq!(p.scopes.len(), 2);
        assert_eq!((p.scopes[1].node, p.scopes[1].iteration), ("fix", Some(1)));
        assert_eq!((p.last.node, p.last.item), ("edit", Some(3)));
        let call = InstanceId::scope("", "sub", None);
        assert_eq!(InstanceId::scoped(&call, "step", None).as_str(), "sub/step");
        assert_eq!(InstanceId::scoped("", "a", Some(0)).as_str(), "a[0]");
    }

    #[test]
    fn parses_scopes() {
        let p = parse("review#3/call/edit[2]").unwrap();
        assert_eq!(
            p.scopes,
            [
                Segment {
                    node: "review",
                    iteration: Some(3),
                    item: None
                },
                Segment {
                    node: "call",
                    iteration: None,
                    item: None
                }
            ]
        );
        assert_eq!(p.last.node, "edit");
        assert_eq!(p.last.item, Some(2));
    }

    #[test]
    fn rejects_what_is_not_an_id() {
        for text in [
            "", "a[", "a[]", "a[x]", "a[01]", "a#", "/a", "a/", "a[1]b", "[1]",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
