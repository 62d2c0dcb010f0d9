//! The surgical editor: adds, replaces or removes one item of the top-level `apiKeys`
//! sequence and leaves every other byte of the text as it was.
//!
//! It finds the items with a real YAML parser (spans from `saphyr-parser`), then edits the
//! text by byte ranges. It never re-serializes the document, so comments, blank lines,
//! ordering, other top-level keys and line endings survive. The store re-parses the result
//! and refuses to write anything that does not mean exactly the intended change.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A value to render into YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    Bool(bool),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("there is no apiKeys entry number {0}")]
    NoSuchItem(usize),
    #[error("cannot edit this file: {0}")]
    Unsupported(String),
}

/// 1-based position of the start of an `apiKeys` item (its `-`, or its `{` in flow style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemPos {
    pub line: usize,
    pub column: usize,
}

pub fn item_positions(text: &str) -> Result<Vec<ItemPos>, EditError> {
    let doc = Doc::parse(text)?;
    let marks: Vec<usize> = match doc.api_keys()? {
        ApiKeys::Block { items, .. } | ApiKeys::Flow { items, .. } => {
            items.iter().map(|i| i.mark).collect()
        }
        _ => Vec::new(),
    };
    // One pass over the text for all items (marks are in order), not one per item.
    let mut out = Vec::with_capacity(marks.len());
    let (mut line, mut line_start, mut pos) = (1, 0, 0);
    for mark in marks {
        for (i, b) in text.as_bytes()[pos..mark].iter().enumerate() {
            if *b == b'\n' {
                line += 1;
                line_start = pos + i + 1;
            }
        }
        pos = mark;
        let column = text[line_start..mark].chars().count() + 1;
        out.push(ItemPos { line, column });
    }
    Ok(out)
}

pub fn append_item(text: &str, item: &Node) -> Result<String, EditError> {
    let doc = Doc::parse(text)?;
    let nl = newline(text);
    match doc.api_keys()? {
        ApiKeys::Block {
            items,
            dash_col,
            key_col,
        } => {
            let last = items.last().ok_or(EditError::NoSuchItem(0))?;
            let lines = render_block_item(item, dash_col, key_col, nl);
            Ok(insert_lines(text, last.end, &lines, nl))
        }
        ApiKeys::Flow { items, open, close } if !items.is_empty() || close > open + 1 => {
            match items.last() {
                Some(last) => {
                    let rendered = format!(", {}", render_flow(item));
                    Ok(splice(text, last.end..last.end, &rendered))
                }
                // `[ ]` with inner spaces or comments: keep flow style, put the item
                // inside: before `]` on one line, else right after `[` (an item at the
                // start of the `]` line would be under-indented).
                None if text[open..close].contains('\n') => {
                    Ok(splice(text, open + 1..open + 1, &render_flow(item)))
                }
                None => Ok(splice(text, close..close, &render_flow(item))),
            }
        }
        // `[]` or a null value: the list becomes a block list under the key.
        ApiKeys::Flow { open, close, .. } => {
            let lines = render_block_item(item, 2, 4, nl);
            let after_line = line_end(text, close);
            let removed = remove_value(text, open, close + 1);
            let cut = text.len() - removed.len();
            Ok(insert_lines(&removed, after_line - cut, &lines, nl))
        }
        ApiKeys::Null {
            value,
            key_line_end,
        } => {
            let lines = render_block_item(item, 2, 4, nl);
            match value {
                Some((start, end)) => {
                    let removed = remove_value(text, start, end);
                    let cut = text.len() - removed.len();
                    Ok(insert_lines(&removed, key_line_end - cut, &lines, nl))
                }
                None => Ok(insert_lines(text, key_line_end, &lines, nl)),
            }
        }
        ApiKeys::Missing { insert_at } => {
            let mut block = format!("apiKeys:{nl}");
            block.push_str(&render_block_item(item, 2, 4, nl));
            Ok(insert_lines(text, insert_at, &block, nl))
        }
    }
}

pub fn replace_item(text: &str, index: usize, item: &Node) -> Result<String, EditError> {
    let doc = Doc::parse(text)?;
    let nl = newline(text);
    match doc.api_keys()? {
        ApiKeys::Block {
            items,
            dash_col,
            key_col,
        } => {
            let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
            let mut lines = render_block_item(item, dash_col, key_col, nl);
            if !text[..old.end].ends_with('\n') {
                // The item was the last line of a file without a final line break.
                lines.truncate(lines.len() - nl.len());
            }
            Ok(splice(text, old.start..old.end, &lines))
        }
        ApiKeys::Flow { items, .. } => {
            let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
            Ok(splice(text, old.start..old.end, &render_flow(item)))
        }
        _ => Err(EditError::NoSuchItem(index)),
    }
}

