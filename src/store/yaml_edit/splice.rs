//! An edit that replaced whole lines of one block list item, and what the text alone tells
//! about it: whether every byte outside those lines, and the meaning of every other item
//! and every other top-level value, is as it was.
//!
//! YAML's block structure is made of lines and their indentation. Take a text that parses,
//! and a block list whose items start at column `dash`. Replacing the lines of one item by
//! the lines of another item that starts at that column, indents every other line deeper,
//! and holds no anchor, alias or tag, changes the meaning of that item only, provided:
//!
//! - the lines around the edit are read as lines by every YAML parser alike: no line break
//!   but `\n` and `\r\n` (YAML 1.1 parsers also break at `\r`, U+0085, U+2028, U+2029);
//! - nothing else referred to the lines taken out (no `&anchor` in them);
//! - the first line after the edit closes the item before it as it did before: it is not
//!   blank (a block scalar kept with `|+` would take blank lines in), and it starts at or
//!   left of `dash` (a deeper line could be read as more of that item);
//! - the next line with content after a new item starts at or left of `dash`, so it closes
//!   the new item as it closed the old one.
//!
//! `Splice::keeps_the_rest` checks exactly these; the store then parses the new item alone.
//! The editor fuzz target compares that check with a parse of the whole text on every input.

use std::ops::Range;

use super::{Edit, Indent, plain_line_breaks, splice};

/// Which item an edit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEdit {
    /// A new item after the last one.
    Append,
    /// Item number `i` (0-based) replaced.
    Replace(usize),
    /// Item number `i` removed (never the only one).
    Remove(usize),
}

/// The new text is the old one with the whole lines `start..old_end` replaced by the lines
/// `start..new_end` of the new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub item: ItemEdit,
    pub(super) start: usize,
    pub(super) old_end: usize,
    pub(super) new_end: usize,
    /// The 0-based column of the list's `-`.
    dash: usize,
}

impl Splice {
    /// Replaces `range` of `text` (whole lines of one item) with `lines`.
    pub(super) fn lines(
        text: &str,
        item: ItemEdit,
        range: Range<usize>,
        lines: &str,
        indent: Indent,
    ) -> Edit {
        let made = Splice {
            item,
            start: range.start,
            old_end: range.end,
            new_end: range.start + lines.len(),
            dash: indent.dash,
        };
        Edit {
            text: splice(text, range, lines),
            splice: Some(made),
        }
    }

    /// The lines the edit put in (empty for a removal).
    pub fn inserted<'a>(&self, new: &'a str) -> &'a str {
        new.get(self.start..self.new_end).unwrap_or("")
    }

    /// True when `new` is `old` with this splice made and, by the text alone (see the module
    /// documentation), every other item and top-level value means what it meant in `old`,
    /// and the lines put in form one item of the list, which the caller must still parse.
    /// False says nothing: the whole text must then be parsed.
    pub fn keeps_the_rest(&self, old: &str, new: &str) -> bool {
        let (start, old_end) = (self.start, self.old_end);
        let (before, rest) = match (old.get(..start), old.get(old_end..)) {
            (Some(before), Some(rest)) if start <= old_end => (before, rest),
            _ => return false,
        };
        let removed = &old[start..old_end];
        let inserted = self.inserted(new);
        let untouched = new.len() == before.len() + inserted.len() + rest.len()
            && new.as_bytes()[..start] == *before.as_bytes()
            && new.as_bytes()[self.new_end..] == *rest.as_bytes();
        let whole_lines = before.ends_with('\n')
            && (removed.is_empty() || removed.ends_with('\n'))
            && (inserted.is_empty() || inserted.ends_with('\n'));
        let shape = match self.item {
            ItemEdit::Append => removed.is_empty() && self.is_item(inserted),
            ItemEdit::Replace(_) => self.is_item(removed) && self.is_item(inserted),
            ItemEdit::Remove(_) => self.is_item(removed) && inserted.is_empty(),
        };
        let closes_before = match self.item {
            ItemEdit::Append | ItemEdit::Remove(_) => self.closes(rest.lines().next()),
            ItemEdit::Replace(_) => true,
        };
        untouched
            && whole_lines
            && shape
            && closes_before
            && self.next_content_closes(rest)
            && !removed.contains('&')
            && plain_line_breaks(inserted)
            && plain_line_breaks(old)
    }

    /// `lines` look like one item of the list: the first starts with `-` at the list's
    /// column, every other one is indented deeper than the next item's `-`, none is blank.
    fn is_item(&self, lines: &str) -> bool {
        let mut lines = lines.lines();
        let Some(first) = lines.next() else {
            return false;
        };
        let first_ok = indentation(first) == self.dash
            && matches!(first.as_bytes().get(self.dash..self.dash + 2), Some(b"- "));
        first_ok
            && lines.all(|line| {
                let spaces = indentation(line);
                spaces > self.dash + 1 && !matches!(line.as_bytes().get(spaces), None | Some(b'\r'))
            })
    }

    /// `line` (None: the end of the text) ends the item above it however that item ends.
    fn closes(&self, line: Option<&str>) -> bool {
        let Some(line) = line else {
            return true;
        };
        let spaces = indentation(line);
        spaces <= self.dash && !matches!(line.as_bytes().get(spaces), None | Some(b'\t' | b'\r'))
    }

    /// The first line of `rest` that is neither blank nor a comment closes the item above,
    /// and the blank and comment lines before it start with no tab. (Whether a tab at the
    /// start of a line is skipped depends, for the loader's parser, on the token before it:
    /// after a plain scalar it is, after a quoted scalar or a `]` it is an error.)
    fn next_content_closes(&self, rest: &str) -> bool {
        for line in rest.lines() {
            let body = line.trim_start_matches(' ');
            if body.starts_with('\t') {
                return false;
            }
            if !body.is_empty() && !body.starts_with('#') {
                return self.closes(Some(line));
            }
        }
        self.closes(None)
    }
}

