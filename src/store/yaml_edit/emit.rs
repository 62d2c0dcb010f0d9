//! Rendering a `Node` as YAML text: a block item (whole lines) or a flow item (one line),
//! quoting every string that would otherwise read as something else.

use std::borrow::Cow;

use super::{Indent, Node};

/// A mapping as a block list item, one line per field, each ending in `nl`.
pub(super) fn block_item(item: &Node, indent: Indent, nl: &str) -> String {
    let mut out = String::new();
    push_block_item(&mut out, item, indent, nl);
    out
}

// The renderers push onto one string rather than building and joining one per value.
fn push_block_item(out: &mut String, item: &Node, indent: Indent, nl: &str) {
    let Node::Map(fields) = item else {
        return;
    };
    for (i, (k, v)) in fields.iter().enumerate() {
        if i == 0 {
            pad(out, indent.dash);
            out.push('-');
            pad(out, indent.key - indent.dash - 1);
        } else {
            pad(out, indent.key);
        }
        out.push_str(k);
        out.push(':');
        block_value(out, v, indent.key, nl);
    }
}

fn pad(out: &mut String, spaces: usize) {
    out.extend(std::iter::repeat_n(' ', spaces));
}

/// The value of a field whose key is at column `key`: a list of mappings goes on the lines
/// below, anything else on the key's line.
fn block_value(out: &mut String, v: &Node, key: usize, nl: &str) {
    match v {
        Node::Seq(items) if items.iter().any(|n| matches!(n, Node::Map(_))) => {
            out.push_str(nl);
            for item in items {
                push_block_item(out, item, Indent::list_under(key), nl);
            }
        }
        other => {
            out.push(' ');
            inline(out, other, false);
            out.push_str(nl);
        }
    }
}

/// An item of a flow list: `{name: a, hash: ...}`.
pub(super) fn flow(item: &Node) -> String {
    let mut out = String::new();
    inline(&mut out, item, true);
    out
}

/// A value on one line. `flow`: inside a flow collection, where more must be quoted.
fn inline(out: &mut String, v: &Node, flow: bool) {
    match v {
        Node::Str(s) => out.push_str(&scalar(s, flow)),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Int(n) => out.push_str(&n.to_string()),
        Node::Seq(items) => {
            out.push('[');
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                inline(out, n, true);
            }
            out.push(']');
        }
        Node::Map(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                inline(out, v, true);
            }
            out.push('}');
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
    // Bytes, not chars: a byte of a non-ASCII character is in neither set.
    first.is_ascii_alphabetic()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'@' | b'+' | b'-' | b':'))
        && !s.ends_with(':')
        // In flow context `a:b` is read as the string "a:b" (checked in the tests), but a
        // `:` before a flow indicator would not be.
        && !(flow && s.contains("::"))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
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
    use super::super::append_item;
    use super::*;

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
    fn a_nested_list_of_mappings_goes_two_under_its_key() {
        let node = Node::Map(vec![
            ("name".into(), Node::Str("a".into())),
            (
                "previousHashes".into(),
                Node::Seq(vec![Node::Map(vec![
                    ("hash".into(), Node::Str("h".into())),
                    ("expiresAt".into(), Node::Str("2026-11-22T10:00:00Z".into())),
                ])]),
            ),
        ]);
        let out = block_item(&node, Indent { dash: 2, key: 4 }, "\n");
        assert_eq!(
            out,
            "  - name: a\n    previousHashes:\n      - hash: h\n        expiresAt: 2026-11-22T10:00:00Z\n"
        );
    }
}
