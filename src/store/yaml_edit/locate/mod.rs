//! Finding things in the text from a real YAML parser's spans: the top-level `apiKeys`
//! list and the byte range of each of its items (for the editor), and the position of a
//! value by its path (for error messages that point at the offending value).

use std::iter;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::{DASH_WIDTH, EditError, Indent, line_end, line_start};

/// One step of a path from the top of the document: a key of a mapping, or an index
/// (0-based) into a list. `[Key("apiKeys"), Index(2), Key("hash")]` is `apiKeys[2].hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A 1-based line and column; columns count characters, as serde_yaml's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A scalar item of a list, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScalar {
    pub value: String,
    pub pos: Pos,
}

/// Where the value at `path` starts: the first character of a scalar (its quote, if it is
/// quoted), the `[` or `{` of a flow collection, the first key or `-` of a block one.
/// None when the text does not parse or holds nothing at `path`.
pub fn value_position(text: &str, path: &[Step<'_>]) -> Option<Pos> {
    let doc = Doc::parse(text).ok()?;
    let node = doc.node_at(path)?;
    Some(doc.pos(doc.events[node].start))
}

/// Where `key` appears for the second time in the mapping at `path`.
pub fn repeated_key_position(text: &str, path: &[Step<'_>], key: &str) -> Option<Pos> {
    let doc = Doc::parse(text).ok()?;
    let map = doc.node_at(path)?;
    let second = doc.keys(map)?.filter(|&k| doc.is_key(k, key)).nth(1)?;
    Some(doc.pos(doc.events[second].start))
}

/// The scalar items of the list at `path`, in order (items that are not scalars are left
/// out). None when there is no list at `path`.
pub fn list_scalars(text: &str, path: &[Step<'_>]) -> Option<Vec<ListScalar>> {
    let doc = Doc::parse(text).ok()?;
    let list = doc.node_at(path)?;
    if !matches!(doc.events[list].event, Event::SequenceStart(..)) {
        return None;
    }
    let scalars = doc
        .children(list)
        .filter_map(|i| match &doc.events[i].event {
            Event::Scalar(value, ..) => Some(ListScalar {
                value: value.to_string(),
                pos: doc.pos(doc.events[i].start),
            }),
            _ => None,
        })
        .collect();
    Some(scalars)
}

/// True when `text` is YAML without anchors, aliases or tags: nothing in it can refer to,
/// or be referred to from, another part of a document it is put into.
pub fn has_no_references(text: &str) -> bool {
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        match next {
            Err(_) | Ok((Event::Alias(_), _)) => return false,
            Ok((Event::Scalar(_, _, anchor, tag), _)) if anchor != 0 || tag.is_some() => {
                return false;
            }
            Ok((Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag), _))
                if anchor != 0 || tag.is_some() =>
            {
                return false;
            }
            Ok((Event::StreamEnd, _)) => return true,
            Ok(_) => {}
        }
    }
    true
}

/// One item's byte range: whole lines for block items, `{...}` for flow items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Item {
    pub start: usize,
    pub end: usize,
    /// The `-` of a block item, the `{` of a flow item.
    pub mark: usize,
}

/// Byte offsets of the `[` and `]` of a flow list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Brackets {
    pub open: usize,
    pub close: usize,
}

/// What the top-level `apiKeys` holds, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ApiKeys {
    /// No `apiKeys` key: a new one goes at `insert_at` (end of the top-level mapping).
    Missing {
        insert_at: usize,
    },
    /// `apiKeys:` with an empty (None) or explicit (`~`, `null`) null value.
    Null {
        value: Option<std::ops::Range<usize>>,
        key_line_end: usize,
    },
    Block {
        items: Vec<Item>,
        indent: Indent,
    },
    Flow {
        items: Vec<Item>,
        brackets: Brackets,
    },
}

/// A parser event and the bytes it spans.
struct Spanned<'a> {
    event: Event<'a>,
    start: usize,
    end: usize,
}

/// Events with byte spans.
pub(super) struct Doc<'a> {
    text: &'a str,
    events: Vec<Spanned<'a>>,
    /// Byte offset just after the `:` that follows the `apiKeys` key, when there is one.
    pub api_keys_colon: Option<usize>,
}

