//! Does an edited text mean exactly the intended change? Nothing is written unless it does.
//!
//! Two ways to tell, which must always agree:
//! - `full` parses the whole new text and compares it with the expected keys and with the
//!   old text's other top-level values. On a large file that is most of a write's time.
//! - `incremental` parses only the lines the edit put in. It applies when the editor
//!   replaced whole lines of one block list item and the text shows that nothing else can
//!   have changed meaning (`Splice::keeps_the_rest`); otherwise it cannot tell, and the
//!   full check runs.
//!
//! Release builds trust `incremental` when it passes. Debug builds (and so every test) run
//! both and panic if `incremental` ever passes what `full` refuses, and the editor fuzz
//! target (`checks_agree`) compares them on every input.

use std::iter;

use serde_yaml::Mapping;

use super::edit::{Edited, Parsed, other_top_level};
use super::yaml_edit::{self, ItemEdit, Layout};
use super::{MAX_FILE_BYTES, StoreError};
use crate::domain::{KeyEntry, KeyHash, SecurityFile};

/// The new text means `edited.expected` and keeps every other top-level value of the old
/// text (`before`); returns the new text's other values.
pub(super) fn meaning(
    old: &str,
    before: &Parsed,
    layout: &Layout,
    edited: &Edited,
) -> Result<Mapping, StoreError> {
    match incremental(old, layout, &before.file, &before.others, edited) {
        Some(others) if !cfg!(debug_assertions) => Ok(others),
        quick => {
            let full = full(&edited.text, &edited.expected, &before.others);
            if let Some(quick) = quick {
                assert_eq!(
                    full.as_ref().ok(),
                    Some(&quick),
                    "the incremental check passed an edit the full check refuses"
                );
            }
            full
        }
    }
}

/// The layout of the new text, when the edit tells it without parsing (checked against a
/// parse in debug builds).
pub(super) fn next_layout(layout: &Layout, edited: &Edited) -> Option<Layout> {
    let next = layout.after(edited.splice.as_ref()?);
    if cfg!(debug_assertions) && next.is_some() {
        assert_eq!(next, Layout::of(&edited.text).ok(), "a carried-over layout");
    }
    next
}

/// Parses the whole new text.
pub(super) fn full(
    new: &str,
    expected: &SecurityFile,
    others: &Mapping,
) -> Result<Mapping, StoreError> {
    let parsed = SecurityFile::parse(new).map_err(|p| {
        tracing::error!(problem = %p, "surgical edit produced an unparsable file");
        StoreError::EditMismatch
    })?;
    if &parsed != expected {
        return Err(StoreError::EditMismatch);
    }
    match other_top_level(new) {
        Some(now) if now == *others => Ok(now),
        _ => Err(StoreError::EditMismatch),
    }
}

/// Some(the other top-level values) when the new text provably means `edited.expected`;
/// None when that cannot be told without the full check.
///
/// `current` is what the old text means, and like every file the store holds, its names
/// and hashes are unique: so are those of `expected` when the one entry that changed
/// shares none with the others.
fn incremental(
    old: &str,
    layout: &Layout,
    current: &SecurityFile,
    others: &Mapping,
    edited: &Edited,
) -> Option<Mapping> {
    let splice = edited.splice.as_ref()?;
    let (new, expected) = (&edited.text, &edited.expected.keys);
    let n = current.keys.len();
    if new.len() > MAX_FILE_BYTES
        || layout.block_items() != Some(n)
        || layout.has_aliases()
        || !splice.keeps_the_rest(old, new)
    {
        return None;
    }
    let keys = &current.keys;
    let means =
        |i: usize| item_means(splice.inserted(new), &expected[i]) && unique_at(&edited.expected, i);
    let fits = match (splice.item, edited.touched) {
        (ItemEdit::Append, Some(i)) => {
            i == n && expected.len() == n + 1 && expected[..n] == keys[..] && means(i)
        }
        (ItemEdit::Replace(k), Some(i)) => {
            i == k
                && expected.len() == n
                && k < n
                && expected[..k] == keys[..k]
                && expected[k + 1..] == keys[k + 1..]
                && means(i)
        }
        (ItemEdit::Remove(k), None) => {
            k < n
                && expected.len() + 1 == n
                && expected[..k] == keys[..k]
                && expected[k..] == keys[k + 1..]
        }
        _ => false,
    };
    fits.then(|| others.clone())
}

/// The lines of one list item mean exactly `entry`, and hold no anchor, alias or tag that
/// could tie them to the rest of the file.
fn item_means(lines: &str, entry: &KeyEntry) -> bool {
    let alone = format!("apiKeys:\n{lines}");
    yaml_edit::has_no_references(&alone)
        && SecurityFile::parse(&alone).is_ok_and(|f| matches!(f.keys.as_slice(), [e] if e == entry))
}

/// Entry `i` of `file` shares no name or hash with another entry, and holds no hash twice.
fn unique_at(file: &SecurityFile, i: usize) -> bool {
    let entry = &file.keys[i];
    let own: Vec<&KeyHash> = hashes(entry).collect();
    let twice = own
        .iter()
        .enumerate()
        .any(|(a, h)| own[a + 1..].contains(h));
    !twice
        && file.keys.iter().enumerate().all(|(j, other)| {
            j == i || (other.name != entry.name && hashes(other).all(|h| !own.contains(&h)))
        })
}