pub fn remove_item(text: &str, index: usize) -> Result<String, EditError> {
    let doc = Doc::parse(text)?;
    match doc.api_keys()? {
        ApiKeys::Block { items, .. } => {
            let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
            let removed = splice(text, old.start..old.end, "");
            if items.len() > 1 {
                return Ok(removed);
            }
            // The list is now empty: say so explicitly, right after `apiKeys:`.
            let colon = doc.api_keys_colon.ok_or(EditError::NoSuchItem(index))?;
            Ok(splice(&removed, colon..colon, " []"))
        }
        ApiKeys::Flow { items, .. } => {
            let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
            let range = if let Some(next) = items.get(index + 1) {
                old.start..next.start
            } else if let Some(prev) = index.checked_sub(1).and_then(|p| items.get(p)) {
                prev.end..old.end
            } else {
                old.start..old.end
            };
            Ok(splice(text, range, ""))
        }
        _ => Err(EditError::NoSuchItem(index)),
    }
}

/// One item's byte range: whole lines for block items, `{...}` for flow items.
#[derive(Debug, Clone, Copy)]
struct Item {
    start: usize,
    end: usize,
    /// The `-` of a block item, the `{` of a flow item.
    mark: usize,
}

enum ApiKeys {
    /// No `apiKeys` key: a new one goes at `insert_at` (end of the top-level mapping).
    Missing { insert_at: usize },
    /// `apiKeys:` with an empty (None) or explicit (`~`, `null`) null value.
    Null {
        value: Option<(usize, usize)>,
        key_line_end: usize,
    },
    Block {
        items: Vec<Item>,
        dash_col: usize,
        key_col: usize,
    },
    /// `open`/`close`: byte offsets of `[` and `]`.
    Flow {
        items: Vec<Item>,
        open: usize,
        close: usize,
    },
}

/// Events with byte spans.
struct Doc<'a> {
    text: &'a str,
    events: Vec<(Event<'a>, usize, usize)>,
    /// Byte offset just after the `:` that follows the `apiKeys` key, when there is one.
    api_keys_colon: Option<usize>,
}