fn indentation(line: &str) -> usize {
    line.bytes().take_while(|&b| b == b' ').count()
}

#[cfg(test)]
mod tests {
    use super::super::Layout;
    use super::super::tests::item;
    use super::*;

    fn splice_of(text: &str, edit: ItemEdit) -> (String, Splice) {
        let layout = Layout::of(text).unwrap();
        let edit = match edit {
            ItemEdit::Append => layout.append(text, &item("new")),
            ItemEdit::Replace(i) => layout.replace(text, i, &item("new")),
            ItemEdit::Remove(i) => layout.remove(text, i),
        }
        .unwrap();
        (edit.text, edit.splice.expect("a block item edit"))
    }

    const TWO: &str =
        "# c\napiKeys:\n  - name: a\n    hash: x\n  - name: b\n    hash: y\nusers: [x]\n";

    #[test]
    fn a_plain_block_edit_keeps_the_rest() {
        for edit in [ItemEdit::Append, ItemEdit::Replace(0), ItemEdit::Replace(1)] {
            let (new, splice) = splice_of(TWO, edit);
            assert!(splice.keeps_the_rest(TWO, &new), "{edit:?}: {new}");
        }
        for i in [0, 1] {
            let (new, splice) = splice_of(TWO, ItemEdit::Remove(i));
            assert!(splice.keeps_the_rest(TWO, &new), "{new}");
        }
    }

    #[test]
    fn what_the_text_alone_cannot_vouch_for_is_left_to_a_full_parse() {
        // A blank line could belong to the item above (a block scalar kept with `|+`).
        let blank = "apiKeys:\n  - name: a\n    hash: x\n\nz: 1\n";
        let anchored = "apiKeys:\n  - name: a\n    hash: &h x\n  - name: b\n    hash: *h\n";
        let deep_comment = "apiKeys:\n  - name: a\n    hash: x\n  - name: b\n    # c\nz: 1\n";
        // A line of blanks with a tab: skipped after a plain scalar, an error after a `]`.
        let tabbed = "apiKeys:\n  - name: a\n    hash: x\n     \t\n  - name: b\n    hash: y\n";
        let tabbed_comment =
            "apiKeys:\n  - name: a\n    hash: x\n     \t# c\n  - name: b\n    hash: y\n";
        for (text, edit) in [
            (blank, ItemEdit::Append),
            (anchored, ItemEdit::Replace(0)),
            (anchored, ItemEdit::Remove(0)),
            (deep_comment, ItemEdit::Remove(1)),
            (tabbed, ItemEdit::Replace(0)),
            (tabbed_comment, ItemEdit::Replace(0)),
        ] {
            let (new, splice) = splice_of(text, edit);
            assert!(!splice.keeps_the_rest(text, &new), "{edit:?}: {text}");
        }
    }

    #[test]
    fn a_splice_that_was_not_made_as_told_is_refused() {
        let (new, splice) = splice_of(TWO, ItemEdit::Append);
        let elsewhere = new.replace("users: [x]", "users: [y]");
        assert!(!splice.keeps_the_rest(TWO, &elsewhere));
        assert!(!splice.keeps_the_rest(TWO, &new[..new.len() - 1]));
    }
}
