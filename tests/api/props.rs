//! Property tests of the surgical editor through the store's own rendering: random
//! create / update / delete / rotate sequences on random valid files (comments, block,
//! compact and flow style, other top-level keys) always give a file that parses to exactly
//! the expected model, keeps every comment line and every other top-level value, and
//! append-then-remove gives back the original bytes.

use keyward::domain::{KeyEntry, KeyHash, KeyName, Permission, Permissions, PreviousHash};
use keyward::store::render::entry_node;
use keyward::store::{SecurityFile, yaml_edit};
use proptest::prelude::*;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy)]
enum Style {
    Block,
    Compact,
    Flow,
}

#[derive(Debug, Clone)]
enum Op {
    Create(Vec<String>, bool),
    Update(usize, Vec<String>, bool),
    Delete(usize),
    Rotate(usize),
}

fn entry(name: &str, perms: &[String], enabled: bool, seed: usize) -> KeyEntry {
    KeyEntry {
        name: KeyName::parse(name).unwrap(),
        hash: KeyHash::of(format!("{name}-{seed}").as_bytes()),
        hint: None,
        enabled,
        permissions: Permissions::new(
            perms
                .iter()
                .map(|p| Permission::parse(p).unwrap())
                .collect(),
        )
        .unwrap(),
        description: None,
        created_at: None,
        created_by: None,
        rotated_at: None,
        expires_at: None,
        previous_hashes: Vec::new(),
    }
}

fn perms() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(
        prop::sample::select(vec![
            "orders:read",
            "orders:*",
            "*",
            "a.b",
            "x-y:z",
            "admin",
        ]),
        0..3,
    )
    .prop_map(|s| s.into_iter().map(str::to_owned).collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (perms(), any::<bool>()).prop_map(|(p, e)| Op::Create(p, e)),
        (any::<usize>(), perms(), any::<bool>()).prop_map(|(i, p, e)| Op::Update(i, p, e)),
        any::<usize>().prop_map(Op::Delete),
        any::<usize>().prop_map(Op::Rotate),
    ]
}

/// A file in the given style, written the way people write them.
fn render_file(
    style: Style,
    keys: &[KeyEntry],
    comments: bool,
    before: bool,
    after: bool,
) -> String {
    let mut s = String::new();
    if comments {
        s.push_str("# owned by ops\n\n");
    }
    if before {
        s.push_str("users: [alice, bob]   # not ours\n");
    }
    let line = |e: &KeyEntry| {
        let p: Vec<&str> = e.permissions.as_strs();
        let p: Vec<String> = p.iter().map(|x| format!("\"{x}\"")).collect();
        (
            e.name.to_string(),
            e.hash.to_string(),
            p.join(", "),
            e.enabled,
        )
    };
    match style {
        Style::Flow => {
            let items: Vec<String> = keys
                .iter()
                .map(|e| {
                    let (n, h, p, en) = line(e);
                    format!("{{name: {n}, hash: \"{h}\", enabled: {en}, permissions: [{p}]}}")
                })
                .collect();
            if comments && !items.is_empty() {
                // One item a line, each with a comment after it (and after its comma).
                s.push_str("apiKeys: [ # flow list\n");
                for (i, item) in items.iter().enumerate() {
                    let comma = if i + 1 < items.len() { "," } else { "" };
                    s.push_str(&format!("  {item}{comma} # entry {i}\n"));
                }
                // (`]` at column 0 is common too, but the editor's parser refuses it once
                // the list is empty; keyward then answers 409 tenant_file_unsupported.)
                s.push_str("  ] # end of list\n");
            } else {
                s.push_str(&format!("apiKeys: [{}]\n", items.join(", ")));
            }
        }
        Style::Block | Style::Compact => {
            let (dash, key) = if matches!(style, Style::Block) {
                ("  - ", "    ")
            } else {
                ("- ", "  ")
            };
            s.push_str(if keys.is_empty() {
                "apiKeys: []\n"
            } else {
                "apiKeys:\n"
            });
            for (i, e) in keys.iter().enumerate() {
                let (n, h, p, en) = line(e);
                if comments {
                    s.push_str(&format!("{}# entry {i}\n", &dash[..dash.len() - 2]));
                }
                s.push_str(&format!(
                    "{dash}name: {n}\n{key}hash: {h}\n{key}enabled: {en}\n{key}permissions: [{p}]\n"
                ));
                if comments && i % 2 == 0 {
                    s.push('\n');
                }
            }
        }
    }
    if after {
        s.push_str("settings:\n  retries: 3   # also not ours\n");
    }
    if comments {
        s.push_str("# end\n");
    }
    s
}

