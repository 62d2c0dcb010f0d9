//! An edit before it is checked: a tenant file's text as already parsed (`Parsed`), a
//! change applied to it surgically (`apply`), and what the new text must mean (`Edited`).
//! The write engine (`write.rs`) makes edits; `check.rs` tells whether one means exactly
//! its change. Both use this file, and neither uses the other's internals.

use std::sync::Arc;

use super::yaml_edit::{self, Layout};
use super::{Change, StoreError, render};
use crate::domain::SecurityFile;

/// A file's text as already parsed: its keys, its other top-level values, and where the
/// editor finds its items (None until an edit needs it).
pub(super) struct Parsed {
    pub(super) digest: [u8; 32],
    pub(super) file: Arc<SecurityFile>,
    pub(super) others: serde_yaml::Mapping,
    pub(super) layout: Option<Layout>,
}

/// An edit as the store made it: the new text, and what it must mean.
pub(super) struct Edited {
    pub text: String,
    pub expected: SecurityFile,
    /// The index in `expected` of the created or replaced entry (None for a removal).
    pub touched: Option<usize>,
    pub splice: Option<yaml_edit::Splice>,
}

/// Makes the surgical edit in `text`, whose layout is `layout` and meaning `current`.
pub(super) fn apply(
    text: &str,
    layout: &Layout,
    current: &SecurityFile,
    change: Change,
) -> Result<Edited, StoreError> {
    let mut expected = current.clone();
    let (edit, touched) = match change {
        Change::Create(entry) => {
            let edit = layout.append(text, &render::entry_node(&entry))?;
            expected.keys.push(entry);
            (edit, Some(expected.keys.len() - 1))
        }
        Change::Replace(entry) => {
            let (i, _) = current.find(&entry.name).ok_or(StoreError::EditMismatch)?;
            let edit = layout.replace(text, i, &render::entry_node(&entry))?;
            expected.keys[i] = entry;
            (edit, Some(i))
        }
        Change::Delete(name) => {
            let (i, _) = current.find(&name).ok_or(StoreError::EditMismatch)?;
            let edit = layout.remove(text, i)?;
            expected.keys.remove(i);
            (edit, None)
        }
    };
    Ok(Edited {
        text: edit.text,
        expected,
        touched,
        splice: edit.splice,
    })
}

pub(super) fn other_top_level(text: &str) -> Option<serde_yaml::Mapping> {
    let mut map = match serde_yaml::from_str(text).ok()? {
        // An empty file, or one with only comments, has no top-level keys.
        serde_yaml::Value::Null => serde_yaml::Mapping::new(),
        serde_yaml::Value::Mapping(m) => m,
        _ => return None,
    };
    map.remove("apiKeys");
    Some(map)
}
