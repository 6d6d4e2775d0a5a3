//! Text printed for people on a terminal: what a node, a tool, a workflow or a ledger says is
//! data, and must not drive the terminal (`docs/cli.md`).
//!
//! ESC, CSI and OSC sequences can clear the screen, move the cursor over what was printed or
//! change the window title; `\r` and backspace overwrite a line; bidirectional overrides and
//! isolates reorder what is shown. Each such character is written as a visible escape (`\x1b`,
//! `\r`, `\u{202e}`), so what is shown is what the text holds. One table serves the run
//! summary, the replay and diff tables and the diagnostics' snippets alike.

use std::borrow::Cow;

/// The visible form of a character a terminal must not receive raw, if it is one. Newline and
/// tab only lay text out and are left to the caller (a diagnostic's message escapes newlines,
/// a run summary keeps them).
pub fn escape(c: char) -> Option<Cow<'static, str>> {
    Some(match c {
        '\r' => Cow::Borrowed("\\r"),
        '\n' | '\t' => return None,
        '\0'..='\x1f' | '\x7f' => Cow::Owned(format!("\\x{:02x}", c as u32)),
        // C1 controls (U+009B is a CSI on its own), bidi embeddings, overrides, isolates and
        // marks, line and paragraph separators (some terminals break lines at them), and the
        // invisible byte-order mark.
        '\u{80}'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}' => Cow::Owned(format!("\\u{{{:x}}}", c as u32)),
        _ => return None,
    })
}

/// `text` with every character that could drive a terminal written as a visible escape;
/// newlines and tabs stay.
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| escape(c).is_none()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match escape(c) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_shown_not_obeyed() {
        for (text, shown) in [
            ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
            ("lines\nand\ttabs", "lines\nand\ttabs"),
            ("\u{1b}[2J\u{1b}[H cleared", "\\x1b[2J\\x1b[H cleared"),
            ("\u{1b}]0;pwned\u{7}title", "\\x1b]0;pwned\\x07title"),
            (
                "\u{1b}]8;;http://x\u{1b}\\link",
                "\\x1b]8;;http://x\\x1b\\link",
            ),
            ("ok\rFAIL", "ok\\rFAIL"),
            ("abc\u{8}\u{8}x", "abc\\x08\\x08x"),
            ("\u{9b}31m c1 csi", "\\u{9b}31m c1 csi"),
            ("del\u{7f}", "del\\x7f"),
            ("nul\u{0}", "nul\\x00"),
            ("a\u{202e}txt.exe", "a\\u{202e}txt.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("\u{feff}bom", "\\u{feff}bom"),
        ] {
            assert_eq!(printable(text), shown, "{text:?}");
        }
    }

    #[test]
    fn printable_text_is_borrowed_and_escaping_is_idempotent() {
        assert!(matches!(printable("nothing to do"), Cow::Borrowed(_)));
        let once = printable("\u{1b}[31mred\u{202e}").into_owned();
        assert_eq!(printable(&once), once);
    }

    proptest::proptest! {
        #[test]
        fn nothing_printable_keeps_a_control(s in "\\PC*|[\\x00-\\x7f\\u{80}-\\u{9f}\\u{2020}-\\u{2070}\\u{feff}]{0,40}") {
            let out = printable(&s);
            proptest::prop_assert!(!out.chars().any(|c| escape(c).is_some()), "{out:?}");
            proptest::prop_assert_eq!(printable(&out), out.clone());
        }
    }
}