/// The comments, each from its `#` to the end of its line (a flow item may be added before
/// a comment on the `[` line; the generated data has no `#` elsewhere).
fn comment_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.find('#').map(|i| &l[i..]))
        .collect()
}

fn others(text: &str) -> serde_yaml::Value {
    let mut v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    if let Some(m) = v.as_mapping_mut() {
        m.remove("apiKeys");
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_edit_sequences_mean_exactly_the_intended_change(
        style in prop_oneof![Just(Style::Block), Just(Style::Compact), Just(Style::Flow)],
        initial in prop::collection::vec((perms(), any::<bool>()), 0..5),
        comments in any::<bool>(),
        before in any::<bool>(),
        after in any::<bool>(),
        ops in prop::collection::vec(op(), 1..8),
    ) {
        let mut model: Vec<KeyEntry> = initial
            .iter()
            .enumerate()
            .map(|(i, (p, e))| entry(&format!("k{i}"), p, *e, 0))
            .collect();
        let mut text = render_file(style, &model, comments, before, after);
        prop_assert_eq!(SecurityFile::parse(&text).unwrap().keys, model.clone());
        let original_comments: Vec<String> = comment_lines(&text).iter().map(|s| s.to_string()).collect();
        let original_others = others(&text);

        for (step, op) in ops.into_iter().enumerate() {
            let before_text = text.clone();
            let next = match op {
                Op::Create(p, e) => {
                    let new = entry(&format!("n{step}"), &p, e, step);
                    let t = yaml_edit::append_item(&text, &entry_node(&new)).unwrap();
                    // Append then remove is the identity, byte for byte (a file that
                    // did not end in a line break may gain one).
                    let back = yaml_edit::remove_item(&t, model.len()).unwrap();
                    if !model.is_empty() || !matches!(style, Style::Flow) {
                        prop_assert_eq!(back.trim_end(), before_text.trim_end());
                    }
                    model.push(new);
                    t
                }
                Op::Update(i, p, e) if !model.is_empty() => {
                    let i = i % model.len();
                    let mut next = model[i].clone();
                    next.permissions = entry("x", &p, e, 0).permissions;
                    next.enabled = e;
                    let t = yaml_edit::replace_item(&text, i, &entry_node(&next)).unwrap();
                    model[i] = next;
                    t
                }
                Op::Delete(i) if !model.is_empty() => {
                    let i = i % model.len();
                    model.remove(i);
                    yaml_edit::remove_item(&text, i).unwrap()
                }
                Op::Rotate(i) if !model.is_empty() => {
                    let i = i % model.len();
                    let mut next = model[i].clone();
                    next.previous_hashes.push(PreviousHash {
                        hash: next.hash,
                        expires_at: OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(),
                    });
                    next.hash = KeyHash::of(format!("rotated-{step}").as_bytes());
                    let t = yaml_edit::replace_item(&text, i, &entry_node(&next)).unwrap();
                    model[i] = next;
                    t
                }
                _ => continue,
            };
            text = next;
            let parsed = SecurityFile::parse(&text);
            prop_assert!(parsed.is_ok(), "step {}: {:?}\n{}", step, parsed.err(), text);
            let keys: Vec<KeyEntry> = parsed.unwrap().keys;
            prop_assert_eq!(&keys, &model, "step {}:\n{}", step, text);
            prop_assert_eq!(others(&text), original_others.clone());
            // Comments outside the edited entries are all still there, in order
            // (generated entries carry none inside them).
            let now: Vec<&str> = comment_lines(&text);
            let kept: Vec<&str> = original_comments
                .iter()
                .map(String::as_str)
                .filter(|c| !c.contains("# entry"))
                .collect();
            let now_kept: Vec<&str> = now.into_iter().filter(|c| !c.contains("# entry")).collect();
            prop_assert_eq!(now_kept, kept);
        }
    }
}