impl<'a> Doc<'a> {
    fn parse(text: &'a str) -> Result<Self, EditError> {
        // Spans count characters; edits need bytes.
        let mut char_to_byte: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        char_to_byte.push(text.len());
        let byte = |i: usize| char_to_byte.get(i).copied().unwrap_or(text.len());
        let mut events = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (ev, span): (Event<'a>, Span) = next.map_err(|e| EditError::Syntax {
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_owned(),
            })?;
            let done = matches!(ev, Event::StreamEnd);
            events.push((ev, byte(span.start.index()), byte(span.end.index())));
            if done {
                break;
            }
        }
        let mut doc = Doc {
            text,
            events,
            api_keys_colon: None,
        };
        doc.api_keys_colon = doc.find_api_keys_key().ok().flatten().and_then(|i| {
            let after = doc.events[i].2;
            let rest = &text[after..];
            let colon = rest.find(':')?;
            rest[..colon]
                .chars()
                .all(|c| c == ' ' || c == '\t')
                .then_some(after + colon + 1)
        });
        Ok(doc)
    }

    fn line_col(&self, byte: usize) -> (usize, usize) {
        let before = &self.text[..byte];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, col)
    }

    /// Index of the event after node `i` (a scalar, alias, or a whole collection).
    fn skip(&self, i: usize) -> usize {
        let mut depth = 0usize;
        let mut j = i;
        while j < self.events.len() {
            match self.events[j].0 {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
                _ => {}
            }
            j += 1;
            if depth == 0 {
                break;
            }
        }
        j
    }

    /// The top-level mapping's events: (index of MappingStart, index of MappingEnd), or
    /// None for an empty document. Refuses what keyward will not edit.
    fn top_mapping(&self) -> Result<Option<(usize, usize)>, EditError> {
        let mut docs = 0;
        let mut top = None;
        let mut i = 0;
        while i < self.events.len() {
            match &self.events[i].0 {
                Event::DocumentStart(_) => {
                    docs += 1;
                    if docs > 1 {
                        return Err(unsupported("more than one YAML document"));
                    }
                    i += 1;
                }
                Event::MappingStart(anchor, _) if top.is_none() => {
                    if *anchor != 0 || self.is_flow(i) {
                        return Err(unsupported("the top level must be a plain block mapping"));
                    }
                    let end = self.skip(i) - 1;
                    top = Some((i, end));
                    i = end + 1;
                }
                Event::Scalar(v, ScalarStyle::Plain, 0, None)
                    if top.is_none() && (v.is_empty() || v == "~" || v == "null") =>
                {
                    i += 1;
                }
                Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Scalar(..)
                | Event::Alias(_) => return Err(unsupported("the top level must be a mapping")),
                _ => i += 1,
            }
        }
        Ok(top)
    }

    /// Index of the `apiKeys` key scalar in the top-level mapping.
    fn find_api_keys_key(&self) -> Result<Option<usize>, EditError> {
        let Some((start, end)) = self.top_mapping()? else {
            return Ok(None);
        };
        let mut i = start + 1;
        while i < end {
            let is_key = matches!(&self.events[i].0, Event::Scalar(k, _, _, _) if k == "apiKeys");
            if is_key {
                return Ok(Some(i));
            }
            i = self.skip(i); // the key
            i = self.skip(i); // its value
        }
        Ok(None)
    }

    fn is_flow(&self, i: usize) -> bool {
        let (_, s, e) = &self.events[i];
        e > s
    }

    fn api_keys(&self) -> Result<ApiKeys, EditError> {
        let Some(key) = self.find_api_keys_key()? else {
            return Ok(ApiKeys::Missing {
                insert_at: self.document_end(),
            });
        };
        let v = key + 1;
        let (ev, s, e) = &self.events[v];
        match ev {
            Event::Scalar(value, ScalarStyle::Plain, 0, None)
                if value.is_empty() || value == "~" || value == "null" =>
            {
                let key_line_end = line_end(self.text, self.events[key].2);
                let value = (e > s).then_some((*s, *e));
                Ok(ApiKeys::Null {
                    value,
                    key_line_end,
                })
            }
            Event::SequenceStart(anchor, _) => {
                if *anchor != 0 {
                    return Err(unsupported("apiKeys has an anchor"));
                }
                let items = self.items(v)?;
                if self.is_flow(v) {
                    let close = self.events[self.skip(v) - 1].1;
                    Ok(ApiKeys::Flow {
                        items,
                        open: *s,
                        close,
                    })
                } else {
                    let first = items
                        .first()
                        .ok_or_else(|| unsupported("empty block sequence"))?;
                    let dash_col = self.line_col(first.mark).1 - 1;
                    let key_col = self.first_key_col(v).unwrap_or(dash_col + 2);
                    Ok(ApiKeys::Block {
                        items,
                        dash_col,
                        key_col: key_col.max(dash_col + 2),
                    })
                }
            }
            _ => Err(unsupported("apiKeys is not a list")),
        }
    }

    fn first_key_col(&self, seq: usize) -> Option<usize> {
        let (_, s, _) = self.events.get(seq + 1)?;
        Some(self.line_col(*s).1 - 1)
    }

    /// Where a new top-level key goes: before a final `...`, else at the end of the text.
    fn document_end(&self) -> usize {
        let trimmed = self.text.trim_end();
        if trimmed.ends_with("\n...") || trimmed == "..." {
            trimmed.len() - 3
        } else {
            self.text.len()
        }
    }

    /// The items of the sequence starting at event `seq`.
    fn items(&self, seq: usize) -> Result<Vec<Item>, EditError> {
        let flow = self.is_flow(seq);
        let end = self.skip(seq) - 1;
        let mut items = Vec::new();
        let mut i = seq + 1;
        while i < end {
            let Event::MappingStart(anchor, _) = &self.events[i].0 else {
                return Err(unsupported("an apiKeys entry is not a mapping"));
            };
            if *anchor != 0 {
                return Err(unsupported("an apiKeys entry has an anchor"));
            }
            let next = self.skip(i);
            let item = if flow {
                // Just past the `}`: the end event's span can run on over a comment.
                let (_, close, close_end) = self.events[next - 1];
                let end = if self.text.as_bytes().get(close) == Some(&b'}') {
                    close + 1
                } else {
                    close_end
                };
                Item {
                    start: self.events[i].1,
                    end,
                    mark: self.events[i].1,
                }
            } else {
                // Content ends where the last non-empty span inside the item ends.
                let last = self.events[i..next]
                    .iter()
                    .filter(|(_, s, e)| e > s)
                    .map(|(_, _, e)| *e)
                    .max()
                    .unwrap_or(self.events[i].2);
                let dash = self.dash_before(self.events[i].1)?;
                Item {
                    start: line_start(self.text, dash),
                    end: line_end(self.text, last.saturating_sub(1).max(dash)),
                    mark: dash,
                }
            };
            items.push(item);
            i = next;
        }
        Ok(items)
    }

    /// The `-` that introduces a block item whose content starts at `content`.
    fn dash_before(&self, content: usize) -> Result<usize, EditError> {
        let before = &self.text[..content];
        let trimmed = before.trim_end_matches([' ', '\t', '\n', '\r']);
        if trimmed.ends_with('-') {
            Ok(trimmed.len() - 1)
        } else {
            Err(unsupported("cannot find the `-` of an apiKeys entry"))
        }
    }
}

