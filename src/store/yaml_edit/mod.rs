//! The surgical editor: adds, replaces or removes one item of the top-level `apiKeys`
//! sequence and leaves every other byte of the text as it was.
//!
//! It finds the items with a real YAML parser (spans from `saphyr-parser`, in `locate`),
//! renders the new item (in `emit`), then edits the text by byte ranges. It never
//! re-serializes the document, so comments, blank lines, ordering, other top-level keys and
//! line endings survive. The store checks the result and refuses to write anything that
//! does not mean exactly the intended change; an edit of whole block item lines says where
//! it was (`Splice`), so that check can parse the new item alone.

mod emit;
mod locate;
mod splice;

use std::ops::Range;

use locate::{ApiKeys, Brackets, Doc, Item};

pub use locate::{
    ListScalar, Pos, Step, has_no_references, list_scalars, repeated_key_position, value_position,
};
pub use splice::{ItemEdit, Splice};

/// A value to render into YAML.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    Bool(bool),
    Int(u64),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// Why an edit was not made; the text is then left alone.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The parser's own message is not kept: it may quote the file.
    #[error("line {line}, column {column}: not valid YAML")]
    Syntax { line: usize, column: usize },
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

/// Where a block item's `-` and its keys sit: 0-based columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Indent {
    dash: usize,
    key: usize,
}

/// `- ` before the first key: a key is at least this many columns right of its dash.
const DASH_WIDTH: usize = 2;

/// How far keyward indents a list it starts below the key that holds it.
const LIST_INDENT: usize = 2;

impl Indent {
    /// The items of a list keyward starts under a key at column `key`: `- ` indented by
    /// `LIST_INDENT`, each key right after its dash.
    const fn list_under(key: usize) -> Self {
        let dash = key + LIST_INDENT;
        Self {
            dash,
            key: dash + DASH_WIDTH,
        }
    }

    /// A new `apiKeys` list (the key itself is at the top level, column 0).
    const NEW_API_KEYS: Self = Self::list_under(0);
}

/// The positions of the `apiKeys` items, in order (empty when there is no list).
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

/// `item` as a one-item `apiKeys` list: what appending it to an empty file writes.
pub fn new_list(item: &Node) -> String {
    let mut out = String::from("apiKeys:\n");
    out.push_str(&emit::block_item(item, Indent::NEW_API_KEYS, "\n"));
    out
}

/// Adds `item` as the last entry of `apiKeys`, creating the list (or the key) if needed.
pub fn append_item(text: &str, item: &Node) -> Result<String, EditError> {
    Ok(Layout::of(text)?.append(text, item)?.text)
}

/// Replaces entry number `index` (0-based) of `apiKeys` with `item`, in the same style.
pub fn replace_item(text: &str, index: usize, item: &Node) -> Result<String, EditError> {
    Ok(Layout::of(text)?.replace(text, index, item)?.text)
}

/// Removes entry number `index` (0-based) of `apiKeys`: its lines, or its `{...}` and comma.
pub fn remove_item(text: &str, index: usize) -> Result<String, EditError> {
    Ok(Layout::of(text)?.remove(text, index)?.text)
}

/// Where `apiKeys` and its items are in one text: all an edit needs to know about it.
///
/// Finding it parses the whole text, which on a large file costs more than the rest of an
/// edit; an edit that replaces whole lines of one block item tells the layout of its result
/// without parsing it (`after`), so a run of writes to one file parses it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    api_keys: ApiKeys,
    /// Byte offset just after the `:` that follows the `apiKeys` key, when there is one.
    colon: Option<usize>,
    /// The text has an alias. The loader refuses a text whose aliases expand to more than
    /// 100 times its events (an alias bomb), so removing or shortening an item, which
    /// leaves fewer events, can make the rest of such a text refused.
    aliases: bool,
}

/// An edit made: the new text, and where it changed when it replaced whole lines of one
/// block list item (None for every other edit).
#[derive(Debug)]
pub struct Edit {
    pub text: String,
    pub splice: Option<Splice>,
}

