//! What a diagnostic shows of a file, made small and safe for a terminal.
//!
//! A diagnostic quotes the lines its labels point at, with a line of context around them. Those
//! lines are the user's: one may be megabytes long, or hold escape sequences a terminal would
//! obey (retitle the window, clear the screen, reorder text with bidi overrides). A [`Snippet`]
//! is the part of the file one diagnostic shows, rebuilt: at most [`MAX_LABEL_LINES`] lines per
//! label, each cut to a window of about [`WINDOW`] characters around where the label points
//! (an ellipsis marks a cut), every control character escaped ([`one_line`]). It keeps the
//! file's line numbers and the label's real column, so miette renders it as if it were the file
//! (`docs/workflow.md`, Validation diagnostics).

use super::diag::LineIndex;
use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::borrow::Cow;

/// The characters of one source line a snippet shows (escapes count by their length).
pub const WINDOW: usize = 120;
/// Of those, how many come before the place a label points at.
const BEFORE: usize = 40;
/// The most lines of one label shown; a longer label is cut after them.
pub const MAX_LABEL_LINES: usize = 8;
/// The most characters of a message, label or help text shown.
pub const MAX_TEXT: usize = 1000;

/// The visible form of a character a terminal must not receive raw, if it is one
/// ([`crate::printable`]); a newline inside a message, label or help text is one too.
fn escape(c: char) -> Option<Cow<'static, str>> {
    match c {
        '\n' => Some(Cow::Borrowed("\\n")),
        c => crate::printable::escape(c),
    }
}

/// How many characters `c` takes once printed.
fn width(c: char) -> usize {
    escape(c).map_or(1, |e| e.len())
}