fn unsupported(why: &str) -> EditError {
    EditError::Unsupported(why.to_owned())
}

fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Offset just past the line break of the line holding `at` (or the end of the text).
fn line_end(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// Inserts whole `lines` at `at` (a line start, or the end of a text without a final
/// line break, which then gets one first).
fn insert_lines(text: &str, at: usize, lines: &str, nl: &str) -> String {
    if at > 0 && !text[..at].ends_with('\n') {
        return splice(text, at..at, &format!("{nl}{lines}"));
    }
    splice(text, at..at, lines)
}

/// Removes a value (`[]`, `~`, `null`) and the one space before it, keeping the line.
fn remove_value(text: &str, start: usize, end: usize) -> String {
    let start = if text[..start].ends_with(' ') {
        start - 1
    } else {
        start
    };
    splice(text, start..end, "")
}

fn render_block_item(item: &Node, dash_col: usize, key_col: usize, nl: &str) -> String {
    let Node::Map(fields) = item else {
        return String::new();
    };
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i == 0 {
            out.push_str(&" ".repeat(dash_col));
            out.push('-');
            out.push_str(&" ".repeat(key_col - dash_col - 1));
        } else {
            out.push_str(&" ".repeat(key_col));
        }
        out.push_str(k);
        out.push(':');
        render_block_value(&mut out, v, key_col, nl);
    }
    out
}

fn render_block_value(out: &mut String, v: &Node, key_col: usize, nl: &str) {
    match v {
        Node::Seq(items) if items.iter().any(|n| matches!(n, Node::Map(_))) => {
            out.push_str(nl);
            for item in items {
                out.push_str(&render_block_item(item, key_col + 2, key_col + 4, nl));
            }
        }
        other => {
            out.push(' ');
            out.push_str(&render_inline(other, false));
            out.push_str(nl);
        }
    }
}

fn render_flow(item: &Node) -> String {
    render_inline(item, true)
}

/// A value on one line. `flow`: inside a flow collection, where more must be quoted.
fn render_inline(v: &Node, flow: bool) -> String {
    match v {
        Node::Str(s) => scalar(s, flow).into_owned(),
        Node::Bool(b) => b.to_string(),
        Node::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|n| render_inline(n, true)).collect();
            format!("[{}]", parts.join(", "))
        }
        Node::Map(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_inline(v, true)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A string as YAML: plain when that is unambiguous, else double-quoted.
fn scalar(s: &str, flow: bool) -> Cow<'_, str> {
    if is_plain_safe(s, flow) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(quote(s))
    }
}

