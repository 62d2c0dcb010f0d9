//! The locator's tests: what it finds, and what it refuses to edit.

use super::*;
use crate::store::yaml_edit::append_item;
use crate::store::yaml_edit::tests::item;

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

const ENTRY: [Step<'static>; 2] = [Step::Key("apiKeys"), Step::Index(1)];

fn at(line: usize, column: usize) -> Option<Pos> {
    Some(Pos { line, column })
}

#[test]
fn a_value_is_found_by_its_path_in_block_and_flow_style() {
    let block =
        "# c\napiKeys:\n  - name: a\n  - name: b\n    hash: \"x y\"\n    permissions:\n      - p\n";
    let field = |f| [ENTRY[0], ENTRY[1], Step::Key(f)];
    assert_eq!(value_position(block, &field("name")), at(4, 11));
    assert_eq!(value_position(block, &field("hash")), at(5, 11));
    assert_eq!(value_position(block, &ENTRY), at(4, 5));
    assert_eq!(value_position(block, &field("description")), None);
    let perms = [ENTRY[0], ENTRY[1], Step::Key("permissions"), Step::Index(0)];
    assert_eq!(value_position(block, &perms), at(7, 9));

    let flow = "apiKeys: [{name: a}, {name: b, hash: 'x'}]\n";
    assert_eq!(value_position(flow, &field("hash")), at(1, 38));
    assert_eq!(value_position(flow, &ENTRY), at(1, 22));
}

#[test]
fn anchor_and_alias_names_are_read_from_the_nodes_properties() {
    let plain = "a: &x-1 [*x-1, orders:*, R&D, \"&a:b *c.d\"]\nb: !!str &y_2 v\nc: *y_2\n";
    assert!(Doc::parse(plain).unwrap().plain_anchor_names());
    for text in [
        "&a:b x: 1\n",
        "x: &a.b 1\ny: *a.b\n",
        "[&a:b x]\n",
        "x: !t &a@ 1\n",
    ] {
        assert!(!Doc::parse(text).unwrap().plain_anchor_names(), "{text:?}");
    }
}

#[test]
fn a_repeated_key_is_found_at_its_second_use() {
    let text = "apiKeys:\n  - name: a\n  - name: b\n    hash: h\n    name: c\n";
    assert_eq!(repeated_key_position(text, &ENTRY, "name"), at(5, 5));
    assert_eq!(repeated_key_position(text, &ENTRY, "hash"), None);
    let top = "apiKeys: []\nusers: []\napiKeys: []\n";
    assert_eq!(repeated_key_position(top, &[], "apiKeys"), at(3, 1));
}

#[test]
fn list_scalars_come_with_their_positions() {
    let text = "apiKeys:\n  - name: a\n  - name: b\n    permissions: [x, \"y\", {z: 1}]\n";
    let path = [ENTRY[0], ENTRY[1], Step::Key("permissions")];
    let found = list_scalars(text, &path).unwrap();
    let found: Vec<(&str, Pos)> = found.iter().map(|s| (s.value.as_str(), s.pos)).collect();
    assert_eq!(
        found,
        [
            (
                "x",
                Pos {
                    line: 4,
                    column: 19
                }
            ),
            (
                "y",
                Pos {
                    line: 4,
                    column: 22
                }
            )
        ]
    );
    assert_eq!(list_scalars(text, &ENTRY), None);
}