fn hashes(entry: &KeyEntry) -> impl Iterator<Item = &KeyHash> {
    iter::once(&entry.hash).chain(entry.previous_hashes.iter().map(|p| &p.hash))
}

/// The editor fuzz property's store half: makes the change `pick` chooses in `text` as a
/// write would, and panics if the incremental check passes what the full check refuses, or
/// if a layout carried over to the new text is not the one parsing it finds. Returns
/// whether the incremental check could tell (None: no edit was made).
pub(crate) fn checks_agree(
    text: &str,
    pick: impl FnOnce(&SecurityFile) -> Option<super::Change>,
) -> Option<bool> {
    let (Ok(file), Some(others)) = (SecurityFile::parse(text), other_top_level(text)) else {
        return None;
    };
    let layout = Layout::of(text).ok()?;
    let edited = super::edit::apply(text, &layout, &file, pick(&file)?).ok()?;
    let quick = incremental(text, &layout, &file, &others, &edited);
    let full = full(&edited.text, &edited.expected, &others).ok();
    if let Some(quick) = &quick {
        assert_eq!(
            full.as_ref(),
            Some(quick),
            "the incremental check passed an edit the full check refuses"
        );
    }
    if full.is_some()
        && let Some(next) = edited.splice.as_ref().and_then(|s| layout.after(s))
    {
        assert_eq!(
            Some(next),
            Layout::of(&edited.text).ok(),
            "a carried-over layout"
        );
    }
    Some(quick.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KeyName, Permission, Permissions};
    use crate::store::Change;

    const FILE: &str = "\
# keys
apiKeys:
  - name: a
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    permissions: [orders:read]
  - name: b
    hash: sha256:2222222222222222222222222222222222222222222222222222222222222222
  - name: c
    hash: sha256:3333333333333333333333333333333333333333333333333333333333333333
users: [alice]
";

    fn changed(file: &SecurityFile, i: usize) -> KeyEntry {
        let mut entry = file.keys[i].clone();
        entry.enabled = false;
        entry
    }

    #[test]
    fn the_incremental_check_tells_the_edits_keyward_makes_to_a_plain_block_list() {
        let picks: [fn(&SecurityFile) -> Change; 5] = [
            |f| {
                let mut new = changed(f, 0);
                new.name = KeyName::parse("d").unwrap();
                new.hash = KeyHash::of(b"d");
                Change::Create(new)
            },
            |f| Change::Replace(changed(f, 0)),
            |f| Change::Replace(changed(f, 2)),
            |f| Change::Delete(f.keys[1].name.clone()),
            |f| Change::Delete(f.keys[2].name.clone()),
        ];
        for pick in picks {
            assert_eq!(checks_agree(FILE, |f| Some(pick(f))), Some(true));
        }
    }

    #[test]
    fn an_edit_that_would_not_mean_the_change_is_left_to_the_full_check() {
        let duplicate_name = |f: &SecurityFile| {
            let mut new = changed(f, 0);
            new.hash = KeyHash::of(b"d");
            Change::Create(new)
        };
        let duplicate_hash = |f: &SecurityFile| {
            let mut new = changed(f, 0);
            new.name = KeyName::parse("d").unwrap();
            Change::Create(new)
        };
        assert_eq!(checks_agree(FILE, |f| Some(duplicate_name(f))), Some(false));
        assert_eq!(checks_agree(FILE, |f| Some(duplicate_hash(f))), Some(false));
    }

    #[test]
    fn a_line_of_blanks_with_a_tab_after_the_item_is_left_to_the_full_check() {
        // After a plain scalar the loader skips the tab; after the `]` the new item ends
        // with, it is an error, so the new text does not parse at all.
        let text = "\
apiKeys:
  - name: a
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
     \t
  - name: b
    hash: sha256:2222222222222222222222222222222222222222222222222222222222222222
";
        let with_permissions = |f: &SecurityFile| {
            let mut new = f.keys[0].clone();
            new.permissions =
                Permissions::new(vec![Permission::parse("orders:read").unwrap()]).unwrap();
            Change::Replace(new)
        };
        assert_eq!(
            checks_agree(text, |f| Some(with_permissions(f))),
            Some(false)
        );
    }

    #[test]
    fn a_file_with_aliases_is_left_to_the_full_check() {
        // 12,340 alias expansions for 125 events: under the loader's limit of 100 per
        // event, and over it once removing an item leaves 119.
        let list = |name: &str, anchor: &str, of: &str| {
            format!("{name}: &{anchor} [{}]\n", [of; 10].join(", "))
        };
        let text = format!(
            "apiKeys:\n  - name: a\n    hash: sha256:{}\n  - name: b\n    hash: sha256:{}\n\
             {}{}{}{}l4: [{}]\npad: [{}]\n",
            "1".repeat(64),
            "2".repeat(64),
            list("l0", "a0", "x"),
            list("l1", "a1", "*a0"),
            list("l2", "a2", "*a1"),
            list("l3", "a3", "*a2"),
            ["*a3"; 10].join(", "),
            ["0"; 40].join(", "),
        );
        assert!(
            other_top_level(&text).is_some(),
            "the file is accepted as it is"
        );
        let delete_b = |f: &SecurityFile| Change::Delete(f.keys[1].name.clone());
        assert_eq!(checks_agree(&text, |f| Some(delete_b(f))), Some(false));
    }
}
