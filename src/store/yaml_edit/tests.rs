//! The editor's own tests, and the item the other modules' tests edit: kept apart so the
//! editor's file reads as the editor.

use super::*;

pub(super) fn item(name: &str) -> Node {
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
fn an_item_ending_in_a_block_scalar_ends_with_its_last_line() {
    // The parser's span of a block scalar runs on to the next token, on the next item's
    // line: the item must not take that line with it.
    for header in ["|", "|+", ">-"] {
        let text = format!(
            "apiKeys:\n  - name: a\n    description: {header}\n      text\n\n  - name: b\n    hash: x\n"
        );
        let replaced = replace_item(&text, 0, &item("a")).unwrap();
        assert_eq!(names(&replaced), ["a", "b"], "{replaced}");
        let removed = remove_item(&text, 0).unwrap();
        assert_eq!(names(&removed), ["b"], "{removed}");
    }
}

#[test]
fn an_item_ending_in_a_character_of_more_than_one_byte_is_edited() {
    let text = "apiKeys:\n  - name: a\n    description: café\n  - name: b\n";
    assert_eq!(
        names(&replace_item(text, 0, &item("a")).unwrap()),
        ["a", "b"]
    );
    assert_eq!(names(&remove_item(text, 0).unwrap()), ["b"]);
    assert_eq!(
        names(&append_item(text, &item("c")).unwrap()),
        ["a", "b", "c"]
    );
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
fn a_new_list_is_what_appending_to_an_empty_file_writes() {
    assert_eq!(new_list(&item("a")), append_item("", &item("a")).unwrap());
}

#[test]
fn line_breaks_other_than_lf_and_crlf_are_found() {
    assert!(plain_line_breaks("a\r\nb\nÅ é\u{2027}"));
    for text in ["a\rb", "a\r", "\u{85}", "x\u{2028}", "\u{2029}y"] {
        assert!(!plain_line_breaks(text), "{text:?}");
    }
}

#[test]
fn a_file_the_two_parsers_read_differently_is_not_edited() {
    for text in [
        "apiKeys:\rm: [x]\n",
        "apiKeys: []\nz: \"a\u{2028}b\"\n",
        "&s:a apiKeys:\n",
        "apiKeys: []\nz: &a:b [x]\n",
        "\u{feff}\u{feff}apiKeys:\n",
        "x: 1\n\u{feff}apiKeys: []\n",
    ] {
        assert!(matches!(
            append_item(text, &item("a")),
            Err(EditError::Unsupported(_))
        ));
    }
}

#[test]
fn a_new_list_is_indented_two_under_its_key() {
    assert_eq!(Indent::NEW_API_KEYS, Indent { dash: 2, key: 4 });
}