/// `text` as it may be printed for people: on one line, control characters (newlines too) escaped visibly (`\x1b`, `\r`,
/// `\x08`, `\u{202e}`), and cut after [`MAX_TEXT`] characters with an ellipsis.
pub fn one_line(text: &str) -> Cow<'_, str> {
    let clean = text.chars().all(|c| escape(c).is_none());
    if clean && text.len() <= MAX_TEXT {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == MAX_TEXT {
            out.push('…');
            break;
        }
        match escape(c) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The part of a file one diagnostic shows, as miette source code.
#[derive(Debug)]
pub struct Snippet {
    name: String,
    text: String,
    lines: Vec<Line>,
    /// Where each label starts: its offset in `text`, and its 0-based line and column
    /// (characters) in the file, for the `file:line:column` header.
    anchors: Vec<(usize, usize, usize)>,
}

/// One line of a snippet.
#[derive(Debug)]
struct Line {
    /// Where it starts in the snippet's text (its newline ends it).
    start: usize,
    /// Its 0-based line number in the file.
    number: usize,
    /// Whether it follows the snippet's previous line in the file (false after a gap).
    joined: bool,
}

/// A label's place in the file, once clipped: byte offsets and 0-based lines.
struct Place {
    start: usize,
    end: usize,
    first: usize,
    last: usize,
}

impl Snippet {
    /// The lines of `source` that `labels` point at, and the labels moved onto them.
    pub fn new(
        name: &str,
        source: &str,
        index: &LineIndex,
        labels: &[LabeledSpan],
    ) -> (Self, Vec<LabeledSpan>) {
        let line_end = |line: usize| {
            let end = index.line_start(line + 1).map_or(source.len(), |s| s - 1);
            // A CRLF line ends before its `\r`.
            if end > index.line_start(line).unwrap_or(0) && source.as_bytes()[end - 1] == b'\r' {
                end - 1
            } else {
                end
            }
        };
        let places: Vec<Place> = labels
            .iter()
            .map(|l| {
                let start = floor_char(source, l.offset().min(source.len()));
                let end = floor_char(source, (l.offset() + l.len()).min(source.len())).max(start);
                let first = index.line_of(start);
                let mut last = if end > start {
                    index.line_of(end - 1)
                } else {
                    first
                };
                if last >= first + MAX_LABEL_LINES {
                    last = first + MAX_LABEL_LINES - 1;
                }
                // A label that takes in a line's newline (or the `\r` of a CRLF) ends where
                // the shown line ends.
                let start = start.min(line_end(first));
                let end = end.min(line_end(last)).max(start);
                Place {
                    start,
                    end,
                    first,
                    last,
                }
            })
            .collect();

        // The lines to show: each label's lines and one of context either side, merged where
        // they touch, exactly as miette merges them when it reads the snippet back.
        // The empty "line" after a final newline is shown only when a label is on it.
        let last_line = index.line_count() - 1 - usize::from(source.ends_with('\n'));
        let mut ranges: Vec<(usize, usize)> = places
            .iter()
            .map(|p| {
                (
                    p.first.saturating_sub(1),
                    (p.last + 1).min(last_line).max(p.last),
                )
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }

        let mut snippet = Snippet {
            name: name.to_string(),
            text: String::new(),
            lines: Vec::new(),
            anchors: Vec::new(),
        };
        // Offsets in the file of every label boundary, and where they land in the snippet.
        let mut wanted: Vec<usize> = places.iter().flat_map(|p| [p.start, p.end]).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut landed = vec![0usize; wanted.len()];
        for (a, b) in merged {
            // A context line above the first labelled one is cut where that one is, so the
            // two stay aligned.
            let mut window_column = (a..=b)
                .find(|&l| places.iter().any(|p| p.first == l || p.last == l))
                .map(|l| {
                    let start = index.line_start(l).unwrap_or(source.len());
                    let end = line_end(l).max(start);
                    window(source, start, end, focus(&places, l, start, end, None)).0 - start
                });
            for line in a..=b {
                let start = index.line_start(line).unwrap_or(source.len());
                let end = line_end(line).max(start);
                let focus = focus(&places, line, start, end, window_column);
                let (from, to) = window(source, start, end, focus);
                window_column = Some(from - start);
                snippet.lines.push(Line {
                    start: snippet.text.len(),
                    number: line,
                    joined: line > a,
                });
                snippet.push_line(source, (start, end), (from, to), &wanted, &mut landed);
            }
        }

        let land = |offset: usize| landed[wanted.binary_search(&offset).unwrap_or(0)];
        let mut columns = index.columns(source);
        let moved = labels
            .iter()
            .zip(&places)
            .map(|(label, p)| {
                let (start, end) = (land(p.start), land(p.end));
                let (line, column) = columns.line_column(p.start);
                snippet.anchors.push((start, line - 1, column - 1));
                let text = label.label().map(|t| one_line(t).into_owned());
                if label.primary() {
                    LabeledSpan::new_primary_with_span(text, (start, end - start))
                } else {
                    LabeledSpan::new_with_span(text, (start, end - start))
                }
            })
            .collect();
        (snippet, moved)
    }

    /// Appends the window `from..to` of the file line `start..end`, escaped and with an
    /// ellipsis at each side that was cut, and records where the wanted offsets land.
    fn push_line(
        &mut self,
        source: &str,
        (start, end): (usize, usize),
        (from, to): (usize, usize),
        wanted: &[usize],
        landed: &mut [usize],
    ) {
        let first = wanted.partition_point(|&w| w < start);
        let last = wanted.partition_point(|&w| w <= end);
        let mut next = first;
        let mut land_until = |offset: usize, at: usize, next: &mut usize| {
            while *next < last && wanted[*next] <= offset {
                landed[*next] = at;
                *next += 1;
            }
        };
        if from > start {
            land_until(from.saturating_sub(1), self.text.len(), &mut next);
            self.text.push('…');
        }
        for (i, c) in source[from..to].char_indices() {
            land_until(from + i, self.text.len(), &mut next);
            match escape(c) {
                Some(e) => self.text.push_str(&e),
                None => self.text.push(c),
            }
        }
        land_until(to, self.text.len(), &mut next);
        if to < end {
            self.text.push('…');
        }
        land_until(end, self.text.len(), &mut next);
        self.text.push('\n');
    }

    /// The snippet line holding `offset` of the snippet's text.
    fn line_at(&self, offset: usize) -> usize {
        self.lines
            .partition_point(|l| l.start <= offset)
            .saturating_sub(1)
    }

    fn line_end(&self, i: usize) -> usize {
        self.lines.get(i + 1).map_or(self.text.len(), |l| l.start)
    }
}

/// The largest char boundary at or before `offset`.
fn floor_char(s: &str, mut offset: usize) -> usize {
    while !s.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Where the window of a line centres: the start of the first label on it, or
/// the end of a label that ends on it, or else the column the line above was cut at.
fn focus(
    places: &[Place],
    line: usize,
    start: usize,
    end: usize,
    window_column: Option<usize>,
) -> usize {
    let starts = places.iter().filter(|p| p.first == line).map(|p| p.start);
    let ends = places.iter().filter(|p| p.last == line).map(|p| p.end);
    starts
        .min()
        .or_else(|| ends.min())
        .unwrap_or_else(|| (start + window_column.unwrap_or(0) + BEFORE).min(end))
}

/// The part `from..to` of the line `start..end` shown: about [`BEFORE`] characters before
/// `focus` and the rest of [`WINDOW`] after it, more before when the line ends early.
fn window(source: &str, start: usize, end: usize, focus: usize) -> (usize, usize) {
    let line = &source[start..end];
    let focus = floor_char(source, focus.clamp(start, end)) - start;
    let back = |from: usize, budget: usize| {
        let mut used = 0;
        let mut at = from;
        for (i, c) in line[..from].char_indices().rev() {
            if used + width(c) > budget {
                break;
            }
            used += width(c);
            at = i;
        }
        (at, used)
    };
    let (mut from, used) = back(focus, BEFORE);
    let mut used_after = 0;
    let mut to = from;
    for (i, c) in line[from..].char_indices() {
        if used + used_after + width(c) > WINDOW {
            break;
        }
        used_after += width(c);
        to = from + i + c.len_utf8();
    }
    if to == line.len() && from > 0 {
        from = back(from, WINDOW - used - used_after).0;
    }
    (start + from, start + to)
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let start = span.offset();
        let end = start + span.len();
        if end > self.text.len() || self.lines.is_empty() {
            return Err(MietteError::OutOfBounds);
        }
        let mut first = self.line_at(start);
        let mut last = if end > start {
            self.line_at(end - 1)
        } else {
            first
        };
        for _ in 0..context_lines_before {
            if first > 0 && self.lines[first].joined {
                first -= 1;
            }
        }
        for _ in 0..context_lines_after {
            if last + 1 < self.lines.len() && self.lines[last + 1].joined {
                last += 1;
            }
        }
        // Read without context (the header's `file:line:column`), a label gives the line and
        // column it has in the file; with context, the lines are read from their start.
        let (from, line, column) = if context_lines_before == 0 {
            let anchor = self.anchors.iter().find(|a| a.0 == start);
            let (line, column) = anchor.map_or((self.lines[first].number, 0), |a| (a.1, a.2));
            (start, line, column)
        } else {
            (self.lines[first].start, self.lines[first].number, 0)
        };
        let to = self.line_end(last).max(end);
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[from..to],
            (from, to - from).into(),
            line,
            column,
            last - first + 1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_visibly() {
        assert_eq!(
            one_line("a\x1b]0;title\x07b\r\x08\u{202e}c\u{9b}2J\td"),
            "a\\x1b]0;title\\x07b\\r\\x08\\u{202e}c\\u{9b}2J\td"
        );
        assert!(matches!(one_line("plain é ü"), Cow::Borrowed(_)));
        let long = "x".repeat(MAX_TEXT + 5);
        assert_eq!(one_line(&long).chars().count(), MAX_TEXT + 1);
    }

    fn snippet_of(source: &str, offset: usize, len: usize) -> (Snippet, Vec<LabeledSpan>) {
        let index = LineIndex::new(source);
        let label = LabeledSpan::new_primary_with_span(Some("here".into()), (offset, len));
        Snippet::new("f.yaml", source, &index, &[label])
    }

    #[test]
    fn a_long_line_is_cut_to_a_window_around_the_label() {
        let source = format!(
            "a: 1\nb: {}XYZ{}\nc: 3\n",
            "x".repeat(70_000),
            "y".repeat(5000)
        );
        let at = source.find("XYZ").unwrap();
        let (s, labels) = snippet_of(&source, at, 3);
        let lines: Vec<&str> = s.text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "a: 1");
        assert!(lines[1].starts_with('…') && lines[1].ends_with('…'));
        assert!(lines[1].chars().count() <= WINDOW + 2, "{}", lines[1]);
        let l = &labels[0];
        assert_eq!(&s.text[l.offset()..l.offset() + l.len()], "XYZ");
        let header = s.read_span(l.inner(), 0, 0).unwrap();
        assert_eq!((header.line(), header.column()), (1, 70_003));
    }

    #[test]
    fn a_long_context_line_is_cut_where_the_labelled_line_is() {
        let row = |c: char| format!("{}\n", c.to_string().repeat(10_000));
        let source = format!("{}{}{}", row('a'), row('b'), row('c'));
        let at = 10_001 + 5_000;
        let (s, _) = snippet_of(&source, at, 1);
        let lines: Vec<&str> = s.text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].replace('a', "b"), lines[1]);
        assert_eq!(lines[2].replace('c', "b"), lines[1]);
    }

    #[test]
    fn escapes_move_the_label_with_the_text() {
        let source = "k\x1b[2J: 1\nbad: 2\n";
        let at = source.find("bad").unwrap();
        let (s, labels) = snippet_of(source, at, 3);
        assert_eq!(s.text, "k\\x1b[2J: 1\nbad: 2\n");
        assert_eq!(&s.text[labels[0].offset()..][..3], "bad");
    }

    #[test]
    fn crlf_lines_end_before_their_carriage_return_and_a_lone_one_is_escaped() {
        let source = "a: 1\r\nbad: 2\r\nc: x\ry\r\n";
        let at = source.find("bad").unwrap();
        let (s, labels) = snippet_of(source, at, source.len() - at);
        assert_eq!(s.text, "a: 1\nbad: 2\nc: x\\ry\n");
        assert_eq!(&s.text[labels[0].offset()..][..3], "bad");
        assert!(labels[0].offset() + labels[0].len() <= s.text.len());
    }

    #[test]
    fn a_label_over_many_lines_shows_its_first_lines() {
        let source: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let (s, labels) = snippet_of(&source, 0, source.len());
        assert_eq!(s.text.lines().count(), MAX_LABEL_LINES + 1);
        assert!(labels[0].offset() + labels[0].len() <= s.text.len());
    }

    #[test]
    fn far_apart_labels_show_their_own_lines_only() {
        let source: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let index = LineIndex::new(&source);
        let a = source.find("line 10\n").unwrap();
        let b = source.find("line 900\n").unwrap();
        let labels = [
            LabeledSpan::new_with_span(Some("first".into()), (a, 4)),
            LabeledSpan::new_primary_with_span(Some("again".into()), (b, 4)),
        ];
        let (s, moved) = Snippet::new("f.yaml", &source, &index, &labels);
        assert_eq!(s.text.lines().count(), 6);
        let read = s.read_span(moved[1].inner(), 1, 1).unwrap();
        assert_eq!(read.line(), 899);
        assert_eq!(read.line_count(), 3);
        assert_eq!(
            std::str::from_utf8(read.data()).unwrap(),
            "line 899\nline 900\nline 901\n"
        );
    }

    proptest::proptest! {
        /// Any text, any labels: the snippet renders without panicking, every label lands in
        /// it, and nothing raw that a terminal obeys comes out.
        #[test]
        fn any_labels_on_any_text_render_safely(
            lines in proptest::collection::vec("[a-z \\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{202a}-\\u{202e}é漢]{0,300}", 1..6),
            crlf in proptest::bool::ANY,
            spans in proptest::collection::vec((0usize..2000, 0usize..400, proptest::bool::ANY), 1..5),
        ) {
            let source = lines.join(if crlf { "\r\n" } else { "\n" });
            let index = LineIndex::new(&source);
            let labels: Vec<LabeledSpan> = spans
                .iter()
                .map(|&(o, l, p)| {
                    let text = Some("label \x1b[2J".to_string());
                    if p {
                        LabeledSpan::new_primary_with_span(text, (o, l))
                    } else {
                        LabeledSpan::new_with_span(text, (o, l))
                    }
                })
                .collect();
            let (snippet, moved) = Snippet::new("f.yaml", &source, &index, &labels);
            for l in &moved {
                proptest::prop_assert!(l.offset() + l.len() <= snippet.text.len());
                proptest::prop_assert!(snippet.text.is_char_boundary(l.offset()));
            }
            let error = crate::syntax::WorkflowError::Cycle {
                path: "a \u{202e} b".into(),
                labels: labels.clone(),
            };
            let mut out = String::new();
            // Without colour: the theme's own escape sequences are not what is checked.
            let theme = miette::GraphicalTheme::unicode_nocolor();
            crate::syntax::diag::render_themed(&mut out, &error, ("f.yaml", &source, &index), theme);
            proptest::prop_assert!(out.contains("f.yaml:"), "{}", out);
            let raw = |c: char| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c);
            proptest::prop_assert!(!out.chars().any(raw), "{:?}", out);
        }
    }
}