impl Layout {
    /// Parses `text` to find its layout; refuses what keyward will not edit.
    pub fn of(text: &str) -> Result<Self, EditError> {
        if !plain_line_breaks(text) {
            // The loader's parser (YAML 1.1) would read lines the locator's (YAML 1.2) does not.
            return Err(EditError::Unsupported(
                "it has line breaks other than LF and CRLF (a lone CR, U+0085, U+2028 or U+2029)"
                    .into(),
            ));
        }
        if text
            .strip_prefix('\u{feff}')
            .unwrap_or(text)
            .contains('\u{feff}')
        {
            // YAML 1.2 allows a byte order mark before each document; YAML 1.1 only at the
            // start of the stream, and reads one anywhere else as part of a key or value.
            return Err(EditError::Unsupported(
                "it has a byte order mark (U+FEFF) after its start".into(),
            ));
        }
        let doc = Doc::parse(text)?;
        if !doc.plain_anchor_names() {
            return Err(EditError::Unsupported(
                "it has an anchor or alias whose name is not letters, digits, - and _".into(),
            ));
        }
        Ok(Self {
            api_keys: doc.api_keys()?,
            colon: doc.api_keys_colon,
            aliases: doc.has_aliases(),
        })
    }

    /// Whether the text has an alias anywhere.
    pub fn has_aliases(&self) -> bool {
        self.aliases
    }

    /// How many items a block `apiKeys` list holds (None for any other shape).
    pub fn block_items(&self) -> Option<usize> {
        match &self.api_keys {
            ApiKeys::Block { items, .. } => Some(items.len()),
            _ => None,
        }
    }

    /// The layout of the text `splice` made from the one this layout is of, as `Layout::of`
    /// would find it. None when that cannot be told without parsing: the first item went,
    /// so the list's indentation may have changed, or the text has aliases, which the lines
    /// taken out may have held.
    pub fn after(&self, splice: &Splice) -> Option<Self> {
        let ApiKeys::Block { items, indent } = &self.api_keys else {
            return None;
        };
        if self.aliases {
            return None;
        }
        let new = Item {
            start: splice.start,
            end: splice.new_end,
            mark: splice.start + indent.dash,
        };
        let shift = |item: &Item| Item {
            start: item.start + splice.new_end - splice.old_end,
            end: item.end + splice.new_end - splice.old_end,
            mark: item.mark + splice.new_end - splice.old_end,
        };
        let items = match splice.item {
            ItemEdit::Append => items.iter().copied().chain([new]).collect(),
            ItemEdit::Replace(i) => {
                let (before, after) = items.split_at(i);
                let after = after.get(1..)?.iter().map(shift);
                before.iter().copied().chain([new]).chain(after).collect()
            }
            ItemEdit::Remove(0) => return None,
            ItemEdit::Remove(i) => {
                let (before, after) = items.split_at(i);
                let after = after.get(1..)?.iter().map(shift);
                before.iter().copied().chain(after).collect()
            }
        };
        Some(Self {
            api_keys: ApiKeys::Block {
                items,
                indent: *indent,
            },
            colon: self.colon,
            aliases: false,
        })
    }

    /// Adds `item` as the last entry of `apiKeys` in `text` (the text this layout is of).
    pub fn append(&self, text: &str, item: &Node) -> Result<Edit, EditError> {
        let nl = newline(text);
        let edited = |text| Ok(Edit { text, splice: None });
        match &self.api_keys {
            ApiKeys::Block { items, indent } => {
                let last = items.last().ok_or(EditError::NoSuchItem(0))?;
                let lines = emit::block_item(item, *indent, nl);
                if at_line_start(text, last.end) {
                    return Ok(Splice::lines(
                        text,
                        ItemEdit::Append,
                        last.end..last.end,
                        &lines,
                        *indent,
                    ));
                }
                edited(insert_lines(text, last.end, &lines, nl))
            }
            ApiKeys::Flow {
                items,
                brackets: Brackets { open, close },
            } if !items.is_empty() || *close > open + 1 => {
                match items.last() {
                    Some(last) => {
                        let rendered = format!(", {}", emit::flow(item));
                        edited(splice(text, last.end..last.end, &rendered))
                    }
                    // `[ ]` with inner spaces or comments: keep flow style, put the item
                    // inside: before `]` on one line, else right after `[` (an item at the
                    // start of the `]` line would be under-indented).
                    None if text[*open..*close].contains('\n') => {
                        edited(splice(text, open + 1..open + 1, &emit::flow(item)))
                    }
                    None => edited(splice(text, *close..*close, &emit::flow(item))),
                }
            }
            // `[]` or a null value: the list becomes a block list under the key.
            ApiKeys::Flow {
                brackets: Brackets { open, close },
                ..
            } => {
                let lines = emit::block_item(item, Indent::NEW_API_KEYS, nl);
                let after_line = line_end(text, *close);
                let removed = remove_value(text, *open..close + 1);
                let cut = text.len() - removed.len();
                edited(insert_lines(&removed, after_line - cut, &lines, nl))
            }
            ApiKeys::Null {
                value,
                key_line_end,
            } => {
                let lines = emit::block_item(item, Indent::NEW_API_KEYS, nl);
                match value {
                    Some(value) => {
                        let removed = remove_value(text, value.clone());
                        let cut = text.len() - removed.len();
                        edited(insert_lines(&removed, key_line_end - cut, &lines, nl))
                    }
                    None => edited(insert_lines(text, *key_line_end, &lines, nl)),
                }
            }
            ApiKeys::Missing { insert_at } => {
                let mut block = format!("apiKeys:{nl}");
                block.push_str(&emit::block_item(item, Indent::NEW_API_KEYS, nl));
                edited(insert_lines(text, *insert_at, &block, nl))
            }
        }
    }