fn is_plain_safe(s: &str, flow: bool) -> bool {
    const RESERVED: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "",
    ];
    if is_timestamp(s) {
        return !flow;
    }
    let Some(first) = s.chars().next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/@+-:".contains(c))
        && !s.ends_with(':')
        // In flow context `a:b` is read as the string "a:b" (checked in the tests), but a
        // `:` before a flow indicator would not be.
        && !(flow && s.contains("::"))
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// `2026-11-22T10:00:00Z` and friends: plain in block context (serde_yaml reads them as strings).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && s[19..]
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'Z' | '+' | '-' | ':'))
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}') => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str) -> Node {
        Node::Map(vec![
            ("name".into(), Node::Str(name.into())),
            (
                "hash".into(),
                Node::Str(format!("sha256:{}", "a".repeat(64))),
            ),
            ("enabled".into(), Node::Bool(true)),
            (
                "permissions".into(),
                Node::Seq(vec![Node::Str("orders:read".into()), Node::Str("*".into())]),
            ),
        ])
    }

    fn names(text: &str) -> Vec<String> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        v.get("apiKeys")
            .and_then(|k| k.as_sequence())
            .map(|s| {
                s.iter()
                    .map(|i| i["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    const FILES: &[&str] = &[
        "# head\napiKeys:\n  # c1\n  - name: a   # tc\n    hash: x\n\n  # c2\n  - name: b\n    description: |\n      # not a comment\n      text\n# tail\nusers:\n  - alice\n",
        "apiKeys:\n- name: a\n  hash: x\nother: 1\n",
        "apiKeys:\r\n  - name: a\r\n    hash: x\r\nother: 1\r\n",
        "apiKeys: [{name: a, hash: x}, {name: b, hash: y}]  # flow\nother: 1\n",
        "apiKeys: []\n",
        "# nothing yet\napiKeys: [] # none\nusers: [x]\n",
        "apiKeys:\nusers: [x]\n",
        "apiKeys: ~\n",
        "",
        "# only a comment\n",
        "users:\n  - alice\n",
        "---\napiKeys:\n  - name: a\n    hash: x\n...\n",
        "apiKeys:\n  - name: a\n    hash: x",
        "apiKeys:\n    -   name: a\n        hash: x\n",
    ];

    #[test]
    fn append_then_remove_restores_every_file_byte_for_byte() {
        for original in FILES {
            let before = names(original);
            let added = append_item(original, &item("new")).unwrap();
            let mut expected = before.clone();
            expected.push("new".into());
            assert_eq!(names(&added), expected, "{original:?} -> {added:?}");
            let removed = remove_item(&added, before.len()).unwrap();
            if !original.contains("apiKeys")
                || original.contains("apiKeys:\n") && before.is_empty()
                || original.contains('~')
            {
                assert_eq!(names(&removed), before, "{removed:?}");
            } else if !original.ends_with('\n') {
                // A file without a final line break gets one.
                assert_eq!(removed, format!("{original}\n"));
            } else {
                assert_eq!(&removed, original, "via {added:?}");
            }
        }
    }

    #[test]
    fn replace_and_remove_touch_only_that_entry() {
        let text = FILES[0];
        let replaced = replace_item(text, 0, &item("a")).unwrap();
        assert!(
            replaced.starts_with("# head\napiKeys:\n  # c1\n  - name: a\n    hash: sha256:"),
            "{replaced}"
        );
        assert!(replaced.ends_with("\n\n  # c2\n  - name: b\n    description: |\n      # not a comment\n      text\n# tail\nusers:\n  - alice\n"), "{replaced}");
        let removed = remove_item(text, 1).unwrap();
        assert_eq!(
            removed,
            "# head\napiKeys:\n  # c1\n  - name: a   # tc\n    hash: x\n\n  # c2\n# tail\nusers:\n  - alice\n"
        );
        let flow = remove_item(FILES[3], 0).unwrap();
        assert_eq!(flow, "apiKeys: [{name: b, hash: y}]  # flow\nother: 1\n");
        let only = remove_item("apiKeys:\n  - name: a\n    hash: x\nz: 1\n", 0).unwrap();
        assert_eq!(only, "apiKeys: []\nz: 1\n");
    }

    #[test]
    fn positions_point_at_each_dash() {
        let pos = item_positions(FILES[0]).unwrap();
        assert_eq!(
            pos,
            [
                ItemPos { line: 4, column: 3 },
                ItemPos { line: 8, column: 3 }
            ]
        );
    }

    #[test]
    fn tricky_strings_round_trip_in_block_and_flow() {
        let tricky = [
            "true",
            "123",
            "1e3",
            "*",
            "a: b",
            "#x",
            "x #y",
            "it's",
            "\"q\"",
            "line\nbreak",
            "orders:*",
            "orders:read",
            "a:b:c",
            "a::b",
            "-x",
            "null",
            "~",
            " lead",
            "ünïcødé",
            "2026-11-22T10:00:00Z",
            "0x1F",
            "Yes",
            "a,b",
            "[x]",
            "{y}",
            "tab\there",
            "sha256:abc",
            "back\\slash",
            "\u{2028}",
        ];
        for s in tricky {
            let node = Node::Map(vec![
                ("name".into(), Node::Str(s.into())),
                ("permissions".into(), Node::Seq(vec![Node::Str(s.into())])),
            ]);
            for base in ["apiKeys:\n  - name: a\n", "apiKeys: [{name: a}]\n"] {
                let out = append_item(base, &node).unwrap();
                let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
                assert_eq!(v["apiKeys"][1]["name"].as_str(), Some(s), "{out}");
                assert_eq!(v["apiKeys"][1]["permissions"][0].as_str(), Some(s), "{out}");
            }
        }
    }

    #[test]
    fn what_cannot_be_edited_safely_is_refused() {
        for text in [
            "a: 1\n---\nb: 2\n",
            "apiKeys: 5\n",
            "apiKeys:\n  - just-a-string\n",
            "apiKeys: &x\n  - name: a\n",
            "- a\n- b\n",
        ] {
            assert!(append_item(text, &item("n")).is_err(), "{text}");
        }
        assert!(matches!(
            append_item("a: [\n", &item("n")),
            Err(EditError::Syntax { .. })
        ));
    }
}