impl<'a> Doc<'a> {
    pub fn parse(text: &'a str) -> Result<Self, EditError> {
        // Spans count characters; edits need bytes.
        let mut char_to_byte: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        char_to_byte.push(text.len());
        let byte = |i: usize| char_to_byte.get(i).copied().unwrap_or(text.len());
        let mut events = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span): (Event<'a>, Span) = next.map_err(|e| EditError::Syntax {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            })?;
            let done = matches!(event, Event::StreamEnd);
            events.push(Spanned {
                event,
                start: byte(span.start.index()),
                end: byte(span.end.index()),
            });
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
            let after = doc.events[i].end;
            let rest = &text[after..];
            let colon = rest.find(':')?;
            rest[..colon]
                .chars()
                .all(|c| c == ' ' || c == '\t')
                .then_some(after + colon + 1)
        });
        Ok(doc)
    }

    /// The document refers to an anchor somewhere (`*a`).
    pub fn has_aliases(&self) -> bool {
        self.events
            .iter()
            .any(|s| matches!(s.event, Event::Alias(_)))
    }

    /// Every anchor (`&a`) and alias (`*a`) name is letters, digits, `-` and `_`. The
    /// loader's parser (YAML 1.1) ends a name at the first other character, this one (YAML
    /// 1.2) does not: `&a:b key` is an anchor `a` on the key `:b key` for one and an anchor
    /// `a:b` on `key` for the other.
    pub fn plain_anchor_names(&self) -> bool {
        self.events.iter().all(|s| {
            let named = match &s.event {
                Event::Alias(_) => true,
                Event::Scalar(_, _, anchor, _)
                | Event::SequenceStart(anchor, _)
                | Event::MappingStart(anchor, _) => *anchor != 0,
                _ => false,
            };
            !named
                || self.anchor_name(s.start).is_some_and(|name| {
                    name.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
                })
        })
    }

    /// The anchor or alias name in the node properties that start at `at` (`&name`,
    /// `!tag &name`, `*name`): a node's span starts with its properties.
    fn anchor_name(&self, at: usize) -> Option<&'a str> {
        const ENDS_NAME: [char; 9] = [' ', '\t', '\r', '\n', ',', '[', ']', '{', '}'];
        let mut rest = self.text.get(at..)?;
        if rest.starts_with('!') {
            let tag_end = rest.find(ENDS_NAME).unwrap_or(rest.len());
            rest = rest[tag_end..].trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let name = rest.strip_prefix(['&', '*'])?;
        Some(&name[..name.find(ENDS_NAME).unwrap_or(name.len())])
    }

    fn pos(&self, byte: usize) -> Pos {
        let before = &self.text[..byte];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        Pos { line, column }
    }

    /// The 0-based column of `byte`, for indentation.
    fn column(&self, byte: usize) -> usize {
        self.pos(byte).column - 1
    }

    /// Index of the event after node `i` (a scalar, alias, or a whole collection).
    fn skip(&self, i: usize) -> usize {
        let mut depth = 0usize;
        let mut j = i;
        while j < self.events.len() {
            match self.events[j].event {
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

    /// The first event of each node directly inside the collection that starts at `open`.
    fn children(&self, open: usize) -> impl Iterator<Item = usize> + '_ {
        let close = self.skip(open) - 1;
        iter::successors(Some(open + 1), |&i| Some(self.skip(i))).take_while(move |&i| i < close)
    }

    /// The keys of the mapping that starts at `open` (each key's value starts at
    /// `skip(key)`); None if it is no mapping.
    fn keys(&self, open: usize) -> Option<impl Iterator<Item = usize> + '_> {
        if !matches!(self.events[open].event, Event::MappingStart(..)) {
            return None;
        }
        let close = self.skip(open) - 1;
        let keys = iter::successors(Some(open + 1), |&key| Some(self.skip(self.skip(key))));
        Some(keys.take_while(move |&key| key < close))
    }

    fn is_key(&self, i: usize, key: &str) -> bool {
        matches!(&self.events[i].event, Event::Scalar(k, _, _, _) if k == key)
    }

    /// The first event of the node at `path`, following keys and list indices from the
    /// document's top node (whatever its style: this only reads).
    fn node_at(&self, path: &[Step<'_>]) -> Option<usize> {
        let mut node = self.events.iter().position(|s| {
            matches!(
                s.event,
                Event::MappingStart(..)
                    | Event::SequenceStart(..)
                    | Event::Scalar(..)
                    | Event::Alias(_)
            )
        })?;
        for step in path {
            node = match *step {
                Step::Key(key) => self.skip(self.keys(node)?.find(|&k| self.is_key(k, key))?),
                Step::Index(n) => {
                    if !matches!(self.events[node].event, Event::SequenceStart(..)) {
                        return None;
                    }
                    self.children(node).nth(n)?
                }
            };
        }
        Some(node)
    }

    /// Index of the top-level mapping's `MappingStart`, or None for an empty document.
    /// Refuses what keyward will not edit.
    fn top_mapping(&self) -> Result<Option<usize>, EditError> {
        let mut docs = 0;
        let mut top = None;
        let mut i = 0;
        while i < self.events.len() {
            match &self.events[i].event {
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
                    top = Some(i);
                    i = self.skip(i);
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
        let Some(top) = self.top_mapping()? else {
            return Ok(None);
        };
        let key = self
            .keys(top)
            .and_then(|mut keys| keys.find(|&k| self.is_key(k, "apiKeys")));
        Ok(key)
    }

    /// A flow collection spans its brackets; a block one starts with an empty span.
    fn is_flow(&self, i: usize) -> bool {
        self.events[i].end > self.events[i].start
    }

    pub fn api_keys(&self) -> Result<ApiKeys, EditError> {
        let Some(key) = self.find_api_keys_key()? else {
            return Ok(ApiKeys::Missing {
                insert_at: self.document_end(),
            });
        };
        let v = key + 1;
        let Spanned { event, start, end } = &self.events[v];
        match event {
            Event::Scalar(value, ScalarStyle::Plain, 0, None)
                if value.is_empty() || value == "~" || value == "null" =>
            {
                let key_line_end = line_end(self.text, self.events[key].end);
                let value = (end > start).then_some(*start..*end);
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
                    let close = self.events[self.skip(v) - 1].start;
                    Ok(ApiKeys::Flow {
                        items,
                        brackets: Brackets {
                            open: *start,
                            close,
                        },
                    })
                } else {
                    let first = items
                        .first()
                        .ok_or_else(|| unsupported("empty block sequence"))?;
                    let dash = self.column(first.mark);
                    let key = self.first_key_column(v).unwrap_or(dash + DASH_WIDTH);
                    Ok(ApiKeys::Block {
                        items,
                        indent: Indent {
                            dash,
                            key: key.max(dash + DASH_WIDTH),
                        },
                    })
                }
            }
            _ => Err(unsupported("apiKeys is not a list")),
        }
    }

    /// The 0-based column of the first key of the first item of the list at `seq`.
    fn first_key_column(&self, seq: usize) -> Option<usize> {
        let first_item = self.events.get(seq + 1)?;
        Some(self.column(first_item.start))
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
        let mut items = Vec::new();
        for i in self.children(seq) {
            let Event::MappingStart(anchor, _) = &self.events[i].event else {
                return Err(unsupported("an apiKeys entry is not a mapping"));
            };
            if *anchor != 0 {
                return Err(unsupported("an apiKeys entry has an anchor"));
            }
            let next = self.skip(i);
            let item = if flow {
                // Just past the `}`: the end event's span can run on over a comment.
                let close = &self.events[next - 1];
                let end = if self.text.as_bytes().get(close.start) == Some(&b'}') {
                    close.start + 1
                } else {
                    close.end
                };
                Item {
                    start: self.events[i].start,
                    end,
                    mark: self.events[i].start,
                }
            } else {
                // Content ends where the last non-empty span inside the item ends, less the
                // line breaks and spaces a block scalar's span runs on over (up to the next
                // token, which can be on the next item's line).
                let last = self.events[i..next]
                    .iter()
                    .filter(|s| s.end > s.start)
                    .map(|s| s.end)
                    .max()
                    .unwrap_or(self.events[i].end);
                let last = self.text[..last]
                    .trim_end_matches([' ', '\t', '\r', '\n'])
                    .len();
                let dash = self.dash_before(self.events[i].start)?;
                Item {
                    start: line_start(self.text, dash),
                    // `last` is past a character with content, so at or before its line break.
                    end: line_end(self.text, last.max(dash + 1)),
                    mark: dash,
                }
            };
            items.push(item);
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

#[cfg(test)]
mod tests;