    /// Replaces entry number `index` (0-based) of `apiKeys` with `item`, in the same style.
    pub fn replace(&self, text: &str, index: usize, item: &Node) -> Result<Edit, EditError> {
        let nl = newline(text);
        match &self.api_keys {
            ApiKeys::Block { items, indent } => {
                let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
                let mut lines = emit::block_item(item, *indent, nl);
                if !text[..old.end].ends_with('\n') {
                    // The item was the last line of a file without a final line break.
                    lines.truncate(lines.len() - nl.len());
                    return Ok(Edit {
                        text: splice(text, old.start..old.end, &lines),
                        splice: None,
                    });
                }
                let edit = ItemEdit::Replace(index);
                Ok(Splice::lines(
                    text,
                    edit,
                    old.start..old.end,
                    &lines,
                    *indent,
                ))
            }
            ApiKeys::Flow { items, .. } => {
                let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
                Ok(Edit {
                    text: splice(text, old.start..old.end, &emit::flow(item)),
                    splice: None,
                })
            }
            _ => Err(EditError::NoSuchItem(index)),
        }
    }

    /// Removes entry number `index` (0-based) of `apiKeys`: its lines, or its `{...}` and
    /// comma.
    pub fn remove(&self, text: &str, index: usize) -> Result<Edit, EditError> {
        match &self.api_keys {
            ApiKeys::Block { items, indent } => {
                let old = items.get(index).ok_or(EditError::NoSuchItem(index))?;
                if items.len() > 1 {
                    let edit = ItemEdit::Remove(index);
                    return Ok(Splice::lines(text, edit, old.start..old.end, "", *indent));
                }
                // The list is now empty: say so explicitly, right after `apiKeys:`.
                let removed = splice(text, old.start..old.end, "");
                let colon = self.colon.ok_or(EditError::NoSuchItem(index))?;
                Ok(Edit {
                    text: splice(&removed, colon..colon, " []"),
                    splice: None,
                })
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
                Ok(Edit {
                    text: splice(text, range, ""),
                    splice: None,
                })
            }
            _ => Err(EditError::NoSuchItem(index)),
        }
    }
}

/// `at` is the start of a line (or of the text).
fn at_line_start(text: &str, at: usize) -> bool {
    at == 0 || text.as_bytes().get(at - 1) == Some(&b'\n')
}

/// No line break but `\n` and `\r\n`: no lone `\r`, no U+0085 (UTF-8 `c2 85`), U+2028 or
/// U+2029 (`e2 80 a8`, `e2 80 a9`).
fn plain_line_breaks(text: &str) -> bool {
    let b = text.as_bytes();
    // Most texts hold none of the bytes these end with: one fast search for each first.
    if ![b'\r', 0x85, 0xa8, 0xa9]
        .iter()
        .any(|last| b.contains(last))
    {
        return true;
    }
    b.iter().enumerate().all(|(i, &byte)| match byte {
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        0x85 => i == 0 || b[i - 1] != 0xc2,
        0xa8 | 0xa9 => i < 2 || b[i - 2..i] != [0xe2, 0x80],
        _ => true,
    })
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

fn splice(text: &str, range: Range<usize>, with: &str) -> String {
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
fn remove_value(text: &str, value: Range<usize>) -> String {
    let start = if text[..value.start].ends_with(' ') {
        value.start - 1
    } else {
        value.start
    };
    splice(text, start..value.end, "")
}

#[cfg(test)]
mod tests;
